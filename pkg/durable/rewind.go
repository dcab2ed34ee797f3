package durable

// Rewind of a failed generation (Durable Functions' rewind, DTF's ExecutionRewound).
//
// The history stays append-only. A rewind appends an ExecutionRewound event that names the tasks
// whose failures made the orchestrator fail: the failures it returned from Await in its last step
// (since it last blocked), so failures it handled earlier, such as retried attempts, still count.
// Every replay then leaves out those failure events and the generation's failed end before the
// marker, so the orchestrator is again blocked on those tasks; the rewind turn schedules them
// again, with every other task still pending (an activity or timer whose completion was discarded
// because the instance had failed). A failure that was not a task's (a panic, a non-determinism
// error, an error of the orchestrator's own) is replayed as it was and fails the instance again,
// unless the code has changed, which is how a fixed orchestrator resumes a failed instance.

import (
	"errors"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// PrepareRewind returns an executor ready to rewind the failed generation whose history is past,
// and the ExecutionRewound event to pass to its Execute as the turn's first event. The executor
// has replayed past without the failures the rewind disregards; Execute then records the event
// and schedules the tasks to run again. The error is that of the replay, as for Replay (Execute
// then fails the instance again with it).
func PrepareRewind(reg *Registry, instanceID string, log zerolog.Logger, past []history.Event, now time.Time, reason string) (*Executor, history.Event, error) {
	// Replay the failure as it happened to learn which task failures caused it.
	probe, _ := Replay(reg, instanceID, zerolog.Nop(), past)
	causes := probe.failedTasks
	probe.Close()
	slices.Sort(causes)
	causes = slices.Compact(causes)

	ev := history.NewExecutionRewound(now, reason, causes)
	e := NewExecutor(reg, instanceID, log)
	withMarker := append(append([]history.Event(nil), past...), ev)
	kept, dropped := withoutRewound(withMarker)
	e.tolerateEnd = dropped
	e.replaying = true
	for _, p := range kept[:len(kept)-1] { // all but the marker, which Execute applies
		if e.err != nil {
			break
		}
		e.apply(p)
	}
	e.replaying = false
	if e.err == nil {
		e.checkTurnRecorded()
	}
	return e, ev, e.err
}

// withoutRewound returns events without what the ExecutionRewound events among them disregard:
// before each, the failures of the tasks it names and the last failed end of the generation. It
// also reports whether a failed end was left out (the orchestrator may then end in replay
// without its end being recorded before the rewind). events is not modified.
func withoutRewound(events []history.Event) ([]history.Event, bool) {
	var drop map[int]bool // indexes into events
	lastFailedEnd := -1
	for i, ev := range events {
		switch {
		case ev.Type == history.ExecutionCompleted && ev.Status == history.StatusFailed:
			lastFailedEnd = i
		case ev.Type == history.ExecutionRewound:
			if drop == nil {
				drop = map[int]bool{}
			}
			if lastFailedEnd >= 0 {
				drop[lastFailedEnd] = true
				lastFailedEnd = -1
			}
			for j := range i {
				if isTaskFailure(events[j]) && slices.Contains(ev.TaskIDs, events[j].TaskID) {
					drop[j] = true
				}
			}
		}
	}
	if drop == nil {
		return events, false
	}
	kept := make([]history.Event, 0, len(events))
	droppedEnd := false
	for i, ev := range events {
		if drop[i] {
			droppedEnd = droppedEnd || ev.Type == history.ExecutionCompleted
			continue
		}
		kept = append(kept, ev)
	}
	return kept, droppedEnd
}

func isTaskFailure(ev history.Event) bool {
	return ev.Type == history.TaskFailed || ev.Type == history.SubOrchestrationInstanceFailed
}

// observe notes a task failure that Await returns to the orchestrator.
func (e *Executor) observe(err error) {
	var failed *TaskFailedError
	if errors.As(err, &failed) && failed.TaskID > 0 {
		e.observed = append(e.observed, failed.TaskID)
	}
}

// applyRewound applies an ExecutionRewound event. Live (not replaying), it schedules again every
// task still pending: the ones whose failures the replay left out, and those whose completions
// were discarded while the instance had failed.
func (e *Executor) applyRewound() {
	e.rewinds++
	e.tolerateEnd = false
	if e.replaying || e.Done() || !e.started {
		return
	}
	ids := make([]int, 0, len(e.tasks))
	for id, t := range e.tasks {
		if !t.done && slices.Contains(e.unconfirmed, t) {
			continue
		}
		if !t.done && (t.kind == kindActivity || t.kind == kindTimer || t.kind == kindSubOrchestration) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		e.reissued = append(e.reissued, e.tasks[id])
	}
}

// reissueActions are the actions of the tasks a rewind schedules again, marked with the rewind's
// number so that their messages are not taken for the first run's. A timer that should have fired
// already fires now.
func (e *Executor) reissueActions(now time.Time) []Action {
	var out []Action
	for _, t := range e.reissued {
		if t.done {
			continue
		}
		a := t.action()
		a.Rewind = e.rewinds
		if a.Kind == ActionTimer && a.FireAt.Before(now) {
			a.FireAt = now
		}
		out = append(out, a)
	}
	return out
}
