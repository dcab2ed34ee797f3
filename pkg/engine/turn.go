package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// live is an instance as the worker holds it between turns.
type live struct {
	state *backend.Instance // nil: the instance does not exist
	exec  *durable.Executor // nil: not running (absent, pending or ended)
}

// load returns the instance from the cache, or reads and replays it. With beyond (after a
// commit conflict), turns that were committed but perhaps not published (the last worker died
// in between) are looked for, and published again first.
func (w *Worker) load(ctx context.Context, id string, beyond bool) (*live, error) {
	if l := w.cache.get(id); l != nil {
		return l, nil
	}
	snap, err := w.b.LoadInstance(ctx, id, beyond)
	if err != nil {
		return nil, err
	}
	l := &live{state: snap.Instance}
	var events []history.Event
	for _, t := range snap.Turns {
		if l.state == nil || t.Number > l.state.Turn {
			if l.state != nil {
				if t.State.Input == nil {
					t.State.Input = l.state.Input
				}
				t.State.Revision = l.state.Revision
			} else {
				t.State.Revision = 0
			}
			if l.state, err = w.b.PublishTurn(ctx, t); err != nil {
				return nil, fmt.Errorf("publishing recovered turn %d: %w", t.Number, err)
			}
		}
		events = append(events, t.Events...)
	}
	if n := len(snap.Turns); n > 0 && l.state != nil && l.state.Turn > snap.Turns[n-1].Number {
		// While we recovered, another worker published a newer turn: what we read is stale.
		return nil, fmt.Errorf("loading %q: turn %d published during recovery: %w", id, l.state.Turn, backend.ErrConflict)
	}
	if l.state != nil && len(events) > 0 && (l.state.Status == history.StatusRunning || l.state.Status == history.StatusSuspended) {
		l.exec = durable.NewExecutor(w.reg, id, w.log.With().Str(fieldInstance, id).Logger())
		if err := l.exec.Replay(events); err != nil {
			w.log.Error().Str(fieldInstance, id).Err(err).Msg("replay failed; the instance will fail")
		}
	}
	return l, nil
}

// turn runs one turn over msgs and returns the messages left for the next one; beyond is as
// for load.
func (w *Worker) turn(ctx context.Context, id string, delivered []backend.InboxMessage, beyond bool) ([]backend.InboxMessage, error) {
	l, err := w.load(ctx, id, beyond)
	if err != nil {
		return nil, err
	}
	var lastSeq uint64
	if l.state != nil {
		lastSeq = l.state.LastSeq
	}
	var pending []backend.InboxMessage
	for _, m := range delivered {
		if m.Seq <= lastSeq {
			m.Ack() // applied by an earlier turn whose ack was lost
			continue
		}
		pending = append(pending, m)
	}
	if len(pending) == 0 {
		w.keep(id, l)
		return nil, nil
	}
	msgs := pending
	if !w.inOrder(id, pending) {
		// Messages of this instance that precede or fall between ours in the inbox but went to
		// another worker (or were handed back after a failed turn) are applied in their place,
		// so that every instance sees its messages in inbox order.
		inbox, err := w.b.ReadInbox(ctx, id, lastSeq, pending[len(pending)-1].Seq)
		if err != nil {
			w.keep(id, l)
			return nil, err
		}
		msgs = mergeBySeq(pending, inbox)
		w.setInOrder(id)
	}

	now := time.Now().UTC()
	b := turnBuilder{w: w, id: id, l: l, now: now, fresh: beyond}
	for i, m := range msgs {
		full := len(b.applied) >= w.opts.maxBatch || (len(b.applied) > 0 && b.bytes+len(m.Data) > maxTurnBytes)
		if full || !b.add(ctx, m) {
			return b.finish(ctx, remaining(msgs[i:], pending))
		}
	}
	return b.finish(ctx, nil)
}

// inOrder reports whether msgs are known to be every unapplied message of instance id up to the
// last of them, so that the turn need not read the inbox: they all came through one exclusive
// delivery (a partition consumer that only this worker reads, which hands over the partition's
// messages in inbox order, including those a previous owner had not acked), and none of the
// instance's messages was handed back since (see handBack).
func (w *Worker) inOrder(id string, msgs []backend.InboxMessage) bool {
	epoch := msgs[0].Epoch
	if epoch == 0 {
		return false
	}
	for _, m := range msgs {
		if m.Epoch != epoch {
			return false
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.handedBack[id]
}

// handBack naks msgs (they come back after delay) and makes the instance's next turn read the
// inbox, since later messages may now be delivered before them.
func (w *Worker) handBack(id string, msgs []backend.InboxMessage, delay time.Duration) {
	w.mu.Lock()
	w.handedBack[id] = true
	w.mu.Unlock()
	for _, m := range msgs {
		if m.Nak != nil {
			m.Nak(delay)
		}
	}
}

// setInOrder records that a turn of id read the inbox.
func (w *Worker) setInOrder(id string) {
	w.mu.Lock()
	delete(w.handedBack, id)
	w.mu.Unlock()
}

// mergeBySeq merges the delivered messages with those read from the inbox, in sequence order;
// a message in both is taken as delivered (its ack counts).
func mergeBySeq(delivered, read []backend.InboxMessage) []backend.InboxMessage {
	have := make(map[uint64]bool, len(delivered))
	for _, m := range delivered {
		have[m.Seq] = true
	}
	out := append([]backend.InboxMessage(nil), delivered...)
	for _, m := range read {
		if !have[m.Seq] {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// remaining returns the delivered messages among msgs.
func remaining(msgs, delivered []backend.InboxMessage) []backend.InboxMessage {
	if len(msgs) == 0 {
		return nil
	}
	var out []backend.InboxMessage
	for _, m := range delivered {
		if m.Seq >= msgs[0].Seq {
			out = append(out, m)
		}
	}
	return out
}

// turnBuilder collects the messages of one turn.
type turnBuilder struct {
	w       *Worker
	id      string
	l       *live
	now     time.Time
	events  []history.Event
	applied []backend.InboxMessage
	bytes   int                   // payload bytes applied
	start   *backend.StartRequest // the turn begins a new generation
	err     error                 // a message could not be taken for a reason that may pass
	fresh   bool                  // the instance was read beyond its state (see load)
}

// maxTurnBytes bounds the payload bytes applied in one turn, so that a turn's history entry
// stays well within the server's max_payload (8 MiB in jetflow's nats.conf).
const maxTurnBytes = 2 << 20

// add takes m into the turn; it returns false if m must wait for the next turn.
func (b *turnBuilder) add(ctx context.Context, m backend.InboxMessage) bool {
	w := b.w
	log := w.log.With().Str(fieldInstance, b.id).Str(fieldKind, string(m.Kind)).Uint64(fieldSeq, m.Seq).Logger()
	if m.Err != nil {
		// An unusable subject read from the inbox: whoever holds it dead-letters it.
		b.applied = append(b.applied, m)
		return true
	}
	if m.Delivered > w.opts.poisonAfter {
		b.deadLetter(ctx, m, fmt.Sprintf("delivered %d times without being processed", m.Delivered))
		return true
	}
	if len(m.Data) > w.opts.maxPayload {
		b.deadLetter(ctx, m, fmt.Sprintf("payload of %d bytes exceeds the limit of %d", len(m.Data), w.opts.maxPayload))
		return true
	}
	if m.Kind == backend.KindStart {
		var req backend.StartRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || req.Name == "" || req.InstanceID != b.id || !validStartEvent(req.Event) {
			b.deadLetter(ctx, m, "start message is not a valid start request")
			return true
		}
		s := b.l.state
		startable := b.start == nil && (s == nil || s.Status.IsTerminal() ||
			(s.Status == history.StatusPending && (s.StartID == req.StartID || req.Event != nil) && b.l.exec == nil))
		if !startable {
			if b.start == nil && s != nil && s.StartID == req.StartID {
				b.applied = append(b.applied, m) // a duplicate of the start that created it
				return true
			}
			if len(b.events) > 0 || b.start != nil {
				return false // a new generation starts in a turn of its own
			}
			if req.Event != nil && b.l.exec != nil {
				return b.addStartEvent(m, &req) // startevent.go
			}
			log.Warn().Str("start_id", req.StartID).Msg("start for an instance that is running: ignored")
			w.stats.discarded.Add(1)
			b.applied = append(b.applied, m)
			if req.Parent != nil {
				b.failParent(&req, fmt.Sprintf("instance %q already exists", b.id))
			}
			return true
		}
		if len(b.events) > 0 {
			return false
		}
		if len(req.Input) == 0 {
			req.Input = json.RawMessage("null")
		}
		b.start = &req
		gen := uint64(1)
		if s != nil {
			gen = s.Generation + 1
		}
		b.events = append(b.events, history.NewExecutionStarted(b.now, req.Name, req.Input, gen, req.Parent))
		if req.Event != nil {
			b.events = append(b.events, startEvent(b.now, req.Event))
		}
		b.applied = append(b.applied, m)
		return true
	}
	if m.Kind == backend.KindRewind {
		return b.addRewind(ctx, m) // rewind.go
	}
	if b.start == nil && b.l.exec == nil {
		if !b.fresh {
			// Discarding is final, so decide on fresh state: the state was read without
			// looking beyond it, and another worker may since have started the instance (or a
			// new generation of it) and acked the start, which the inbox read then misses.
			b.err = fmt.Errorf("instance %q before discarding a message: %w", b.id, backend.ErrConflict)
			return false
		}
		if b.l.state == nil || b.l.state.Status.IsTerminal() {
			status := "does not exist"
			if b.l.state != nil {
				status = "has ended (" + string(b.l.state.Status) + ")"
			}
			log.Info().Str(fieldEvent, m.EventName).Msg("message discarded: the instance " + status)
			w.stats.discarded.Add(1)
			b.applied = append(b.applied, m)
			return true
		}
		// Pending: its start message comes later in the inbox (a client raised right after
		// starting). Such a message cannot precede its start, so this is a start that was
		// never published; drop the message.
		log.Warn().Msg("message for a pending instance without a start: discarded")
		w.stats.discarded.Add(1)
		b.applied = append(b.applied, m)
		return true
	}
	ev, reason := b.event(m)
	switch {
	case reason != "":
		b.deadLetter(ctx, m, reason)
	case ev != nil:
		b.events = append(b.events, *ev)
		b.applied = append(b.applied, m)
		b.bytes += len(m.Data)
	default:
		b.applied = append(b.applied, m) // stale (an earlier generation's result)
	}
	return true
}

// generation is the generation the turn's events belong to.
func (b *turnBuilder) generation() uint64 {
	if b.start != nil {
		return b.events[0].Generation
	}
	return b.l.exec.Generation()
}

// event converts a message into a history event; a reason means the message is malformed.
func (b *turnBuilder) event(m backend.InboxMessage) (*history.Event, string) {
	now := b.now
	switch m.Kind {
	case backend.KindEvent:
		data := m.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		if !json.Valid(data) {
			return nil, fmt.Sprintf("data of event %q is not valid JSON", m.EventName)
		}
		ev := history.NewEventRaised(now, m.EventName, data, m.MsgID)
		return &ev, ""
	case backend.KindResult:
		var r backend.TaskResult
		if err := json.Unmarshal(m.Data, &r); err != nil || r.TaskID <= 0 {
			return nil, "result message is not a valid task result"
		}
		if r.Generation != b.generation() {
			return nil, ""
		}
		var ev history.Event
		switch {
		case r.SubOrchestration && r.Failure != nil:
			ev = history.NewSubOrchestrationFailed(now, r.TaskID, r.Failure)
		case r.SubOrchestration:
			ev = history.NewSubOrchestrationCompleted(now, r.TaskID, r.Result)
		case r.Failure != nil:
			ev = history.NewTaskFailed(now, r.TaskID, r.Failure)
		default:
			ev = history.NewTaskCompleted(now, r.TaskID, r.Result)
		}
		return &ev, ""
	case backend.KindTimer:
		var t backend.TimerFired
		if err := json.Unmarshal(m.Data, &t); err != nil || t.TaskID <= 0 {
			return nil, "timer message is not a valid timer"
		}
		if t.Generation != b.generation() {
			return nil, ""
		}
		ev := history.NewTimerFired(now, t.TaskID)
		return &ev, ""
	case backend.KindTerminate, backend.KindSuspend, backend.KindResume:
		reason := string(m.Data)
		var req backend.TerminateRequest
		if json.Unmarshal(m.Data, &req) == nil {
			reason = req.Reason
		}
		var ev history.Event
		switch m.Kind {
		case backend.KindTerminate:
			ev = history.NewExecutionTerminated(now, reason)
		case backend.KindSuspend:
			ev = history.NewExecutionSuspended(now, reason)
		default:
			ev = history.NewExecutionResumed(now, reason)
		}
		return &ev, ""
	}
	return nil, fmt.Sprintf("unknown message kind %q", m.Kind)
}

func (b *turnBuilder) deadLetter(ctx context.Context, m backend.InboxMessage, reason string) {
	b.w.deadLetter(ctx, m, reason)
	b.applied = append(b.applied, m)
}

func (w *Worker) deadLetter(ctx context.Context, m backend.InboxMessage, reason string) {
	if err := w.b.DeadLetter(ctx, m, reason); err != nil {
		w.log.Error().Err(err).Str("subject", m.Subject).Msg("dead-lettering failed; the message will be redelivered")
		m.Nak(time.Second)
		return
	}
	w.stats.deadLettered.Add(1)
}

// failParent tells a parent that its sub-orchestration could not start.
func (b *turnBuilder) failParent(req *backend.StartRequest, message string) {
	data, _ := json.Marshal(backend.TaskResult{
		Generation: req.Parent.Generation, TaskID: req.Parent.TaskID, SubOrchestration: true,
		Failure: &history.Failure{Type: "InstanceExists", Message: message},
	})
	msg := backend.Message{InstanceID: req.Parent.InstanceID, Kind: backend.KindResult, Data: data, MsgID: "subfail:" + req.StartID}
	if err := b.w.b.Send(context.Background(), msg); err != nil {
		b.w.log.Error().Err(err).Str(fieldInstance, req.Parent.InstanceID).Msg("telling the parent its sub-orchestration failed")
	}
}

// maxContinuations bounds ContinueAsNew generations run back to back in one turn.
const maxContinuations = 100

// finish executes the collected events, commits the turn, publishes its tasks and acks its
// messages. It returns rest, the messages for the next turn.
func (b *turnBuilder) finish(ctx context.Context, rest []backend.InboxMessage) ([]backend.InboxMessage, error) {
	w := b.w
	if b.err != nil {
		return nil, b.err
	}
	if len(b.events) == 0 {
		// Nothing to commit: every message was stale, discarded or dead-lettered. Those
		// decisions are final, so the cached instance may skip the messages from now on.
		for _, m := range b.applied {
			m.Ack()
		}
		if b.l.state != nil && len(b.applied) > 0 {
			b.l.state.LastSeq = max(b.l.state.LastSeq, b.applied[len(b.applied)-1].Seq)
		}
		w.keep(b.id, b.l)
		return rest, nil
	}
	prev := b.l.state
	exec := b.l.exec
	reset := b.start != nil
	if reset {
		exec = durable.NewExecutor(w.reg, b.id, w.log.With().Str(fieldInstance, b.id).Logger())
	}
	res := exec.Execute(b.now, b.events)
	name, input, parent, startID := "", json.RawMessage(nil), (*history.ParentRef)(nil), ""
	if prev != nil {
		name, input, parent, startID = prev.Name, prev.Input, prev.Parent, prev.StartID
	}
	if reset {
		name, input, parent, startID = b.start.Name, b.start.Input, b.start.Parent, b.start.StartID
	}
	gen := exec.Generation()
	for n := 0; res.ContinueAsNew != nil; n++ {
		exec.Close()
		exec = durable.NewExecutor(w.reg, b.id, w.log.With().Str(fieldInstance, b.id).Logger())
		input, gen, reset = res.ContinueAsNew.Input, gen+1, true
		if input == nil {
			input = json.RawMessage("null")
		}
		events := append([]history.Event{history.NewExecutionStarted(b.now, name, input, gen, parent)}, res.ContinueAsNew.CarryOver...)
		if n == maxContinuations {
			events = []history.Event{history.NewExecutionTerminated(b.now, "ContinueAsNew ran more than 100 times in one turn without waiting")}
		}
		res = exec.Execute(b.now, events)
	}

	number := uint64(1)
	var firstTurn uint64
	if prev != nil {
		number, firstTurn = prev.Turn+1, prev.FirstTurn
	}
	turn := &backend.Turn{
		InstanceID: b.id,
		Number:     number,
		Reset:      reset,
		LastSeq:    b.applied[len(b.applied)-1].Seq,
		Events:     res.Events,
		Actions:    res.Actions,
		Generation: gen,
	}
	s := backend.Instance{}
	if prev != nil {
		s = *prev
	}
	if reset {
		if prev != nil && prev.Turn >= prev.FirstTurn && prev.FirstTurn > 0 {
			turn.PrevFirstTurn = firstTurn
		}
		s.ID, s.Name, s.Input, s.Parent, s.StartID, s.Generation, s.FirstTurn = b.id, name, input, parent, startID, gen, number
		if b.start != nil {
			s.CreatedAt = b.start.Time
			if s.CreatedAt.IsZero() {
				s.CreatedAt = b.now
			}
		}
	}
	s.Status, s.Output, s.Failure, s.CustomStatus = res.Status, res.Output, res.Failure, res.CustomStatus
	s.Waiting = nil
	if !res.Waiting.IsEmpty() {
		waiting := res.Waiting
		s.Waiting = &waiting
	}
	s.UpdatedAt, s.Turn, s.LastSeq = b.now, number, turn.LastSeq
	turn.State = s
	if s.Status.IsTerminal() && s.Parent != nil {
		turn.Messages = append(turn.Messages, parentResult(&s))
	}

	if err := w.b.CommitTurn(ctx, turn); err != nil {
		exec.Close()
		return nil, err
	}
	w.stats.turns.Add(1)
	w.log.Debug().Str(fieldInstance, b.id).Uint64(fieldTurn, number).Int("events", len(res.Events)).
		Int("tasks", len(res.Actions)).Str("status", string(res.Status)).Msg("turn committed")
	if h := w.opts.hooks.AfterCommit; h != nil {
		if err := h(b.id, number); err != nil {
			exec.Close()
			return nil, err
		}
	}
	saved, err := w.b.PublishTurn(ctx, turn)
	if err != nil {
		exec.Close()
		return nil, err
	}
	if h := w.opts.hooks.AfterPublish; h != nil {
		if err := h(b.id, number); err != nil {
			exec.Close()
			return nil, err
		}
	}
	for _, m := range b.applied {
		m.Ack()
	}
	if saved.Turn != number {
		exec.Close() // another writer is ahead: reload next time
	} else {
		w.keep(b.id, &live{state: saved, exec: exec})
	}
	return rest, nil
}

// keep puts a running instance back in the cache after a turn; others are let go.
func (w *Worker) keep(id string, l *live) {
	if l.exec == nil {
		return
	}
	if l.exec.Done() {
		l.exec.Close()
		return
	}
	w.cache.put(id, l)
}

// parentResult is the message that reports a finished sub-orchestration to its parent.
func parentResult(s *backend.Instance) backend.Message {
	r := backend.TaskResult{Generation: s.Parent.Generation, TaskID: s.Parent.TaskID, SubOrchestration: true}
	switch s.Status {
	case history.StatusCompleted:
		r.Result = s.Output
	case history.StatusFailed:
		r.Failure = s.Failure
	default:
		r.Failure = &history.Failure{Type: string(s.Status), Message: fmt.Sprintf("sub-orchestration %s: %s", s.Status, s.Output)}
	}
	data, _ := json.Marshal(r)
	return backend.Message{
		InstanceID: s.Parent.InstanceID, Kind: backend.KindResult, Data: data,
		MsgID: fmt.Sprintf("subresult:%s:%d", s.StartID, s.Generation),
	}
}
