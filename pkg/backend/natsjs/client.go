package natsjs

// Client-side operations: creating instances, sending them messages, reading and purging them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	if len(req.Input) > b.opts.maxPayload {
		return fmt.Errorf("input of %d bytes: %w (limit %d)", len(req.Input), backend.ErrPayloadTooLarge, b.opts.maxPayload)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding start request: %w", err)
	}
	// The start message goes first: if this process dies before the state is written, the
	// worker creates the state from the message.
	msg := nats.NewMsg(b.names.InstanceSubject(idTok, string(backend.KindStart)))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "start:"+req.StartID)
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publishing start of %q: %w", req.InstanceID, err)
	}
	key := b.names.StateKey(idTok)
	for {
		cur, err := b.readState(ctx, req.InstanceID)
		switch {
		case err != nil:
			return err
		case cur == nil:
			pending := pendingState(nil, req)
			if _, err := b.state.Create(ctx, key, mustJSON(pending)); err == nil || !isRevisionConflict(err) {
				return wrapf(err, "creating state of %q", req.InstanceID)
			}
		case cur.StartID == req.StartID:
			return nil
		case cur.Status.IsTerminal():
			pending := pendingState(cur, req)
			if _, err := b.state.Update(ctx, key, mustJSON(pending), cur.Revision); err == nil || !isRevisionConflict(err) {
				return wrapf(err, "replacing state of %q", req.InstanceID)
			}
		default:
			return fmt.Errorf("starting %q: %w (status %s)", req.InstanceID, backend.ErrInstanceExists, cur.Status)
		}
	}
}

// pendingState is the state of an instance that is about to start; it keeps the bookkeeping of
// a previous, ended generation so that the worker can find where its history ends.
func pendingState(prev *storedState, req backend.StartRequest) *storedState {
	s := &storedState{}
	if prev != nil {
		s.Generation, s.FirstTurn, s.Turn, s.LastSeq = prev.Generation, prev.FirstTurn, prev.Turn, prev.LastSeq
	}
	s.ID, s.Name, s.Input, s.StartID, s.Parent = req.InstanceID, req.Name, req.Input, req.StartID, req.Parent
	s.Status = history.StatusPending
	s.CreatedAt, s.UpdatedAt = req.Time, req.Time
	return s
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
	inst := s.instance()
	return &inst, nil
}

func decodeState(entry jetstream.KeyValueEntry) (*storedState, error) {
	var s storedState
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		return nil, fmt.Errorf("decoding state %s: %w", entry.Key(), err)
	}
	s.Revision = entry.Revision()
	return &s, nil
}

// decodeInstance decodes a state bucket entry into the queryable state.
func decodeInstance(entry jetstream.KeyValueEntry) (*backend.Instance, error) {
	s, err := decodeState(entry)
	if err != nil {
		return nil, err
	}
	inst := s.instance()
	return &inst, nil
}

// WatchInstance implements backend.Backend.
func (b *Backend) WatchInstance(ctx context.Context, id string) (<-chan *backend.Instance, error) {
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	w, err := b.state.Watch(ctx, b.names.StateKey(idTok))
	if err != nil {
		return nil, fmt.Errorf("watching state of %q: %w", id, err)
	}
	// The watcher sends the current value (if any), then nil, then changes.
	var first *backend.Instance
	for entry := range w.Updates() {
		if entry == nil {
			break
		}
		if entry.Operation() == jetstream.KeyValuePut {
			first, _ = decodeInstance(entry)
		}
	}
	if first == nil {
		// The watcher can miss a value replaced while it started (seen under load): ask
		// directly; changes after this read still come through the watcher.
		cur, err := b.GetInstance(ctx, id)
		if err != nil {
			w.Stop()
			return nil, err
		}
		first = cur
	}
	out := make(chan *backend.Instance, 1)
	out <- first
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case entry, ok := <-w.Updates():
				if !ok {
					return
				}
				if entry == nil || entry.Operation() != jetstream.KeyValuePut {
					continue
				}
				s, err := decodeInstance(entry)
				if err != nil {
					continue
				}
				select {
				case out <- s:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// GetHistory implements backend.Backend. It includes turns committed beyond the state (whose
// state a worker is about to store).
func (b *Backend) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	s, err := b.readState(ctx, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	idTok, _ := b.idToken(id)
	first := max(s.FirstTurn, 1)
	var turns []*turnRecord
	if s.Turn >= first {
		if turns, err = b.readTurns(ctx, idTok, first, s.Turn); err != nil {
			return nil, err
		}
	}
	for n := max(s.Turn+1, first); ; n++ {
		t, err := b.getTurn(ctx, idTok, n)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if t.Reset {
			turns = nil
		}
		turns = append(turns, t)
	}
	var events []history.Event
	for _, t := range turns {
		events = append(events, t.Events...)
	}
	return events, nil
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
	idTok, _ := b.idToken(id)
	keys, err := b.hist.ListKeysFiltered(ctx, b.names.HistoryKeyFilter(idTok))
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("listing history of %q: %w", id, err)
	}
	if keys != nil {
		for key := range keys.Keys() {
			if err := b.hist.Purge(ctx, key); err != nil {
				return fmt.Errorf("purging history of %q: %w", id, err)
			}
		}
	}
	if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(b.names.ScheduleFilter(idTok))); err != nil {
		return fmt.Errorf("purging timers of %q: %w", id, err)
	}
	if err := b.state.Purge(ctx, b.names.StateKey(idTok), jetstream.LastRevision(cur.Revision)); err != nil {
		if isRevisionConflict(err) {
			return fmt.Errorf("purging %q: %w", id, backend.ErrConflict)
		}
		return fmt.Errorf("purging state of %q: %w", id, err)
	}
	return nil
}
