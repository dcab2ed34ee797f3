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

	"github.com/jetflow-dev/jetflow/internal/testhooks"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// storedState is what the state bucket holds for an instance: its queryable state and where
// its history stands.
type storedState struct {
	backend.Instance
	FirstTurn uint64 `json:"firstTurn"` // first turn of the current generation
	Turn      uint64 `json:"turn"`      // last turn reflected in this state
	LastSeq   uint64 `json:"lastSeq"`   // last inbox message applied
	// Revision is the bucket revision this state was read at (not stored).
	Revision uint64 `json:"-"`
}

// instance returns the queryable state.
func (s *storedState) instance() backend.Instance {
	inst := s.Instance
	inst.Version = s.Turn
	return inst
}

// turnRecord is what the history bucket holds for one committed turn: the events it appended,
// the tasks it scheduled and the state it leaves.
type turnRecord struct {
	InstanceID string `json:"instanceId"`
	Number     uint64 `json:"turn"`
	// Reset starts a new generation: the history before this turn no longer counts.
	Reset   bool             `json:"reset,omitempty"`
	LastSeq uint64           `json:"lastSeq"`
	Events  []history.Event  `json:"events"`
	Actions []history.Action `json:"actions,omitempty"`
	// Generation the turn belongs to; actions are tagged with it.
	Generation uint64 `json:"generation"`
	// Messages are sent to other instances after the commit (a sub-orchestration's result).
	Messages []backend.Message `json:"messages,omitempty"`
	// PrevFirstTurn, on a Reset turn, is where the previous generation's history began, so
	// that it can be deleted.
	PrevFirstTurn uint64 `json:"prevFirstTurn,omitempty"`
	// State is the instance's state after the turn. Its Input is stored on Reset turns only.
	State storedState `json:"state"`
}

func (b *Backend) inboxMessage(msg jetstream.Msg) inboxMessage {
	m := inboxMessage{msg: msg}
	m.Data = msg.Data()
	if md, err := msg.Metadata(); err == nil {
		m.seq, m.delivered = md.Sequence.Stream, md.NumDelivered
	}
	b.parseInto(&m, msg.Subject(), msg.Headers())
	return m
}

// parseInto fills m from the stored subject and the headers of an instance message.
func (b *Backend) parseInto(m *inboxMessage, subject string, h nats.Header) {
	m.subject = b.names.PublishedSubject(subject)
	_, id, kind, name, err := b.names.ParseStoredSubject(subject)
	if err != nil {
		m.err = err
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

// readState reads an instance's stored state; nil if it does not exist.
func (b *Backend) readState(ctx context.Context, id string) (*storedState, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	var entry jetstream.KeyValueEntry
	err = retry(ctx, func(ctx context.Context) (err error) {
		entry, err = b.state.Get(ctx, b.names.StateKey(idTok))
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", id, err)
	}
	return decodeState(entry)
}

// recover publishes the turns committed beyond s, whose tasks may not have been published (a
// worker died between commit and publish), and returns the state they leave.
func (b *Backend) recover(ctx context.Context, id string, s *storedState, hooks *testhooks.Hooks) (*storedState, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	next := uint64(1)
	if s != nil {
		next = max(s.Turn+1, s.FirstTurn, 1)
	}
	var beyond []*turnRecord
	for n := next; ; n++ {
		t, err := b.getTurn(ctx, idTok, n)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		beyond = append(beyond, t)
	}
	if len(beyond) == 0 {
		return s, nil
	}
	if hooks.BeforeRecover != nil {
		var at uint64
		if s != nil {
			at = s.Turn
		}
		hooks.BeforeRecover(id, at, len(beyond))
	}
	for _, t := range beyond {
		if s != nil {
			if t.State.Input == nil {
				t.State.Input = s.Input
			}
			t.State.Revision = s.Revision
		}
		if s, err = b.publishTurn(ctx, t); err != nil {
			return nil, fmt.Errorf("publishing recovered turn %d of %q: %w", t.Number, id, err)
		}
	}
	if last := beyond[len(beyond)-1].Number; s.Turn > last {
		// While we recovered, another worker published a newer turn: what we read is stale.
		return nil, fmt.Errorf("recovering %q: turn %d published meanwhile: %w", id, s.Turn, backend.ErrConflict)
	}
	return s, nil
}

func (b *Backend) getTurn(ctx context.Context, idTok string, n uint64) (*turnRecord, error) {
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

func decodeTurn(data []byte) (*turnRecord, error) {
	var t turnRecord
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decoding turn: %w", err)
	}
	return &t, nil
}

// readTurns reads turns first..last: one get each for a few, one watcher for many.
func (b *Backend) readTurns(ctx context.Context, idTok string, first, last uint64) ([]*turnRecord, error) {
	var turns []*turnRecord
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

// readInbox returns the instance's queued messages with after < seq < before, in order. It reads with batched direct gets (one request per
// inboxReadBatch messages of the instance), so a turn pays one round trip to learn that no other
// worker holds an earlier message of its instance.
func (b *Backend) readInbox(ctx context.Context, id string, after, before uint64) ([]inboxMessage, error) {
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
	var out []inboxMessage
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
func (b *Backend) readBatch(ctx context.Context, replies <-chan *nats.Msg, before uint64, out *[]inboxMessage) (int, uint64, error) {
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
		m := inboxMessage{seq: n, delivered: 1} // its delivery is acked by whoever holds it
		m.Data = msg.Data
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

// commitTurn stores a turn under its number; exactly one writer can store a given number, the
// others get backend.ErrConflict.
func (b *Backend) commitTurn(ctx context.Context, turn *turnRecord) error {
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

// publishTurn publishes a committed turn's tasks and messages (idempotently: they carry message
// IDs) and then stores the instance's state; it is repeated after a crash (recover).
func (b *Backend) publishTurn(ctx context.Context, turn *turnRecord) (*storedState, error) {
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

// publishMessages publishes messages to instances, each with its message ID.
func (b *Backend) publishMessages(ctx context.Context, messages []backend.Message) error {
	if len(messages) == 0 {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msgs := make([]*nats.Msg, 0, len(messages))
	for _, m := range messages {
		msg, err := b.instanceMsg(m)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	return b.publishAll(ctx, msgs)
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

func (b *Backend) actionMsg(idTok string, turn *turnRecord, a history.Action) (*nats.Msg, error) {
	switch a.Kind {
	case history.ActionActivity:
		nameTok, err := EncodeToken(a.Name)
		if err != nil {
			return nil, fmt.Errorf("activity name: %w", err)
		}
		msg := nats.NewMsg(b.names.ActivitySubject(nameTok))
		msg.Data = mustJSON(backend.ActivityTask{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID, Name: a.Name, Input: a.Input, Rewind: a.Rewind})
		msg.Header.Set(jetstream.MsgIDHeader, taskMsgID(idTok, turn.Generation, a.TaskID, a.Rewind))
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
			StartID: taskMsgID(idTok, turn.Generation, a.TaskID, a.Rewind),
			Parent:  &history.ParentRef{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID, Rewind: a.Rewind},
		}
		msg := nats.NewMsg(b.names.InstanceSubject(childTok, string(backend.KindStart)))
		msg.Data = mustJSON(req)
		msg.Header.Set(jetstream.MsgIDHeader, "start:"+req.StartID)
		return msg, nil
	}
	return nil, fmt.Errorf("unknown action kind %q", a.Kind)
}

// saveState writes the turn's state unless a later turn's state is already there.
func (b *Backend) saveState(ctx context.Context, idTok string, turn *turnRecord) (*storedState, error) {
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
