package natsjs

// Instance records: the history stream holds, on one subject per instance
// (<prefix>.hist.<idTok>), the instance's pending record (written by CreateInstance) and one
// record per committed turn. A record carries the instance's state after it, so the last record
// is the instance's state: a turn is one write, published with the expected last sequence of the
// subject, so that exactly one of two writers commits it.
//
// A turn's tasks are published after its record, and its messages acked after that. A worker
// that dies in between leaves the messages unacked: they come back, to whichever worker takes
// the instance, and show that their turn's tasks may be unpublished (see republish).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// storedState is an instance's state as a record holds it: its queryable state and where its
// history stands.
type storedState struct {
	backend.Instance
	// FirstSeq is the stream sequence of the current generation's first record (0: none yet).
	// That record itself stores 0: it is its own Revision.
	FirstSeq uint64 `json:"firstSeq,omitempty"`
	Turn     uint64 `json:"turn,omitempty"`    // last turn reflected in this state
	LastSeq  uint64 `json:"lastSeq,omitempty"` // last inbox message applied
	// Revision is the stream sequence of the record this state was read from (not stored).
	Revision uint64 `json:"-"`
}

// instance returns the queryable state.
func (s *storedState) instance() backend.Instance {
	inst := s.Instance
	inst.Version = s.Turn
	return inst
}

// turnRecord is one record of an instance: a committed turn (the events it appended, the tasks
// it scheduled, the state it leaves) or, when Pending, the state of an instance about to start.
//
// InstanceID, Number, LastSeq and Generation are those of State (stored once, there).
type turnRecord struct {
	InstanceID string `json:"-"`
	Number     uint64 `json:"-"`
	// Pending marks the record CreateInstance writes: no turn, a generation about to start.
	Pending bool `json:"pending,omitempty"`
	// Reset starts a new generation: the history before this turn no longer counts.
	Reset   bool             `json:"reset,omitempty"`
	LastSeq uint64           `json:"-"`
	Events  []history.Event  `json:"events,omitempty"`
	Actions []history.Action `json:"actions,omitempty"`
	// Generation the turn belongs to; actions are tagged with it.
	Generation uint64 `json:"-"`
	// Messages are sent to other instances after the commit (a sub-orchestration's result).
	Messages []backend.Message `json:"messages,omitempty"`
	// PrevFirstSeq, on a Reset turn after an earlier generation's turns, is where those began:
	// the records before this one are dropped once it is published.
	PrevFirstSeq uint64 `json:"prevFirstSeq,omitempty"`
	// State is the instance's state after the record. Its Input is stored in a generation's
	// first record (and in pending records) only.
	State storedState `json:"state"`
	// Trace is the turn's trace context, set on the tasks and messages it publishes (kept so
	// that they carry it when they are published again).
	Trace backend.TraceContext `json:"trace,omitempty"`
}

// decodeRecord decodes the record stored at stream sequence seq.
func decodeRecord(data []byte, seq uint64) (*turnRecord, error) {
	var t turnRecord
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decoding record #%d: %w", seq, err)
	}
	t.State.fill(seq, t.Reset)
	t.InstanceID, t.Number, t.LastSeq, t.Generation = t.State.ID, t.State.Turn, t.State.LastSeq, t.State.Generation
	return &t, nil
}

// decodeState decodes only the state of the record stored at stream sequence seq (the events and
// tasks are skipped, not built).
func decodeState(data []byte, seq uint64) (*storedState, error) {
	var t struct {
		Reset bool        `json:"reset"`
		State storedState `json:"state"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decoding record #%d: %w", seq, err)
	}
	t.State.fill(seq, t.Reset)
	return &t.State, nil
}

// fill sets what a record's state does not store: its revision, and the first sequence and
// update time that the record itself gives.
func (s *storedState) fill(seq uint64, reset bool) {
	s.Revision = seq
	if reset {
		s.FirstSeq = seq
	}
	if s.UpdatedAt.IsZero() {
		s.UpdatedAt = s.CreatedAt // a pending record stores one time for both
	}
}

// readState reads an instance's state, without its input unless the last record holds it; nil
// if the instance does not exist.
func (b *Backend) readState(ctx context.Context, id string) (*storedState, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	var raw *jetstream.RawStreamMsg
	err = retry(ctx, func(ctx context.Context) (err error) {
		raw, err = b.hist.GetLastMsgForSubject(ctx, b.names.HistorySubject(idTok))
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", id, err)
	}
	s, err := decodeState(raw.Data, raw.Sequence)
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", id, err)
	}
	return s, nil
}

// withInput fills in the input of s from its generation's first record.
func (b *Backend) withInput(ctx context.Context, s *storedState) error {
	if s.Input != nil || s.FirstSeq == 0 || s.FirstSeq == s.Revision {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var raw *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		raw, err = b.hist.GetMsg(ctx, s.FirstSeq)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading the input of %q: %w", s.ID, err)
	}
	first, err := decodeState(raw.Data, raw.Sequence)
	if err != nil {
		return err
	}
	s.Input = first.Input
	return nil
}

// readRecords returns the records of instance idTok with stream sequences from..to, in order.
// The first few are read one direct get at a time; the rest, if any, in batches. (A batched
// direct get makes the server count the subject's messages from the start sequence on, which
// costs more than the reads themselves for the one to three records most instances have.)
func (b *Backend) readRecords(ctx context.Context, idTok string, from, to uint64) ([]*turnRecord, error) {
	subject := b.names.HistorySubject(idTok)
	var out []*turnRecord
	seq := from
	for ; len(out) < singleRecordReads && seq <= to; seq++ {
		var raw *jetstream.RawStreamMsg
		err := retry(ctx, func(ctx context.Context) (err error) {
			raw, err = b.hist.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && raw.Sequence > to) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the history of %s: %w", idTok, err)
		}
		t, err := decodeRecord(raw.Data, raw.Sequence)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		seq = raw.Sequence
	}
	if seq > to {
		return out, nil
	}
	err := b.scan(ctx, b.names.HistoryStream(), subject, seq, to, func(seq uint64, msg *nats.Msg) error {
		t, err := decodeRecord(msg.Data, seq)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", idTok, err)
	}
	return out, nil
}

// singleRecordReads is how many records readRecords reads one at a time before it batches.
const singleRecordReads = 4

// generationEvents returns the events of the generation s belongs to, up to s.
func (b *Backend) generationEvents(ctx context.Context, idTok string, s *storedState) ([]history.Event, error) {
	if s == nil || s.FirstSeq == 0 {
		return nil, nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	records, err := b.readRecords(ctx, idTok, s.FirstSeq, s.Revision)
	if err != nil {
		return nil, err
	}
	var events []history.Event
	for _, t := range records {
		events = append(events, t.Events...)
	}
	return events, nil
}

// scan reads the messages of stream on subject (a filter) with sequences from..to with batched
// direct gets, calling fn for each in order.
func (b *Backend) scan(ctx context.Context, stream, subject string, from, to uint64, fn func(seq uint64, msg *nats.Msg) error) error {
	api := "$JS.API.DIRECT.GET." + stream
	for seq := from; seq <= to; {
		req := mustJSON(directGetRequest{Seq: seq, NextFor: subject, Batch: directGetBatch})
		replies, done, err := b.direct.request(api, req, directGetBatch)
		if err != nil {
			return err
		}
		got, last := 0, uint64(0)
		for err == nil {
			var msg *nats.Msg
			if msg, err = nextReply(ctx, replies); err != nil {
				break
			}
			if status := msg.Header.Get("Status"); status != "" {
				if status != "404" && status != "204" {
					err = fmt.Errorf("direct get status %s %s", status, msg.Header.Get("Description"))
				}
				break
			}
			n, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
			got, last = got+1, n
			if n != 0 && n <= to {
				err = fn(n, msg)
			}
		}
		done()
		if err != nil {
			return err
		}
		if got < directGetBatch {
			return nil
		}
		seq = last + 1
	}
	return nil
}

// commitTurn stores a turn's record as the one after expect (its state's Revision; 0 for an
// instance without records). Exactly one writer can store the record after expect; the others
// get backend.ErrConflict. It returns the record's stream sequence.
func (b *Backend) commitTurn(ctx context.Context, turn *turnRecord, expect uint64) (uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return 0, err
	}
	stored := *turn
	if !turn.Reset {
		stored.State.Input = nil // stored once per generation, in its first record
	}
	stored.State.FirstSeq = turn.State.FirstSeq
	if turn.Reset {
		stored.State.FirstSeq = 0
	}
	data, err := json.Marshal(&stored)
	if err != nil {
		return 0, fmt.Errorf("encoding turn %d of %q: %w", turn.Number, turn.InstanceID, err)
	}
	seq, err := b.appendRecord(ctx, idTok, data, expect)
	if err != nil {
		return 0, fmt.Errorf("committing turn %d of %q: %w", turn.Number, turn.InstanceID, err)
	}
	return seq, nil
}

// appendRecord publishes a record of instance idTok after the one at sequence expect. A
// publish that was stored but not answered is repeated and then reports a conflict: the caller
// reads the instance again and finds its own record.
func (b *Backend) appendRecord(ctx context.Context, idTok string, data []byte, expect uint64) (uint64, error) {
	msg := nats.NewMsg(b.names.HistorySubject(idTok))
	msg.Data = data
	var ack *jetstream.PubAck
	err := retry(ctx, func(ctx context.Context) (err error) {
		ack, err = b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expect))
		return err
	})
	if isRevisionConflict(err) {
		return 0, backend.ErrConflict
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// publishTurn publishes a committed turn's tasks and messages (idempotently: they carry message
// IDs, and timers are schedules that replace themselves) and, on a turn that began a new
// generation after another, drops the previous generation's records. (A first generation keeps
// its pending record: dropping it would cost a request per new instance.)
func (b *Backend) publishTurn(ctx context.Context, turn *turnRecord) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return err
	}
	msgs := make([]*nats.Msg, 0, len(turn.Actions)+len(turn.Messages))
	for _, a := range turn.Actions {
		msg, err := b.actionMsg(idTok, turn, a)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
		if m := b.deadlineSchedule(idTok, turn, a); m != nil {
			msgs = append(msgs, m)
		}
	}
	for _, m := range turn.Messages {
		if m.Trace == nil {
			m.Trace = turn.Trace
		}
		msg, err := b.instanceMsg(m)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	if b.opts.retention > 0 && turn.State.Status.IsTerminal() {
		msgs = append(msgs, b.purgeSchedule(idTok, turn))
	}
	if err := b.publishAll(ctx, msgs); err != nil {
		return fmt.Errorf("publishing tasks of %q: %w", turn.InstanceID, err)
	}
	for _, a := range turn.Actions {
		if a.Kind == history.ActionTimer {
			b.timerGuard.watch(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID), a.FireAt)
		}
	}
	if turn.Reset && turn.PrevFirstSeq != 0 {
		b.dropBefore(ctx, idTok, turn.State.Revision)
	}
	return nil
}

// dropBefore deletes the records of instance idTok before sequence seq (a previous generation
// and the pending record of this one); best effort: purge removes leftovers.
func (b *Backend) dropBefore(ctx context.Context, idTok string, seq uint64) {
	err := b.hist.Purge(ctx, jetstream.WithPurgeSubject(b.names.HistorySubject(idTok)), jetstream.WithPurgeSequence(seq))
	if err != nil {
		b.log.Warn().Err(err).Str("subject", b.names.HistorySubject(idTok)).Msg("dropping an old generation's records")
	}
}

// republish publishes again the tasks of the turns that applied any of the messages with
// sequences in applied: those messages came back unacked, so the worker that committed their
// turn may have died before it published the turn's tasks. s is the instance's state.
func (b *Backend) republish(ctx context.Context, id string, s *storedState, applied []uint64) error {
	if s == nil || s.FirstSeq == 0 || len(applied) == 0 {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return err
	}
	records, err := b.readRecords(ctx, idTok, s.FirstSeq, s.Revision)
	if err != nil {
		return err
	}
	if hook := b.items.hooks.BeforeRepublish; hook != nil {
		hook(id, s.Turn)
	}
	var prevLast uint64
	for _, t := range records {
		if !t.Pending && appliedBy(applied, prevLast, t.LastSeq) {
			if err := b.publishTurn(ctx, t); err != nil {
				return fmt.Errorf("publishing turn %d of %q again: %w", t.Number, id, err)
			}
		}
		prevLast = t.LastSeq
	}
	return nil
}

// appliedBy reports whether a turn that applied the inbox messages after..last applied one of
// seqs.
func appliedBy(seqs []uint64, after, last uint64) bool {
	for _, seq := range seqs {
		if after < seq && seq <= last {
			return true
		}
	}
	return false
}

// pendingRecord is the record of an instance that is about to start; its state keeps the
// bookkeeping of a previous, ended generation.
func pendingRecord(prev *storedState, req backend.StartRequest) *turnRecord {
	s := storedState{}
	if prev != nil {
		s.Generation, s.FirstSeq, s.Turn, s.LastSeq = prev.Generation, prev.FirstSeq, prev.Turn, prev.LastSeq
	}
	s.ID, s.Name, s.Input, s.StartID, s.Parent = req.InstanceID, req.Name, req.Input, req.StartID, req.Parent
	s.Status = history.StatusPending
	s.OrchestratorVersion, s.ScheduledStartTime = req.Version, req.StartAt
	s.CreatedAt = req.Time // and UpdatedAt: decodeRecord sets it
	return &turnRecord{InstanceID: req.InstanceID, Number: s.Turn, Pending: true, LastSeq: s.LastSeq, Generation: s.Generation, State: s}
}
