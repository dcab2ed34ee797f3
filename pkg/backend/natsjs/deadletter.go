package natsjs

// The dead-letter stream: messages that cannot be processed, with the reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// deadLetterInbox records an instance message that cannot be applied.
func (b *Backend) deadLetterInbox(ctx context.Context, m inboxMessage, reason string) error {
	return b.deadLetter(ctx, "inbox", m.subject, m.seq, m.Data, reason)
}

// deadLetter publishes a backend.DeadLetter record for a message of source.
func (b *Backend) deadLetter(ctx context.Context, source, subject string, seq uint64, data []byte, reason string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg := nats.NewMsg(b.names.DeadLetterSubject(source))
	msg.Data = mustJSON(backend.NewDeadLetter(source, subject, seq, data, reason))
	msg.Header.Set(jetstream.MsgIDHeader, deadLetterMsgID(source, seq))
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dead-lettering %s #%d: %w", subject, seq, err)
	}
	b.log.Warn().Str("subject", subject).Uint64("seq", seq).Str("reason", reason).Msg("dead-lettered")
	return nil
}

// DeadLetters implements backend.ClientBackend; a dead letter's Position is its sequence in the
// dead-letter stream.
func (b *Backend) DeadLetters(ctx context.Context, after uint64, n int) ([]backend.DeadLetter, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stream, err := b.js.Stream(ctx, b.names.DeadLetterStream())
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", b.names.DeadLetterStream(), err)
	}
	var out []backend.DeadLetter
	for seq := after + 1; len(out) < n; {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(b.names.DeadLetterSubjects()))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading dead letters: %w", err)
		}
		var d backend.DeadLetter
		if err := json.Unmarshal(raw.Data, &d); err != nil {
			d = backend.NewDeadLetter("unknown", raw.Subject, 0, raw.Data, "undecodable dead-letter record: "+err.Error())
			d.Time = raw.Time
		}
		d.Position = raw.Sequence
		out = append(out, d)
		seq = raw.Sequence + 1
	}
	return out, nil
}
