package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"runtime/debug"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Action is a task the orchestrator scheduled in a turn; see history.Action.
type Action = history.Action

// ActionKind says what an Action asks for.
type ActionKind = history.ActionKind

// The action kinds.
const (
	ActionActivity         = history.ActionActivity
	ActionTimer            = history.ActionTimer
	ActionSubOrchestration = history.ActionSubOrchestration
	ActionSendEvent        = history.ActionSendEvent
	ActionCancelTimer      = history.ActionCancelTimer
)

// Waiting lists what an instance waits for; see history.Waiting.
type Waiting = history.Waiting

// ContinueAsNew is the request of an orchestrator that called ContinueAsNew: the engine starts
// the next generation with Input, followed by the CarryOver events.
type ContinueAsNew struct {
	Input     json.RawMessage
	CarryOver []history.Event
}

// TurnResult is the outcome of one turn: what to append to the history, what to publish, and the
// instance's state afterwards.
type TurnResult struct {
	Events        []history.Event
	Actions       []Action
	Status        history.RuntimeStatus
	Output        json.RawMessage
	Failure       *history.Failure
	CustomStatus  json.RawMessage
	Waiting       Waiting
	ContinueAsNew *ContinueAsNew
	// Buffered counts the turn's raised events that found no wait for their name pending (they
	// are kept for a later wait, or carried over by ContinueAsNew).
	Buffered int
	// OutstandingActivities, in the turn that ends the generation, counts its activities that
	// were scheduled and had not completed: the worker cancels them.
	OutstandingActivities int
}

// Executor holds one generation of one instance in memory: the orchestrator, parked in its own
// goroutine at the Await it is blocked on, and the state of its tasks. Replay feeds it the
// history; Execute feeds it new events and returns the turn's result. Only one goroutine at a time
// runs: either the caller of Replay/Execute or the orchestrator, handing over through channels.
//
// An Executor does no I/O and never reads the clock: a turn's time comes from its
// OrchestratorStarted event.
type Executor struct {
	reg        *Registry
	log        zerolog.Logger
	instanceID string
	name       string
	gen        uint64
	version    string // the orchestrator version the generation runs
	input      json.RawMessage
	ctx        *OrchestrationContext

	// The orchestrator's goroutine.
	resume   chan bool // true: run on; false: exit
	yield    chan struct{}
	started  bool
	finished bool
	awaiting *Task
	output   json.RawMessage
	failure  *history.Failure

	now         time.Time
	replaying   bool
	err         error // non-determinism found during replay
	nextTaskID  int
	uuidCounter int
	tasks       map[int]*Task
	unconfirmed []*Task // scheduled by code, not yet recorded in the history
	waiters     map[string][]*Task
	buffered    []history.Event // raised events nobody waited for yet, in arrival order
	bufferedNow int             // events buffered in this turn (TurnResult.Buffered)
	suspended   bool
	held        []history.Event // events that arrived while suspended
	eventIDs    map[string]struct{}

	// Patching (patch.go).
	turn       int            // OrchestratorStarted events applied: the turn being run, from 1
	patches    map[string]int // patch ID → the turn its marker is recorded in
	newPatches []string       // patches taken for the first time in this turn, to record

	customStatus  json.RawMessage
	continueAsNew *continueAsNew
	carryOver     []history.Event
	terminated    bool
	termReason    string
	recordedEnd   bool // the history holds this generation's end
	newEvents     []history.Event

	// Rewind (rewind.go).
	rewinds     int     // ExecutionRewound events applied
	tolerateEnd bool    // replay dropped a failed end that a later rewind disregards
	observed    []int   // tasks whose failure Await returned since the orchestrator last blocked
	failedTasks []int   // observed when the orchestrator returned its error
	reissued    []*Task // pending tasks a rewind in this turn schedules again
}

// NewExecutor returns an executor for instanceID; it starts when Replay or Execute sees an
// ExecutionStarted event.
func NewExecutor(reg *Registry, instanceID string, log zerolog.Logger) *Executor {
	e := &Executor{
		reg:        reg,
		log:        log,
		instanceID: instanceID,
		tasks:      map[int]*Task{},
		waiters:    map[string][]*Task{},
		eventIDs:   map[string]struct{}{},
		patches:    map[string]int{},
	}
	e.ctx = &OrchestrationContext{e: e}
	return e
}

// Replay applies past events. It returns an error wrapping ErrNonDeterminism if the orchestrator
// code no longer matches them; the next Execute then fails the instance with that error.
func Replay(reg *Registry, instanceID string, log zerolog.Logger, past []history.Event) (*Executor, error) {
	e := NewExecutor(reg, instanceID, log)
	return e, e.Replay(past)
}

// Replay applies past events, which must start with this generation's first turn.
func (e *Executor) Replay(past []history.Event) error {
	past, e.tolerateEnd = withoutRewound(past)
	e.scanPatches(past)
	e.replaying = true
	defer func() { e.replaying = false }()
	for _, ev := range past {
		if e.err != nil {
			break
		}
		e.apply(ev)
	}
	if e.err == nil {
		e.checkTurnRecorded()
	}
	return e.err
}

// Generation returns the generation the executor runs (set by ExecutionStarted).
func (e *Executor) Generation() uint64 { return e.gen }

// Version returns the orchestrator version the executor runs (set by ExecutionStarted).
func (e *Executor) Version() string { return e.version }

// Done reports whether this generation has ended: completed, failed, terminated or continued as new.
func (e *Executor) Done() bool { return e.finished || e.terminated || e.err != nil }

// Execute runs one turn at time now: it applies events and returns what to record and publish.
// Events that change nothing (a duplicate result, an event ID seen before, anything after the end)
// are left out of the result's Events.
func (e *Executor) Execute(now time.Time, events []history.Event) *TurnResult {
	e.newEvents, e.bufferedNow = nil, 0
	e.record(history.NewOrchestratorStarted(now))
	for i, ev := range events {
		if e.Done() && ev.Type != history.ExecutionRewound {
			if e.continueAsNew != nil && !e.continueAsNew.discard {
				e.carry(events[i:])
			}
			break
		}
		e.record(ev)
	}
	return e.endTurn(now)
}

// Close ends the orchestrator's goroutine if it is parked. Call it when discarding an executor.
func (e *Executor) Close() {
	if e.started && !e.finished {
		e.resume <- false
		<-e.yield
		e.finished = true
	}
}

func (e *Executor) record(ev history.Event) {
	if e.apply(ev) {
		e.newEvents = append(e.newEvents, ev)
	}
}

func (e *Executor) endTurn(now time.Time) *TurnResult {
	res := &TurnResult{}
	endsNow := e.Done() && !e.recordedEnd
	var end *history.Event // the event that records this generation's end, if it ends now
	switch {
	case e.err != nil:
		res.Status = history.StatusFailed
		res.Failure = &history.Failure{Type: "NonDeterminism", Message: e.err.Error()}
		ev := history.NewExecutionCompleted(now, res.Status, nil, res.Failure)
		end = &ev
	case e.terminated:
		res.Status = history.StatusTerminated
		res.Output, _ = json.Marshal(e.termReason)
	case e.finished && e.continueAsNew != nil:
		res.Status = history.StatusContinuedAsNew
		if !e.continueAsNew.discard {
			e.carry(e.buffered)
			e.carry(e.held)
			e.buffered, e.held = nil, nil
		}
		res.ContinueAsNew = &ContinueAsNew{Input: e.continueAsNew.input, CarryOver: e.carryOver}
		ev := history.NewContinuedAsNew(now, e.continueAsNew.input)
		end = &ev
	case e.finished && e.failure != nil:
		res.Status, res.Failure = history.StatusFailed, e.failure
		ev := history.NewExecutionCompleted(now, res.Status, nil, e.failure)
		end = &ev
	case e.finished:
		res.Status, res.Output = history.StatusCompleted, e.output
		ev := history.NewExecutionCompleted(now, res.Status, e.output, nil)
		end = &ev
	case e.suspended:
		res.Status = history.StatusSuspended
	default:
		res.Status = history.StatusRunning
	}
	if e.err == nil {
		// What the code scheduled in this turn; after a replay failure the code is not the
		// code that made the history, so nothing it asks for is done.
		for _, t := range e.unconfirmed {
			res.Actions = append(res.Actions, t.action())
			e.newEvents = append(e.newEvents, t.scheduledEvent(now))
		}
		res.Actions = append(res.Actions, e.reissueActions(now)...)
		e.newEvents = append(e.newEvents, e.patchMarkers(now)...)
		if endsNow && e.continueAsNew == nil {
			res.Actions = append(res.Actions, e.cancelTimers()...)
		}
	}
	e.unconfirmed, e.reissued, e.newPatches = nil, nil, nil
	if end != nil && !e.recordedEnd {
		e.newEvents = append(e.newEvents, *end)
	}
	if e.Done() {
		e.recordedEnd = true
		res.OutstandingActivities = e.outstandingActivities()
	}
	res.Events = e.newEvents
	res.Buffered = e.bufferedNow
	e.newEvents = nil
	res.CustomStatus = e.customStatus
	res.Waiting = e.waiting()
	return res
}

// cancelTimers are the actions that cancel the timers of a generation that ends: those that have
// not fired (pending, or given up by a wait whose event came first), so none is left scheduled.
// (A generation that continues as new leaves its timers to fire; they are stale then, and
// ignored.)
func (e *Executor) cancelTimers() []Action {
	ids := make([]int, 0, len(e.tasks))
	for id, t := range e.tasks {
		if t.kind == kindTimer && (!t.done || errors.Is(t.err, errCanceled)) {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	out := make([]Action, len(ids))
	for i, id := range ids {
		out[i] = Action{Kind: ActionCancelTimer, TaskID: id}
	}
	return out
}

// RunningSubOrchestrations returns the instance IDs of the sub-orchestrations the generation
// started and has no result of, in the order it started them (a recursive terminate
// terminates them).
func (e *Executor) RunningSubOrchestrations() []string {
	ids := make([]int, 0, len(e.tasks))
	for id, t := range e.tasks {
		if t.kind == kindSubOrchestration && !t.done {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = e.tasks[id].childID
	}
	return out
}

// carry keeps the raised events among evs for the next generation.
func (e *Executor) carry(evs []history.Event) {
	for _, ev := range evs {
		if ev.Type == history.EventRaised {
			e.carryOver = append(e.carryOver, ev)
		}
	}
}

// apply applies one event and reports whether it changed anything (and so belongs in the history).
func (e *Executor) apply(ev history.Event) bool {
	switch ev.Type {
	case history.OrchestratorStarted:
		if e.replaying && e.started {
			e.checkTurnRecorded()
		}
		e.now = ev.Timestamp
		e.turn++
		return true
	case history.PatchMarker:
		return true // counted before the replay (scanPatches)
	case history.ExecutionCompleted, history.ContinuedAsNew:
		e.recordedEnd = true
		return true
	case history.ExecutionRewound:
		// Applies even to a generation that failed again while a rewind replayed it: the
		// marker is recorded and the new failure follows it.
		e.applyRewound()
		return true
	}
	if e.Done() {
		return false
	}
	switch ev.Type {
	case history.ExecutionStarted:
		if e.started {
			return false
		}
		e.start(ev)
		return true
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated, history.EventSent:
		e.confirm(ev)
		return true
	case history.TaskCompleted, history.TaskFailed, history.TimerFired,
		history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
		return e.applyResult(ev)
	case history.EventRaised:
		return e.applyRaised(ev)
	case history.ExecutionSuspended:
		if e.suspended {
			return false
		}
		e.suspended = true
		return true
	case history.ExecutionResumed:
		if !e.suspended {
			return false
		}
		e.applyResumed()
		return true
	case history.ExecutionTerminated:
		e.terminated, e.termReason = true, ev.Reason
		e.Close()
		return true
	}
	return false
}

// applyResult applies a task's (activity's, timer's or sub-orchestration's) result: held while
// suspended, ignored for a task that is unknown, done, of another kind or already held.
func (e *Executor) applyResult(ev history.Event) bool {
	t := e.tasks[ev.TaskID]
	if t == nil || t.done || t.kind != kindFor(ev.Type) || e.isHeld(ev) {
		return false
	}
	if e.suspended {
		e.held = append(e.held, ev)
		return true
	}
	e.completeTask(t, ev)
	e.run()
	return true
}

// applyRaised applies a raised event: held while suspended, ignored if its event ID was seen.
func (e *Executor) applyRaised(ev history.Event) bool {
	if ev.EventID != "" {
		if _, seen := e.eventIDs[ev.EventID]; seen {
			return false
		}
		e.eventIDs[ev.EventID] = struct{}{}
	}
	if e.suspended {
		e.held = append(e.held, ev)
		return true
	}
	e.deliver(ev)
	e.run()
	return true
}

// applyResumed ends a suspension: the events and results held meanwhile are applied in order,
// until the orchestrator is done.
func (e *Executor) applyResumed() {
	e.suspended = false
	held := e.held
	e.held = nil
	for _, h := range held {
		if e.Done() {
			break
		}
		if h.Type == history.EventRaised {
			e.deliver(h)
		} else {
			e.completeTask(e.tasks[h.TaskID], h)
		}
		e.run()
	}
}

func (e *Executor) isHeld(ev history.Event) bool {
	for _, h := range e.held {
		if h.Type == ev.Type && h.TaskID == ev.TaskID {
			return true
		}
	}
	return false
}

func kindFor(t history.EventType) taskKind {
	switch t {
	case history.TaskCompleted, history.TaskFailed, history.TaskScheduled:
		return kindActivity
	case history.TimerFired, history.TimerCreated:
		return kindTimer
	case history.EventSent:
		return kindSend
	}
	return kindSubOrchestration
}

func (e *Executor) completeTask(t *Task, ev history.Event) {
	switch ev.Type {
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		failure := ev.Failure
		if failure == nil {
			failure = &history.Failure{Message: "unknown failure"}
		}
		t.complete(nil, &TaskFailedError{Kind: t.kind.String(), Name: t.name, TaskID: t.id, Failure: failure})
	default:
		t.complete(ev.Result, nil)
	}
}

// start begins the orchestrator's goroutine and runs it until it first blocks.
func (e *Executor) start(ev history.Event) {
	e.started = true
	e.name, e.input, e.gen, e.version = ev.Name, ev.Input, ev.Generation, ev.Version
	e.log = e.log.With().Str("orchestrator", ev.Name).Logger()
	fn, ok := e.reg.OrchestratorVersion(ev.Name, ev.Version)
	if !ok {
		ref := OrchestratorRef{Name: ev.Name, Version: ev.Version}
		e.finished = true
		e.failure = &history.Failure{Type: "NotRegistered", Message: fmt.Sprintf("orchestrator %s: %v on this worker", ref, ErrNotRegistered)}
		return
	}
	e.resume = make(chan bool)
	e.yield = make(chan struct{})
	go e.body(fn)
	e.step()
}

func (e *Executor) body(fn OrchestratorFunc) {
	defer func() {
		if r := recover(); r != nil {
			e.failure = &history.Failure{Type: "Panic", Message: fmt.Sprint(r), Stack: stack()}
		}
		e.finished = true
		e.yield <- struct{}{}
	}()
	if !<-e.resume {
		return
	}
	out, err := fn(e.ctx)
	switch {
	case e.continueAsNew != nil:
	case err != nil:
		e.failure = &history.Failure{Type: FailureType(err), Message: err.Error()}
		e.failedTasks = append([]int(nil), e.observed...)
	default:
		b, merr := json.Marshal(out)
		if merr != nil {
			e.failure = &history.Failure{Type: "EncodingError", Message: fmt.Sprintf("encoding orchestrator output: %v", merr)}
		}
		e.output = b
	}
}

// step hands control to the orchestrator until it blocks or returns.
func (e *Executor) step() {
	e.resume <- true
	<-e.yield
}

// run resumes the orchestrator for as long as the task it awaits is done.
func (e *Executor) run() {
	for e.started && !e.finished && e.awaiting != nil && e.awaiting.done {
		e.step()
	}
}

// checkTurnRecorded verifies, at the end of a replayed turn, that everything the code did in
// that turn is in the history.
func (e *Executor) checkTurnRecorded() {
	if e.err != nil {
		return
	}
	if len(e.unconfirmed) > 0 {
		t := e.unconfirmed[0]
		e.err = nonDeterminism("orchestrator %q scheduled %s %q as task %d, which the history does not have", e.name, t.kind, t.name, t.id)
		return
	}
	if e.Done() && !e.recordedEnd && !e.terminated && !e.tolerateEnd {
		e.err = nonDeterminism("orchestrator %q returned, but its history goes on", e.name)
	}
}

// confirm matches a replayed TaskScheduled, TimerCreated or SubOrchestrationInstanceCreated
// event with the task the code scheduled.
func (e *Executor) confirm(ev history.Event) {
	for i, t := range e.unconfirmed {
		if t.id != ev.TaskID {
			continue
		}
		if t.kind != kindFor(ev.Type) || (t.kind != kindTimer && t.name != ev.Name) || (t.kind == kindSend && t.childID != ev.InstanceID) {
			e.err = nonDeterminism("task %d: the history has %s %q, but orchestrator %q now schedules %s %q",
				ev.TaskID, kindFor(ev.Type), ev.Name, e.name, t.kind, t.name)
			return
		}
		e.unconfirmed = append(e.unconfirmed[:i], e.unconfirmed[i+1:]...)
		return
	}
	e.err = nonDeterminism("the history has %s %q as task %d, but orchestrator %q did not schedule it",
		kindFor(ev.Type), ev.Name, ev.TaskID, e.name)
}

func (e *Executor) newLeaf(kind taskKind, name string, input json.RawMessage) *Task {
	e.nextTaskID++
	t := &Task{e: e, kind: kind, id: e.nextTaskID, name: name, input: input}
	e.tasks[t.id] = t
	e.unconfirmed = append(e.unconfirmed, t)
	return t
}

// newActivity schedules an attempt of activity name, bounded by timeouts, with the previous
// attempt's heartbeat details.
func (e *Executor) newActivity(name string, input json.RawMessage, timeouts *history.ActivityTimeouts, details json.RawMessage) *Task {
	t := e.newLeaf(kindActivity, name, input)
	t.timeouts, t.details = timeouts, details
	return t
}

func (e *Executor) newTimer(fireAt time.Time) *Task {
	t := e.newLeaf(kindTimer, "", nil)
	t.fireAt = fireAt
	return t
}

func (e *Executor) failedTask(kind taskKind, name string, err error) *Task {
	t := &Task{e: e, kind: kind, name: name}
	t.complete(nil, err)
	return t
}

func (t *Task) action() Action {
	a := Action{TaskID: t.id, Name: t.name, Input: t.input}
	switch t.kind {
	case kindTimer:
		a.Kind, a.FireAt = ActionTimer, t.fireAt
	case kindSubOrchestration:
		a.Kind, a.InstanceID = ActionSubOrchestration, t.childID
	case kindSend:
		a.Kind, a.InstanceID = ActionSendEvent, t.childID
		a.EventID = history.SentEventID(t.e.instanceID, t.e.gen, t.id)
	default:
		a.Kind, a.Timeouts, a.HeartbeatDetails = ActionActivity, t.timeouts, t.details
	}
	return a
}

func (t *Task) scheduledEvent(now time.Time) history.Event {
	switch t.kind {
	case kindTimer:
		return history.NewTimerCreated(now, t.id, t.fireAt)
	case kindSubOrchestration:
		return history.NewSubOrchestrationCreated(now, t.id, t.name, t.childID, t.input)
	case kindSend:
		return history.NewEventSent(now, t.id, t.childID, t.name, t.input, history.SentEventID(t.e.instanceID, t.e.gen, t.id))
	}
	return history.NewTaskScheduled(now, t.id, t.name, t.input)
}

// attach puts an event wait in line: it takes the oldest buffered event of its name, or joins
// the end of the waiter queue.
func (e *Executor) attach(t *Task) {
	for i, ev := range e.buffered {
		if ev.Name == t.name {
			e.buffered = append(e.buffered[:i], e.buffered[i+1:]...)
			t.complete(ev.Input, nil)
			return
		}
	}
	t.attached = true
	e.waiters[t.name] = append(e.waiters[t.name], t)
}

// detach withdraws a pending event wait (and those inside a pending WhenAny/WhenAll) from the
// waiter queue, so it consumes no event.
func (e *Executor) detach(t *Task) {
	if t.done {
		return
	}
	switch t.kind {
	case kindEvent:
		if !t.attached {
			return
		}
		t.attached = false
		q := e.waiters[t.name]
		for i, w := range q {
			if w == t {
				e.waiters[t.name] = append(q[:i:i], q[i+1:]...)
				break
			}
		}
		if len(e.waiters[t.name]) == 0 {
			delete(e.waiters, t.name)
		}
	case kindAny, kindAll:
		for _, c := range t.children {
			e.detach(c)
		}
	}
}

// reattach puts withdrawn event waits back in line when the code awaits them again.
func (e *Executor) reattach(t *Task) {
	if t.done {
		return
	}
	switch t.kind {
	case kindEvent:
		if !t.attached {
			e.attach(t)
		}
	case kindAny, kindAll:
		for _, c := range t.children {
			e.reattach(c)
		}
	}
}

// deliver hands a raised event to the first waiter of its name, or buffers it.
func (e *Executor) deliver(ev history.Event) {
	if q := e.waiters[ev.Name]; len(q) > 0 {
		t := q[0]
		if len(q) == 1 {
			delete(e.waiters, ev.Name)
		} else {
			e.waiters[ev.Name] = q[1:]
		}
		t.attached = false
		t.complete(ev.Input, nil)
		return
	}
	e.buffered = append(e.buffered, ev)
	if !e.replaying {
		e.bufferedNow++
	}
}

// outstandingActivities counts the activities scheduled and not completed.
func (e *Executor) outstandingActivities() int {
	n := 0
	for _, t := range e.tasks {
		if t.kind == kindActivity && !t.done {
			n++
		}
	}
	return n
}

func (e *Executor) waiting() Waiting {
	var w Waiting
	if e.Done() {
		return w
	}
	for name := range e.waiters {
		w.Events = append(w.Events, name)
	}
	sort.Strings(w.Events)
	ids := make([]int, 0, len(e.tasks))
	for id, t := range e.tasks {
		if !t.done {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	for _, id := range ids {
		t := e.tasks[id]
		switch t.kind {
		case kindTimer:
			w.Timers = append(w.Timers, t.fireAt)
		case kindActivity:
			w.Activities = append(w.Activities, t.name)
		case kindSubOrchestration:
			w.SubOrchestrations = append(w.SubOrchestrations, t.childID)
		}
	}
	return w
}

// stack returns the orchestrator goroutine's stack for a panic report.
func stack() string { return string(debug.Stack()) }
