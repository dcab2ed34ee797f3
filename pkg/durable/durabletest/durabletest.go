// Package durabletest runs an orchestrator with no infrastructure: the test plays the engine,
// completing activities, raising events and firing timers one turn at a time on a fake clock.
//
//	run := durabletest.New(t, reg, "BudgetApproval", nil)
//	run.Raise("Approval", true)
//	run.Complete(run.Activity("ApproveBudget"), nil)
//	var out string
//	run.Output(&out)
//
// After every turn the whole history is replayed into a fresh executor, which must accept it
// and reach the same state (status, output, failure, custom status, what it waits for). An
// orchestrator that is not deterministic (one that reads the wall clock, iterates a map, keeps
// state in globals...) fails the test at the turn where replay diverges.
//
// Every method fails the test (t.Fatalf) on misuse or divergence, so a test reads as a script.
// A Run is not safe for concurrent use.
package durabletest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Epoch is the fake clock's start: the orchestrator's CurrentTime in its first turn.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// InstanceID is the instance ID every Run uses.
const InstanceID = "durabletest"

// Run is one orchestration instance driven by a test. The fake clock stands still except in
// FireTimers, so an orchestrator's timers are due at predictable times (Epoch + d).
type Run struct {
	t       testing.TB
	reg     *durable.Registry
	name    string
	gen     uint64
	exec    *durable.Executor
	past    []history.Event // the current generation's history
	now     time.Time
	last    *durable.TurnResult
	pending []durable.Action // scheduled and not yet completed, in task order
	sent    []durable.Action // the events the orchestrator sent (SendEvent), in order
}

// New starts orchestrator name with input (encoded as JSON; a json.RawMessage is used as it is,
// nil means no input) and runs its first turn. The orchestrator's Logger writes to t.Log.
func New(t testing.TB, reg *durable.Registry, name string, input any) *Run {
	t.Helper()
	var raw json.RawMessage
	if input != nil { // as in the engine, no input is not the same as null
		raw = encode(t, "input", input)
	}
	r := &Run{t: t, reg: reg, name: name, gen: 1, now: Epoch}
	r.exec = r.newExecutor()
	t.Cleanup(func() { r.exec.Close() })
	r.turn(history.NewExecutionStarted(r.now, name, raw, r.gen, nil))
	return r
}

func (r *Run) newExecutor() *durable.Executor {
	return durable.NewExecutor(r.reg, InstanceID, zerolog.New(zerolog.NewTestWriter(r.t)))
}

// Activity returns the oldest pending call of activity name. It fails the test if there is none.
func (r *Run) Activity(name string) durable.Action {
	r.t.Helper()
	for _, a := range r.pending {
		if a.Kind == durable.ActionActivity && a.Name == name {
			return a
		}
	}
	r.t.Fatalf("durabletest: no pending call of activity %q; %s", name, r.describe())
	return durable.Action{}
}

// SentEvents returns the events the orchestrator sent with SendEvent, in order: each as an
// action with the target in InstanceID, the event name in Name, its data in Input and its
// deterministic ID in EventID.
func (r *Run) SentEvents() []durable.Action {
	return append([]durable.Action(nil), r.sent...)
}

// Pending returns the scheduled activities, timers and sub-orchestrations that have not been
// completed yet, in the order they were scheduled.
func (r *Run) Pending() []durable.Action {
	return append([]durable.Action(nil), r.pending...)
}

// Complete completes a pending activity or sub-orchestration with result (encoded as JSON, nil
// as null, as the engine encodes an activity's return value) and runs the turn.
func (r *Run) Complete(a durable.Action, result any) {
	r.t.Helper()
	raw := encode(r.t, "result", result)
	r.take(a)
	switch a.Kind {
	case durable.ActionActivity:
		r.turn(history.NewTaskCompleted(r.now, a.TaskID, raw))
	case durable.ActionSubOrchestration:
		r.turn(history.NewSubOrchestrationCompleted(r.now, a.TaskID, raw))
	default:
		r.t.Fatalf("durabletest: cannot complete a %s action; use FireTimers", a.Kind)
	}
}

// Fail fails a pending activity or sub-orchestration with message and runs the turn. The
// orchestrator's Await returns a *durable.TaskFailedError carrying message.
func (r *Run) Fail(a durable.Action, message string) {
	r.t.Helper()
	r.take(a)
	failure := &history.Failure{Message: message}
	switch a.Kind {
	case durable.ActionActivity:
		r.turn(history.NewTaskFailed(r.now, a.TaskID, failure))
	case durable.ActionSubOrchestration:
		r.turn(history.NewSubOrchestrationFailed(r.now, a.TaskID, failure))
	default:
		r.t.Fatalf("durabletest: cannot fail a %s action", a.Kind)
	}
}

// Raise raises event name with data (encoded as JSON, nil as null; a json.RawMessage is used as
// it is) and runs the turn. As in the engine, an event nobody waits for is buffered.
func (r *Run) Raise(name string, data any) {
	r.t.Helper()
	r.turn(history.NewEventRaised(r.now, name, encode(r.t, "event data", data), ""))
}

// FireTimers fires every timer pending when it is called, in order of due time, one turn each,
// moving the clock forward to each timer's due time. Timers created meanwhile stay pending. It
// returns how many timers fired.
func (r *Run) FireTimers() int {
	r.t.Helper()
	var timers []durable.Action
	for _, a := range r.pending {
		if a.Kind == durable.ActionTimer {
			timers = append(timers, a)
		}
	}
	sort.SliceStable(timers, func(i, j int) bool { return timers[i].FireAt.Before(timers[j].FireAt) })
	fired := 0
	for _, a := range timers {
		if !r.isPending(a) { // the instance ended or continued as new
			continue
		}
		if a.FireAt.After(r.now) {
			r.now = a.FireAt
		}
		r.take(a)
		r.turn(history.NewTimerFired(r.now, a.TaskID))
		fired++
	}
	return fired
}

// Now returns the fake clock's time: the orchestrator's CurrentTime in the next turn.
func (r *Run) Now() time.Time { return r.now }

// Status returns the instance's runtime status after the last turn.
func (r *Run) Status() history.RuntimeStatus { return r.last.Status }

// Failure returns why the instance failed, or nil.
func (r *Run) Failure() *history.Failure { return r.last.Failure }

// Waiting returns what the instance waits for after the last turn.
func (r *Run) Waiting() durable.Waiting { return r.last.Waiting }

// History returns the current generation's history.
func (r *Run) History() []history.Event { return append([]history.Event(nil), r.past...) }

// Output decodes the instance's output into v. It fails the test if the instance has not
// completed (reporting its failure, if any) or if the output does not decode.
func (r *Run) Output(v any) {
	r.t.Helper()
	if r.last.Status != history.StatusCompleted {
		r.t.Fatalf("durabletest: no output: %s", r.describe())
	}
	if err := json.Unmarshal(r.last.Output, v); err != nil {
		r.t.Fatalf("durabletest: decoding output %s: %v", r.last.Output, err)
	}
}

// CustomStatus decodes the instance's custom status into v (left alone if there is none). It
// fails the test if the custom status does not decode.
func (r *Run) CustomStatus(v any) {
	r.t.Helper()
	if len(r.last.CustomStatus) == 0 {
		return
	}
	if err := json.Unmarshal(r.last.CustomStatus, v); err != nil {
		r.t.Fatalf("durabletest: decoding custom status %s: %v", r.last.CustomStatus, err)
	}
}

// Rewind rewinds the failed instance, as engine.Client.Rewind does, and runs the rewind turn:
// the activities and sub-orchestrations whose failures made the orchestrator fail are pending
// again (with every task whose result a failed instance would have discarded), to Complete or
// Fail once more. It fails the test if the instance has not failed.
func (r *Run) Rewind(reason string) {
	r.t.Helper()
	if r.last.Status != history.StatusFailed {
		r.t.Fatalf("durabletest: only a failed instance can be rewound; %s", r.describe())
	}
	exec, ev, err := durable.PrepareRewind(r.reg, InstanceID, zerolog.New(zerolog.NewTestWriter(r.t)), r.past, r.now, reason)
	if err != nil {
		r.t.Logf("durabletest: replay for the rewind: %v", err)
	}
	r.exec.Close()
	r.exec = exec
	r.turn(ev)
}

// turn runs one turn with events, records it, and checks that a cold replay agrees.
func (r *Run) turn(events ...history.Event) {
	r.t.Helper()
	res := r.exec.Execute(r.now, events)
	r.past = append(r.past, res.Events...)
	r.last = res
	for _, a := range res.Actions {
		switch a.Kind {
		case durable.ActionSendEvent:
			r.sent = append(r.sent, a)
		case durable.ActionCancelTimer:
		default:
			r.pending = append(r.pending, a)
		}
	}
	if res.Status.IsTerminal() {
		r.pending = nil // the engine discards results that come after the end
	}
	r.checkReplay()
	if can := res.ContinueAsNew; can != nil {
		r.exec.Close()
		r.exec = r.newExecutor()
		r.gen++
		r.past, r.pending = nil, nil
		r.turn(append([]history.Event{history.NewExecutionStarted(r.now, r.name, can.Input, r.gen, nil)}, can.CarryOver...)...)
	}
}

// state is what a hot executor and a cold replay must agree on.
type state struct {
	Status       history.RuntimeStatus
	Output       json.RawMessage
	FailureType  string
	Failure      string
	CustomStatus json.RawMessage
	Waiting      durable.Waiting
}

func stateOf(res *durable.TurnResult) state {
	s := state{Status: res.Status, Output: res.Output, CustomStatus: res.CustomStatus, Waiting: res.Waiting}
	if res.Failure != nil {
		s.FailureType, s.Failure = res.Failure.Type, res.Failure.Message // the stack may differ
	}
	return s
}

// checkReplay replays the history into a fresh executor and runs an empty turn on it: it must
// accept the history, schedule nothing new and reach the same state as the hot executor.
func (r *Run) checkReplay() {
	r.t.Helper()
	cold := r.newExecutor()
	defer cold.Close()
	if err := cold.Replay(r.past); err != nil {
		r.t.Fatalf("durabletest: replaying the history of %q after turn %d: %v", r.name, r.turns(), err)
	}
	res := cold.Execute(r.now, nil)
	if len(res.Actions) > 0 {
		r.t.Fatalf("durabletest: replaying the history of %q after turn %d scheduled %+v again: the orchestrator is not deterministic",
			r.name, r.turns(), res.Actions)
	}
	hot, got := mustJSON(stateOf(r.last)), mustJSON(stateOf(res))
	if hot != got {
		r.t.Fatalf("durabletest: after turn %d of %q, replay reaches a different state: the orchestrator is not deterministic\n  executed: %s\n  replayed: %s",
			r.turns(), r.name, hot, got)
	}
}

func (r *Run) turns() int {
	n := 0
	for _, ev := range r.past {
		if ev.Type == history.OrchestratorStarted {
			n++
		}
	}
	return n
}

func (r *Run) isPending(a durable.Action) bool {
	for _, p := range r.pending {
		if p.Kind == a.Kind && p.TaskID == a.TaskID {
			return true
		}
	}
	return false
}

// take removes a from the pending actions; it fails the test if a is not pending.
func (r *Run) take(a durable.Action) {
	r.t.Helper()
	for i, p := range r.pending {
		if p.Kind == a.Kind && p.TaskID == a.TaskID {
			r.pending = append(r.pending[:i:i], r.pending[i+1:]...)
			return
		}
	}
	r.t.Fatalf("durabletest: %s %q (task %d) is not pending; %s", a.Kind, a.Name, a.TaskID, r.describe())
}

// describe says where the instance stands, for failure messages.
func (r *Run) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance is %s", r.last.Status)
	if f := r.last.Failure; f != nil {
		fmt.Fprintf(&b, " (%s)", f.Error())
	}
	var pending []string
	for _, a := range r.pending {
		if a.Kind == durable.ActionTimer {
			pending = append(pending, fmt.Sprintf("timer %d at %s", a.TaskID, a.FireAt.Format(time.RFC3339Nano)))
		} else {
			pending = append(pending, fmt.Sprintf("%s %q (task %d)", a.Kind, a.Name, a.TaskID))
		}
	}
	if len(pending) == 0 {
		b.WriteString(", nothing pending")
	} else {
		fmt.Fprintf(&b, ", pending: %s", strings.Join(pending, "; "))
	}
	if events := r.last.Waiting.Events; len(events) > 0 {
		fmt.Fprintf(&b, ", waiting for events %q", events)
	}
	return b.String()
}

func encode(t testing.TB, what string, v any) json.RawMessage {
	t.Helper()
	if raw, ok := v.(json.RawMessage); ok {
		if len(raw) > 0 && !json.Valid(raw) {
			t.Fatalf("durabletest: %s %q is not valid JSON", what, raw)
		}
		return raw
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("durabletest: encoding %s: %v", what, err)
	}
	return raw
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // state holds only encodable values
	}
	return string(b)
}
