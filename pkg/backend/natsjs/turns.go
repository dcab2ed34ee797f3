package natsjs

// Worker-side operations on instances: the inbox, loading, committing and publishing turns.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

func (b *Backend) inboxMessage(msg jetstream.Msg) backend.InboxMessage {
	m := backend.InboxMessage{}
	m.Data = msg.Data()
	m.Ack = msg.Ack
	m.Nak = msg.NakWithDelay
	if md, err := msg.Metadata(); err == nil {
		m.Seq, m.Delivered, m.Time = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	b.parseInto(&m, msg.Subject(), msg.Headers())
	return m
}

// parseInto fills m from the stored subject and the headers of an instance message.
func (b *Backend) parseInto(m *backend.InboxMessage, subject string, h nats.Header) {
	m.Subject = b.names.PublishedSubject(subject)
	_, id, kind, name, err := b.names.ParseStoredSubject(subject)
	if err != nil {
		m.Err = err
		return
	}
	m.InstanceID, m.Kind, m.EventName = id, backend.MessageKind(kind), name
	if h != nil {
		m.MsgID = h.Get(HeaderEventID)
		if m.MsgID == "" {
			m.MsgID = h.Get(jetstream.MsgIDHeader)
		}
	}
}

// LoadInstance implements backend.Backend.
func (b *Backend) LoadInstance(ctx context.Context, id string, beyond bool) (*backend.Snapshot, error) {
	return b.load(ctx, id, false, beyond)
}

// load reads an instance's state and turns: those of its current generation if it is running
// (or all is set), and, with beyond, those committed beyond its state.
func (b *Backend) load(ctx context.Context, id string, all, beyond bool) (*backend.Snapshot, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	snap := &backend.Snapshot{}
	cur, err := b.GetInstance(ctx, id)
	switch {
	case errors.Is(err, backend.ErrInstanceNotFound):
	case err != nil:
		return nil, err
	default:
		snap.Instance = cur
	}
	idTok, _ := b.idToken(id)
	first, last := uint64(1), uint64(0)
	if cur != nil {
		first, last = max(cur.FirstTurn, 1), cur.Turn
	}
	// Turns first..last are known; probe for committed turns beyond the state.
	var turns []*backend.Turn
	if last >= first && (all || cur.Status == history.StatusRunning || cur.Status == history.StatusSuspended) {
		if turns, err = b.readTurns(ctx, idTok, first, last); err != nil {
			return nil, err
		}
	}
	for n := max(last+1, first); beyond; n++ {
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
	snap.Turns = turns
	return snap, nil
}

func (b *Backend) getTurn(ctx context.Context, idTok string, n uint64) (*backend.Turn, error) {
	var entry jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) {
		entry, err = b.hist.Get(ctx, b.names.HistoryKey(idTok, n))
		return err
	})
	if err != nil {
		return nil, err
	}
	return decodeTurn(entry.Value())
}

func decodeTurn(data []byte) (*backend.Turn, error) {
	var t backend.Turn
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decoding turn: %w", err)
	}
	return &t, nil
}

// readTurns reads turns first..last: one get each for a few, one watcher for many.
func (b *Backend) readTurns(ctx context.Context, idTok string, first, last uint64) ([]*backend.Turn, error) {
	var turns []*backend.Turn
	if last-first < 16 {
		for n := first; n <= last; n++ {
			t, err := b.getTurn(ctx, idTok, n)
			if err != nil {
				return nil, fmt.Errorf("reading turn %d of %s: %w", n, idTok, err)
			}
			turns = append(turns, t)
		}
		return turns, nil
	}
	w, err := b.hist.Watch(ctx, b.names.HistoryKeyFilter(idTok), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading history of %s: %w", idTok, err)
	}
	defer w.Stop()
	for entry := range w.Updates() {
		if entry == nil {
			break
		}
		n, err := strconv.ParseUint(entry.Key()[len(idTok)+1:], 10, 64)
		if err != nil || n < first || n > last {
			continue
		}
		t, err := decodeTurn(entry.Value())
		if err != nil {
			return nil, err
		}
		turns = append(turns, t)
	}
	if uint64(len(turns)) != last-first+1 {
		return nil, fmt.Errorf("reading history of %s: found %d of turns %d..%d", idTok, len(turns), first, last)
	}
	return turns, nil
}

// ReadInbox implements backend.Backend. It reads with batched direct gets (one request per
// inboxReadBatch messages of the instance), so a turn pays one round trip to learn that no other
// worker holds an earlier message of its instance.
func (b *Backend) ReadInbox(ctx context.Context, id string, after, before uint64) ([]backend.InboxMessage, error) {
	if before <= after+1 {
		return nil, nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	api := "$JS.API.DIRECT.GET." + b.names.InstanceStream()
	var out []backend.InboxMessage
	for seq := after + 1; ; {
		req := mustJSON(directGetRequest{Seq: seq, NextFor: b.names.StoredInstanceFilter(idTok), Batch: inboxReadBatch})
		replies, done, err := b.direct.request(api, req, inboxReadBatch)
		if err != nil {
			return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
		}
		got, last, err := b.readBatch(ctx, replies, before, &out)
		done()
		if err != nil {
			return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
		}
		if last >= before {
			return out, nil
		}
		if got < inboxReadBatch {
			// Message `before`, which this worker holds, is gone: another worker applied it
			// (a redelivery), or the replica that answered (direct gets may be answered by
			// any) has not stored it yet and may lack earlier ones too. Either way the turn
			// starts again on fresh state.
			return nil, fmt.Errorf("reading inbox of %q: message %d is not there (applied elsewhere, or a lagging replica answered): %w",
				id, before, backend.ErrConflict)
		}
		seq = last + 1
	}
}

// readBatch reads one batch of direct get replies up to its end marker, appending the messages
// before seq `before` to out. It returns how many messages came and the last sequence.
func (b *Backend) readBatch(ctx context.Context, replies <-chan *nats.Msg, before uint64, out *[]backend.InboxMessage) (int, uint64, error) {
	got, last := 0, uint64(0)
	for {
		msg, err := nextReply(ctx, replies)
		if err != nil {
			return got, last, err
		}
		switch status := msg.Header.Get("Status"); status {
		case "":
		case "404", "204": // nothing (more) to read; end of batch
			return got, last, nil
		default:
			return got, last, fmt.Errorf("direct get status %s %s", status, msg.Header.Get("Description"))
		}
		n, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		got, last = got+1, n
		if n == 0 || n >= before {
			continue
		}
		m := backend.InboxMessage{Seq: n, Delivered: 1}
		m.Time, _ = time.Parse(time.RFC3339Nano, msg.Header.Get(jetstream.TimeStampHeaer))
		m.Data = msg.Data
		m.Ack = func() error { return nil } // its delivery is acked by whoever holds it
		m.Nak = func(time.Duration) error { return nil }
		b.parseInto(&m, msg.Header.Get(jetstream.SubjectHeader), msg.Header)
		*out = append(*out, m)
	}
}

// inboxReadBatch is how many messages one direct get request asks for.
const inboxReadBatch = 256

// directGetRequest is JetStream's direct get request with batching (server 2.11+).
type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// CommitTurn implements backend.Backend.
func (b *Backend) CommitTurn(ctx context.Context, turn *backend.Turn) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return err
	}
	stored := *turn
	if !turn.Reset {
		stored.State.Input = nil // stored once per generation, in its first turn
	}
	data, err := json.Marshal(&stored)
	if err != nil {
		return fmt.Errorf("encoding turn %d of %q: %w", turn.Number, turn.InstanceID, err)
	}
	// Repeating a create that was stored but not answered reports a conflict; the engine then
	// reloads the instance and finds (and publishes) its own turn.
	err = retry(ctx, func(ctx context.Context) error {
		_, err := b.hist.Create(ctx, b.names.HistoryKey(idTok, turn.Number), data)
		return err
	})
	if isRevisionConflict(err) {
		return fmt.Errorf("committing turn %d of %q: %w", turn.Number, turn.InstanceID, backend.ErrConflict)
	}
	return wrapf(err, "committing turn %d of %q", turn.Number, turn.InstanceID)
}

// PublishTurn implements backend.Backend.
func (b *Backend) PublishTurn(ctx context.Context, turn *backend.Turn) (*backend.Instance, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return nil, err
	}
	msgs := make([]*nats.Msg, 0, len(turn.Actions)+len(turn.Messages))
	for _, a := range turn.Actions {
		msg, err := b.actionMsg(idTok, turn, a)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	for _, m := range turn.Messages {
		msg, err := b.instanceMsg(m)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	if err := b.publishAll(ctx, msgs); err != nil {
		return nil, fmt.Errorf("publishing tasks of %q: %w", turn.InstanceID, err)
	}
	return b.saveState(ctx, idTok, turn)
}

// publishChunk bounds the asynchronous publishes one turn has in flight, so that turns that
// fan out to thousands of tasks never stall the connection's shared async window.
const publishChunk = 256

// publishAll publishes msgs asynchronously, a chunk at a time, and waits for every ack. Messages
// whose ack does not come within an attempt are published again (they carry message IDs, or
// are timer schedules that replace themselves).
func (b *Backend) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	for start := 0; start < len(msgs); start += publishChunk {
		chunk := msgs[start:min(start+publishChunk, len(msgs))]
		if err := retry(ctx, func(actx context.Context) error {
			futures := make([]jetstream.PubAckFuture, 0, len(chunk))
			for _, msg := range chunk {
				f, err := b.js.PublishMsgAsync(msg)
				if err != nil {
					return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
				}
				futures = append(futures, f)
			}
			var unacked []*nats.Msg
			for i, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					if !unanswered(err) {
						return err
					}
					unacked = append(unacked, chunk[i])
				case <-actx.Done():
					unacked = append(unacked, chunk[i])
				}
			}
			if len(unacked) > 0 {
				chunk = unacked
				return fmt.Errorf("%d publishes not acknowledged: %w", len(unacked), context.DeadlineExceeded)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) actionMsg(idTok string, turn *backend.Turn, a history.Action) (*nats.Msg, error) {
	switch a.Kind {
	case history.ActionActivity:
		nameTok, err := EncodeToken(a.Name)
		if err != nil {
			return nil, fmt.Errorf("activity name: %w", err)
		}
		msg := nats.NewMsg(b.names.ActivitySubject(nameTok))
		msg.Data = mustJSON(backend.ActivityTask{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID, Name: a.Name, Input: a.Input, Rewind: a.Rewind})
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%d:%d", idTok, turn.Generation, a.TaskID)+rewindSuffix(a.Rewind))
		return msg, nil
	case history.ActionTimer:
		// A scheduled message: the server publishes its body to the target when due. Schedules
		// are keyed by subject, so publishing one again replaces it.
		msg := nats.NewMsg(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID))
		msg.Data = mustJSON(backend.TimerFired{Generation: turn.Generation, TaskID: a.TaskID})
		msg.Header.Set("Nats-Schedule", "@at "+a.FireAt.UTC().Format(time.RFC3339Nano))
		msg.Header.Set("Nats-Schedule-Target", b.names.InstanceSubject(idTok, string(backend.KindTimer)))
		return msg, nil
	case history.ActionSubOrchestration:
		childTok, err := b.idToken(a.InstanceID)
		if err != nil {
			return nil, fmt.Errorf("sub-orchestration: %w", err)
		}
		req := backend.StartRequest{
			InstanceID: a.InstanceID, Name: a.Name, Input: a.Input, Time: turn.State.UpdatedAt,
			StartID: fmt.Sprintf("%s:%d:%d", idTok, turn.Generation, a.TaskID) + rewindSuffix(a.Rewind),
			Parent:  &history.ParentRef{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID},
		}
		msg := nats.NewMsg(b.names.InstanceSubject(childTok, string(backend.KindStart)))
		msg.Data = mustJSON(req)
		msg.Header.Set(jetstream.MsgIDHeader, "start:"+req.StartID)
		return msg, nil
	}
	return nil, fmt.Errorf("unknown action kind %q", a.Kind)
}

// saveState writes the turn's state unless a later turn's state is already there.
func (b *Backend) saveState(ctx context.Context, idTok string, turn *backend.Turn) (*backend.Instance, error) {
	key := b.names.StateKey(idTok)
	s := turn.State
	rev := s.Revision
	for attempt := 0; attempt < 10; attempt++ {
		var err error
		var newRev uint64
		err = retry(ctx, func(ctx context.Context) (err error) {
			if rev == 0 {
				newRev, err = b.state.Create(ctx, key, mustJSON(&s))
			} else {
				newRev, err = b.state.Update(ctx, key, mustJSON(&s), rev)
			}
			return err
		})
		if err == nil {
			s.Revision = newRev
			if turn.Reset && turn.PrevFirstTurn > 0 {
				b.dropTurns(ctx, idTok, turn.PrevFirstTurn, turn.Number-1)
			}
			return &s, nil
		}
		if !isRevisionConflict(err) {
			return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, err)
		}
		var entry jetstream.KeyValueEntry
		gerr := retry(ctx, func(ctx context.Context) (err error) {
			entry, err = b.state.Get(ctx, key)
			return err
		})
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				rev = 0
				continue
			}
			return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, gerr)
		}
		cur, derr := decodeState(entry)
		if derr != nil {
			return nil, derr
		}
		if cur.Turn >= turn.Number {
			return cur, nil
		}
		// A client wrote in between (a pending start); our turn is newer.
		if s.Input == nil {
			s.Input = cur.Input
		}
		rev = cur.Revision
	}
	return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, backend.ErrConflict)
}

// dropTurns deletes the history of a previous generation; best effort, purge removes leftovers.
func (b *Backend) dropTurns(ctx context.Context, idTok string, first, last uint64) {
	for n := first; n <= last; n++ {
		if err := b.hist.Purge(ctx, b.names.HistoryKey(idTok, n)); err != nil {
			b.log.Warn().Err(err).Str("key", b.names.HistoryKey(idTok, n)).Msg("dropping old history")
			return
		}
	}
}
