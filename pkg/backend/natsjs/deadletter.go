package natsjs

// The dead-letter stream: messages that cannot be processed, with the reason.

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// DeadLetter implements backend.Backend.
func (b *Backend) DeadLetter(ctx context.Context, m backend.InboxMessage, reason string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := b.deadLetter(ctx, "inbox", m.Subject, m.Seq, m.Data, reason); err != nil {
		return err
	}
	if m.Ack != nil {
		return m.Ack()
	}
	return nil
}

// DeadLetterRecord is what the dead-letter stream holds for each message.
type DeadLetterRecord struct {
	Reason  string    `json:"reason"`
	Source  string    `json:"source"` // "inbox" or "activity"
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Data    string    `json:"data"` // the payload, if it is UTF-8
	DataB64 []byte    `json:"dataBase64,omitempty"`
	Time    time.Time `json:"time"`
}

func (b *Backend) deadLetter(ctx context.Context, source, subject string, seq uint64, data []byte, reason string) error {
	rec := DeadLetterRecord{Reason: reason, Source: source, Subject: subject, Seq: seq, Time: time.Now().UTC()}
	if utf8.Valid(data) {
		rec.Data = string(data)
	} else {
		rec.DataB64 = data
	}
	msg := nats.NewMsg(b.names.DeadLetterSubject(source))
	msg.Data = mustJSON(rec)
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", source, seq))
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dead-lettering %s #%d: %w", subject, seq, err)
	}
	b.log.Warn().Str("subject", subject).Uint64("seq", seq).Str("reason", reason).Msg("dead-lettered")
	return nil
}
