package natsjs

// Client-side operations: creating instances, sending them messages, reading and purging them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// CreateInstance implements backend.Backend.
func (b *Backend) CreateInstance(ctx context.Context, req backend.StartRequest) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(req.InstanceID)
	if err != nil {
		return err
	}
	if err := req.CheckPayload(b.opts.maxPayload); err != nil {
		return err
	}
	if !req.StartAt.After(time.Now()) {
		req.StartAt = time.Time{} // a start time that has come: start now
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding start request: %w", err)
	}
	var cur *storedState
	msg := nats.NewMsg(b.names.InstanceSubject(idTok, string(backend.KindStart)))
	if !req.StartAt.IsZero() {
		// A scheduled start (scheduled.go): refused at once for an instance that exists, since
		// its schedule, once published, fires whatever the record says.
		if cur, err = b.readState(ctx, req.InstanceID); err != nil {
			return err
		}
		if msg, err = b.scheduledStart(idTok, cur, req); err != nil {
			return err
		}
	}
	// The start message goes first: if this process dies before the state is written, the
	// worker creates the state from the message.
	msg.Data = data
	if msg.Header.Get("Nats-Schedule") == "" {
		msg.Header.Set(jetstream.MsgIDHeader, startMsgID(req.StartID))
	}
	req.Trace.SetOn(msg.Header.Set)
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publishing start of %q: %w", req.InstanceID, err)
	}
	err = b.recordStart(ctx, idTok, cur, req)
	if err != nil && !req.StartAt.IsZero() {
		b.unschedule(msg.Subject)
	}
	return err
}

// recordStart appends the pending record of start req after the instance's record cur (nil: not
// read yet).
func (b *Backend) recordStart(ctx context.Context, idTok string, cur *storedState, req backend.StartRequest) error {
	// Most starts are of new instances: try the pending record as the first one, and read the
	// instance only if there is one already.
	for {
		var expect uint64
		switch {
		case cur == nil:
		case cur.StartID == req.StartID:
			return nil
		case cur.Status.IsTerminal():
			expect = cur.Revision
		default:
			return fmt.Errorf("starting %q: %w (status %s)", req.InstanceID, backend.ErrInstanceExists, cur.Status)
		}
		_, err := b.appendRecord(ctx, idTok, mustJSON(pendingRecord(cur, req)), expect)
		if !errors.Is(err, backend.ErrConflict) {
			return wrapf(err, "recording the start of %q", req.InstanceID)
		}
		if cur, err = b.readState(ctx, req.InstanceID); err != nil {
			return err
		}
	}
}

// Send implements backend.Backend.
func (b *Backend) Send(ctx context.Context, m backend.Message) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := b.instanceMsg(m)
	if err != nil {
		return err
	}
	publish := func(ctx context.Context) error {
		_, err := b.js.PublishMsg(ctx, msg)
		return err
	}
	var err2 error
	if msg.Header.Get(jetstream.MsgIDHeader) != "" {
		err2 = retry(ctx, publish) // deduplicated by its ID: safe to repeat
	} else {
		err2 = publish(ctx)
	}
	if err2 != nil {
		return fmt.Errorf("publishing %s to %q: %w", m.Kind, m.InstanceID, err2)
	}
	return nil
}

func (b *Backend) instanceMsg(m backend.Message) (*nats.Msg, error) {
	idTok, err := b.idToken(m.InstanceID)
	if err != nil {
		return nil, err
	}
	if len(m.Data) > b.opts.maxPayload {
		return nil, fmt.Errorf("%s of %d bytes: %w (limit %d)", m.Kind, len(m.Data), backend.ErrPayloadTooLarge, b.opts.maxPayload)
	}
	subject := b.names.InstanceSubject(idTok, string(m.Kind))
	if m.Kind == backend.KindEvent {
		nameTok, err := EncodeEventName(m.EventName)
		if err != nil {
			return nil, err
		}
		subject = b.names.EventSubject(idTok, nameTok)
	}
	msg := nats.NewMsg(subject)
	msg.Data = m.Data
	m.Trace.SetOn(msg.Header.Set)
	switch {
	case m.Kind == backend.KindResult:
		var r backend.TaskResult
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return nil, fmt.Errorf("result for %q: %w: %v", m.InstanceID, backend.ErrBadPayload, err)
		}
		msg.Header.Set(jetstream.MsgIDHeader, resultMsgID(idTok, &r))
	case m.Kind == backend.KindEvent && m.MsgID != "":
		msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	return msg, nil
}

// GetInstance implements backend.Backend.
func (b *Backend) GetInstance(ctx context.Context, id string) (*backend.Instance, error) {
	s, err := b.readState(ctx, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	if err := b.withInput(ctx, s); err != nil {
		return nil, err
	}
	inst := s.instance()
	return &inst, nil
}

// WatchInstance implements backend.Backend. It reads the instance's records as they are
// appended, through an ordered consumer of its history subject.
func (b *Backend) WatchInstance(ctx context.Context, id string) (<-chan *backend.Instance, error) {
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	// The first value is the current state, read directly, so that an instance that does not
	// exist is reported at once; the consumer then sends the last record again and later ones.
	first, err := b.GetInstance(ctx, id)
	if err != nil {
		return nil, err
	}
	input := first.Input
	return b.watchRecords(ctx, b.names.HistorySubject(idTok), jetstream.DeliverLastPerSubjectPolicy, first, func(s *storedState) {
		if s.Input == nil {
			s.Input = input // stored in the generation's first record only
		}
		input = s.Input
	})
}

// watchRecords sends the state of each record on subject that an ordered consumer with policy
// delivers, after first (if not nil), until ctx ends; fill completes a state before it is sent.
func (b *Backend) watchRecords(ctx context.Context, subject string, policy jetstream.DeliverPolicy, first *backend.Instance, fill func(*storedState)) (<-chan *backend.Instance, error) {
	cons, err := b.hist.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: policy})
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", subject, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", subject, err)
	}
	out := make(chan *backend.Instance, 256)
	if first != nil {
		out <- first
	}
	go func() {
		<-ctx.Done()
		msgs.Stop()
	}()
	go func() {
		defer close(out)
		for {
			msg, err := msgs.Next()
			if err != nil {
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			s, err := decodeState(msg.Data(), md.Sequence.Stream)
			if err != nil {
				continue
			}
			fill(s)
			inst := s.instance()
			select {
			case out <- &inst:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// GetHistory implements backend.Backend.
func (b *Backend) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	s, err := b.readState(ctx, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	idTok, _ := b.idToken(id)
	return b.generationEvents(ctx, idTok, s)
}

// PurgeInstance implements backend.Backend.
func (b *Backend) PurgeInstance(ctx context.Context, id string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cur, err := b.readState(ctx, id)
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("purging %q: %w", id, backend.ErrInstanceNotFound)
	}
	if !cur.Status.IsTerminal() {
		return fmt.Errorf("purging %q: %w (status %s)", id, backend.ErrInstanceNotEnded, cur.Status)
	}
	return b.purge(ctx, id, cur)
}

// purge deletes ended instance id, whose state cur was just read: its scheduled timers and
// purge, its leftover results and timers in the inbox, and its records up to cur (a start
// recorded since, a new generation, stays; so do its leftover events and starts in the inbox,
// which workers discard or apply).
func (b *Backend) purge(ctx context.Context, id string, cur *storedState) error {
	idTok, err := b.idToken(id)
	if err != nil {
		return err
	}
	if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(b.names.ScheduleFilter(idTok))); err != nil {
		return fmt.Errorf("purging timers of %q: %w", id, err)
	}
	for _, kind := range []backend.MessageKind{backend.KindResult, backend.KindTimer} {
		filter := b.names.StoredInstanceKindFilter(idTok, string(kind))
		if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
			return fmt.Errorf("purging the leftover %s messages of %q: %w", kind, id, err)
		}
	}
	err = b.hist.Purge(ctx, jetstream.WithPurgeSubject(b.names.HistorySubject(idTok)), jetstream.WithPurgeSequence(cur.Revision+1))
	if err != nil {
		return fmt.Errorf("purging the records of %q: %w", id, err)
	}
	return nil
}

// WatchAll sends the state of every instance each time it changes from now on (without inputs),
// until ctx ends; the channel is closed then, or if the watch fails.
func (b *Backend) WatchAll(ctx context.Context) (<-chan *backend.Instance, error) {
	return b.watchRecords(ctx, b.names.HistorySubjects(), jetstream.DeliverNewPolicy, nil, func(*storedState) {})
}
