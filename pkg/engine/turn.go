package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// live is a running instance as the worker holds it between turns: its replayed executor, at
// the instance's stored version.
type live struct {
	exec    *durable.Executor
	version uint64
}

// executor returns the item's instance replayed: the cached executor if it is at the stored
// version, else one replayed from the history. It returns nil for an instance that is not
// running (absent, pending or ended).
func (w *Worker) executor(ctx context.Context, item *backend.OrchestrationWorkItem) (*durable.Executor, error) {
	s := item.State
	if l := w.cache.get(item.InstanceID); l != nil {
		if s != nil && l.version == s.Version {
			w.opts.metrics.CacheLookup(true)
			return l.exec, nil
		}
		l.exec.Close()
	}
	if s == nil || (s.Status != history.StatusRunning && s.Status != history.StatusSuspended) {
		return nil, nil
	}
	w.opts.metrics.CacheLookup(false)
	events, err := w.b.OrchestrationHistory(ctx, item)
	if err != nil {
		return nil, fmt.Errorf("reading the history of %q: %w", item.InstanceID, err)
	}
	if len(events) == 0 {
		return nil, nil
	}
	exec := w.newExecutor(item.InstanceID)
	if err := exec.Replay(events); err != nil {
		w.log.Error().Str(fieldInstance, item.InstanceID).Err(err).Msg("replay failed; the instance will fail")
	}
	return exec, nil
}

func (w *Worker) newExecutor(id string) *durable.Executor {
	return durable.NewExecutor(w.reg, id, w.log.With().Str(fieldInstance, id).Logger())
}

// turn applies the work item's messages, as many as one turn takes, and completes the item.
func (w *Worker) turn(ctx context.Context, item *backend.OrchestrationWorkItem) (err error) {
	began := time.Now()
	if ref, start, missing := w.missingVersion(item); missing {
		return w.awaitVersion(ctx, item, ref, start) // versions.go
	}
	exec, err := w.executor(ctx, item)
	if err != nil {
		return err
	}
	b := turnBuilder{w: w, item: item, id: item.InstanceID, state: item.State, exec: exec, now: time.Now().UTC(), began: began}
	for _, m := range item.Messages {
		full := b.applied >= w.opts.maxBatch || (b.applied > 0 && b.bytes+len(m.Data) > backend.MaxTurnBytes)
		if full || !b.add(ctx, m) {
			break
		}
	}
	ctx, span := b.startSpan(ctx) // tracing.go
	defer func() { tracing.End(span, err) }()
	if b.err != nil {
		b.closeExec()
		return b.err
	}
	return b.finish(ctx)
}

// turnBuilder collects the messages of one turn.
type turnBuilder struct {
	w       *Worker
	item    *backend.OrchestrationWorkItem
	id      string
	state   *backend.Instance // before the turn; nil: the instance does not exist
	exec    *durable.Executor // nil: not running (absent, pending or ended)
	now     time.Time
	began   time.Time // when the turn began, for its duration
	events  []history.Event
	applied int // messages taken, from the item's first
	dead    []backend.DeadLetterRequest
	// deadClasses are the reason classes of dead, for metrics (metrics.Reason*).
	deadClasses []string
	// messages go to other instances (a parent told that its sub-orchestration cannot start).
	messages []backend.Message
	// failure, if set, fails the instance in this turn (fail.go); it is the turn's only message.
	failure *failure
	bytes   int                   // payload bytes applied
	start   *backend.StartRequest // the turn begins a new generation
	err     error                 // the turn cannot go on
	// terminate is the first terminate request the turn applies (cancel.go).
	terminate *backend.TerminateRequest
}

// add takes m into the turn; it returns false if m must wait for the next turn.
func (b *turnBuilder) add(ctx context.Context, m backend.WorkMessage) bool {
	w := b.w
	log := w.log.With().Str(fieldInstance, b.id).Str(fieldKind, string(m.Kind)).Logger()
	switch {
	case m.Deliveries > w.opts.poisonAfter && (b.state == nil || b.state.WaitingForVersion == ""):
		// The message was taken that many times and never applied: it is likely what stops
		// the workers that take it. It is dead-lettered and the instance fails (fail.go). (An
		// instance that waited for a worker serving its version had its messages handed back
		// while it waited: those deliveries say nothing of the message.)
		return b.failOn(m, FailurePoisonMessage, fmt.Sprintf("a %s message was delivered %d times without being processed", m.Kind, m.Deliveries))
	case m.Kind == backend.KindStart:
		// The payload limit applies to the start's input and event data (StartRequest.CheckPayload),
		// as clients apply it, not to the message's envelope.
		return b.addStart(m, log)
	case len(m.Data) > w.opts.maxPayload:
		b.deadLetter(metrics.ReasonPayloadTooLarge, fmt.Sprintf("payload of %d bytes exceeds the limit of %d", len(m.Data), w.opts.maxPayload))
		return true
	case m.Kind == backend.KindRewind:
		return b.addRewind(ctx, m) // rewind.go
	case b.start == nil && b.exec == nil:
		status, discard := "does not exist", metrics.DiscardNotFound
		switch {
		case b.state == nil:
		case b.state.Status == history.StatusPending:
			// Its start message comes later in the inbox (a client raised right after
			// starting)? A message cannot precede its start, so this is a start that was
			// never published.
			status, discard = "is pending without a start", metrics.DiscardPending
		default:
			status, discard = "has ended ("+string(b.state.Status)+")", metrics.DiscardEnded
		}
		log.Info().Str(fieldEvent, m.EventName).Msg("message discarded: the instance " + status)
		w.stats.discarded.Add(1)
		if m.Kind == backend.KindEvent {
			w.opts.metrics.EventsDiscarded(discard, 1)
		}
		b.applied++
		return true
	}
	ev, reason := b.event(m)
	switch {
	case reason != "":
		if m.Kind == backend.KindEvent {
			w.opts.metrics.EventsDiscarded(metrics.DiscardInvalid, 1)
		}
		b.deadLetter(metrics.ReasonInvalidMessage, reason)
	case ev != nil:
		b.noteTerminate(m)
		b.events = append(b.events, *ev)
		b.applied++
		b.bytes += len(m.Data)
	default:
		b.applied++ // stale (an earlier generation's result)
	}
	return true
}

// addStart takes a start message into the turn.
func (b *turnBuilder) addStart(m backend.WorkMessage, log zerolog.Logger) bool {
	var req backend.StartRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Name == "" || req.InstanceID != b.id || !validStartEvent(req.Event) {
		return b.failOn(m, FailureInvalidStart, "the start message is not a valid start request")
	}
	if err := req.CheckPayload(b.w.opts.maxPayload); err != nil {
		return b.failOn(m, FailurePayloadTooLarge, err.Error())
	}
	s := b.state
	startable := b.start == nil && (s == nil || s.Status.IsTerminal() ||
		(s.Status == history.StatusPending && (s.StartID == req.StartID || req.Event != nil) && b.exec == nil))
	if !startable {
		if b.start == nil && s != nil && s.StartID == req.StartID {
			if req.Event != nil && b.exec != nil {
				// Its generation was started from its pending record, by a start-with-event
				// that came first (below); its own event is raised now, first in its turn.
				if len(b.events) > 0 {
					return false
				}
				return b.addStartEvent(m, &req)
			}
			b.applied++ // a duplicate of the start that created it
			return true
		}
		if len(b.events) > 0 || b.start != nil {
			return false // a new generation starts in a turn of its own
		}
		if req.Event != nil && b.exec != nil {
			return b.addStartEvent(m, &req) // startevent.go
		}
		log.Warn().Str("start_id", req.StartID).Msg("start for an instance that is running: ignored")
		b.w.stats.discarded.Add(1)
		b.applied++
		if req.Parent != nil {
			b.messages = append(b.messages, failedStart(&req, fmt.Sprintf("instance %q already exists", b.id)))
		}
		return true
	}
	if len(b.events) > 0 {
		return false
	}
	if s != nil && s.Status == history.StatusPending && s.StartID != req.StartID {
		// A start-with-event that came before the start the instance waits for (the one whose
		// client recorded it): that start's generation begins, with this start's event, so that
		// the client told it created the instance sees its own input run.
		req = backend.StartRequest{InstanceID: b.id, Name: s.Name, Input: s.Input, StartID: s.StartID,
			Parent: s.Parent, Time: s.CreatedAt, Event: req.Event, Version: s.OrchestratorVersion}
	}
	if len(req.Input) == 0 {
		req.Input = json.RawMessage("null")
	}
	req.Version = b.w.startVersion(&req) // versions.go
	b.start = &req
	gen := uint64(1)
	if s != nil {
		gen = s.Generation + 1
	}
	started := history.NewExecutionStarted(b.now, req.Name, req.Input, gen, req.Parent)
	started.Version = req.Version
	b.events = append(b.events, started)
	if req.Event != nil {
		b.events = append(b.events, startEvent(b.now, req.Event))
	}
	b.applied++
	return true
}

// generation is the generation the turn's events belong to.
func (b *turnBuilder) generation() uint64 {
	if b.start != nil {
		return b.events[0].Generation
	}
	return b.exec.Generation()
}

// event converts a message into a history event of the turn's generation (decode.go).
func (b *turnBuilder) event(m backend.WorkMessage) (*history.Event, string) {
	return messageEvent(b.now, m, b.generation)
}

// deadLetter takes the message being added into the turn as one that is dead-lettered, for
// reason, of class (a metrics.Reason* constant).
func (b *turnBuilder) deadLetter(class, reason string) {
	b.dead = append(b.dead, backend.DeadLetterRequest{Index: b.applied, Reason: reason})
	b.deadClasses = append(b.deadClasses, class)
	b.applied++
}

// failedStart is the message that tells a parent its sub-orchestration could not start.
func failedStart(req *backend.StartRequest, message string) backend.Message {
	data, _ := json.Marshal(backend.TaskResult{
		Generation: req.Parent.Generation, TaskID: req.Parent.TaskID, Rewind: req.Parent.Rewind, SubOrchestration: true,
		Failure: &history.Failure{Type: "InstanceExists", Message: message},
	})
	return backend.Message{InstanceID: req.Parent.InstanceID, Kind: backend.KindResult, Data: data}
}

// closeExec ends the executor of a turn that failed (the cache gave it up for the turn).
func (b *turnBuilder) closeExec() {
	if b.exec != nil {
		b.exec.Close()
	}
}

// maxContinuations bounds ContinueAsNew generations run back to back in one turn.
const maxContinuations = 100

// finish executes the collected events and completes the work item with them.
func (b *turnBuilder) finish(ctx context.Context) error {
	w := b.w
	if b.failure != nil {
		return b.finishFailed(ctx)
	}
	if len(b.events) == 0 {
		// Nothing to commit: every message was stale, discarded or dead-lettered.
		_, err := w.b.CompleteOrchestrationWorkItem(ctx, b.item, &backend.OrchestrationCompletion{
			Applied: b.applied, DeadLetters: b.dead, Messages: b.messages,
		})
		if err != nil {
			b.closeExec()
			return err
		}
		b.countDeadLetters()
		if b.state != nil {
			w.keep(b.id, b.exec, b.state.Version)
		}
		return nil
	}
	x := b.execute()
	exec, res := x.exec, x.res
	actions, sent := b.sentEvents(res.Actions) // cancel.go
	c := &backend.OrchestrationCompletion{
		Applied: b.applied, DeadLetters: b.dead, NewGeneration: x.input != nil,
		Events: res.Events, Actions: actions, Messages: append(append(b.messages, sent...), b.terminateChildren(x)...),
		State: b.nextState(x),
	}
	if f := b.checkLimits(c.State.HistoryEvents, pendingTasks(res.Waiting)); f != nil {
		exec.Close()
		f.start = b.start
		b.failure = f
		return b.finishFailed(ctx)
	}
	if c.State.Status.IsTerminal() && c.State.Parent != nil {
		c.Messages = append(c.Messages, parentResult(&c.State))
	}
	saved, err := w.b.CompleteOrchestrationWorkItem(ctx, b.item, c)
	if err != nil {
		exec.Close()
		return err
	}
	b.committed(c, res)
	if c.State.Status.IsTerminal() && res.OutstandingActivities > 0 {
		w.cancelActivities(ctx, b.id, c.State.Generation, c.State.Status)
	}
	w.log.Debug().Str(fieldInstance, b.id).Int("events", len(res.Events)).
		Int("tasks", len(res.Actions)).Str("status", string(res.Status)).Msg("turn committed")
	w.keep(b.id, exec, saved.Version)
	return nil
}

// execution is what a turn's events did.
type execution struct {
	exec *durable.Executor
	res  *durable.TurnResult
	// input is the input of the generation the turn began (nil if it began none).
	input json.RawMessage
}

// execute runs the turn's events on the instance's executor (a new one for a new generation,
// and for each ContinueAsNew).
func (b *turnBuilder) execute() execution {
	exec := b.exec
	var input json.RawMessage
	if b.start != nil {
		input = b.start.Input
		if exec != nil {
			exec.Close()
		}
		exec = b.w.newExecutor(b.id)
	}
	res := exec.Execute(b.now, b.events)
	name, parent := b.startName()
	gen := exec.Generation()
	for n := 0; res.ContinueAsNew != nil; n++ {
		version := exec.Version() // the next generation runs the same version
		exec.Close()
		exec = b.w.newExecutor(b.id)
		input = res.ContinueAsNew.Input
		if input == nil {
			input = json.RawMessage("null")
		}
		gen++
		started := history.NewExecutionStarted(b.now, name, input, gen, parent)
		started.Version = version
		events := append([]history.Event{started}, res.ContinueAsNew.CarryOver...)
		if n == maxContinuations {
			events = []history.Event{history.NewExecutionTerminated(b.now, "ContinueAsNew ran more than 100 times in one turn without waiting")}
		}
		res = exec.Execute(b.now, events)
	}
	return execution{exec: exec, res: res, input: input}
}

// startName returns the orchestrator name and parent of the generation the turn runs.
func (b *turnBuilder) startName() (string, *history.ParentRef) {
	if b.start != nil {
		return b.start.Name, b.start.Parent
	}
	return b.state.Name, b.state.Parent
}

// nextState is the instance's state after the turn.
func (b *turnBuilder) nextState(x execution) backend.Instance {
	res := x.res
	s := backend.Instance{}
	if b.state != nil {
		s = *b.state
	}
	if b.start != nil {
		s.ID, s.Name, s.Input, s.Parent, s.StartID = b.id, b.start.Name, b.start.Input, b.start.Parent, b.start.StartID
		s.ScheduledStartTime = b.start.StartAt
		s.CreatedAt = b.start.Time
		if s.CreatedAt.IsZero() {
			s.CreatedAt = b.now
		}
	}
	if x.input != nil {
		if b.start == nil {
			s.ScheduledStartTime = time.Time{} // a generation of ContinueAsNew starts at once
		}
		s.Generation, s.Input = x.exec.Generation(), x.input
		s.HistoryEvents = 0
	}
	s.HistoryEvents += len(res.Events)
	s.OrchestratorVersion, s.WaitingForVersion = x.exec.Version(), ""
	b.warn(&s)
	s.Status, s.Output, s.Failure, s.CustomStatus = res.Status, res.Output, res.Failure, res.CustomStatus
	s.Waiting = nil
	if !res.Waiting.IsEmpty() {
		waiting := res.Waiting
		s.Waiting = &waiting
	}
	s.UpdatedAt = b.now
	return s
}

// keep puts a running instance's executor back in the cache after a turn; others are let go.
func (w *Worker) keep(id string, exec *durable.Executor, version uint64) {
	if exec == nil {
		return
	}
	if exec.Done() {
		exec.Close()
		return
	}
	w.cache.put(id, &live{exec: exec, version: version})
}

// parentResult is the message that reports a finished sub-orchestration to its parent.
func parentResult(s *backend.Instance) backend.Message {
	r := backend.TaskResult{Generation: s.Parent.Generation, TaskID: s.Parent.TaskID, Rewind: s.Parent.Rewind, SubOrchestration: true}
	switch s.Status {
	case history.StatusCompleted:
		r.Result = s.Output
	case history.StatusFailed:
		r.Failure = s.Failure
	default:
		r.Failure = &history.Failure{Type: string(s.Status), Message: fmt.Sprintf("sub-orchestration %s: %s", s.Status, s.Output)}
	}
	data, _ := json.Marshal(r)
	return backend.Message{InstanceID: s.Parent.InstanceID, Kind: backend.KindResult, Data: data}
}
