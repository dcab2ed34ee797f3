package timeline

import (
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Build returns the timeline of events, the history of one generation as the backend returns
// it. It depends on nothing else (not the clock): the same history gives the same timeline.
func Build(events []history.Event) *Timeline {
	b := &builder{
		tl: &Timeline{
			Entries: []Entry{}, Turns: []Turn{}, Activities: []Activity{}, Timers: []Timer{},
			Events: []RaisedEvent{}, SubOrchestrations: []SubOrchestration{},
		},
		activity: map[int]int{}, timer: map[int]int{}, sub: map[int]int{},
	}
	if len(events) > 0 {
		b.tl.Start = events[0].Timestamp
	}
	for _, ev := range events {
		b.add(ev)
	}
	b.inferConsumption()
	return b.tl
}

// builder folds events into a Timeline. Its maps index the timeline's slices by task ID.
type builder struct {
	tl       *Timeline
	turn     int // the current turn's number, 0 before the first
	activity map[int]int
	timer    map[int]int
	sub      map[int]int
}

// add records one event: its entry, its turn and what it does to the tasks and events.
func (b *builder) add(ev history.Event) {
	if ev.Type == history.OrchestratorStarted {
		b.turn++
		b.tl.Turns = append(b.tl.Turns, Turn{Number: b.turn, Time: ev.Timestamp, FirstEntry: len(b.tl.Entries)})
	}
	b.tl.Entries = append(b.tl.Entries, Entry{
		Time: ev.Timestamp, Offset: Duration(ev.Timestamp.Sub(b.tl.Start)), Turn: b.turn,
		Type: ev.Type, TaskID: ev.TaskID, Name: ev.Name, InstanceID: ev.InstanceID,
		Summary: describeEvent(ev, b.turn),
	})
	if b.turn > 0 {
		t := &b.tl.Turns[b.turn-1]
		t.Entries++
		t.Progressed = t.Progressed || isProgress(ev.Type)
	}
	switch ev.Type {
	case history.TaskScheduled:
		b.scheduleActivity(ev)
	case history.TaskCompleted, history.TaskFailed:
		b.endActivity(ev)
	case history.TimerCreated:
		b.timer[ev.TaskID] = len(b.tl.Timers)
		b.tl.Timers = append(b.tl.Timers, Timer{TaskID: ev.TaskID, Turn: b.turn, CreatedAt: ev.Timestamp, FireAt: ev.FireAt, Outcome: Pending})
	case history.TimerFired:
		if i, ok := b.timer[ev.TaskID]; ok && b.tl.Timers[i].Outcome == Pending {
			t := &b.tl.Timers[i]
			t.FiredAt, t.FiredTurn, t.Outcome = ev.Timestamp, b.turn, Fired
		}
	case history.SubOrchestrationInstanceCreated:
		b.sub[ev.TaskID] = len(b.tl.SubOrchestrations)
		b.tl.SubOrchestrations = append(b.tl.SubOrchestrations, SubOrchestration{
			TaskID: ev.TaskID, Name: ev.Name, InstanceID: ev.InstanceID, Input: ev.Input,
			Turn: b.turn, CreatedAt: ev.Timestamp, Outcome: Pending,
		})
	case history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
		b.endSubOrchestration(ev)
	case history.EventRaised:
		b.tl.Events = append(b.tl.Events, RaisedEvent{Name: ev.Name, Data: ev.Input, EventID: ev.EventID, ArrivedAt: ev.Timestamp, Turn: b.turn})
	case history.ExecutionRewound:
		b.rewind(ev)
	}
}

// isProgress reports whether an event of type t shows the orchestrator going on: a decision
// or the end of its generation.
func isProgress(t history.EventType) bool {
	switch t {
	case history.TaskScheduled, history.TimerCreated, history.SubOrchestrationInstanceCreated,
		history.EventSent, history.ExecutionCompleted, history.ContinuedAsNew:
		return true
	}
	return false
}

// scheduleActivity starts an activity call, or the next attempt of the failed call it retries.
func (b *builder) scheduleActivity(ev history.Event) {
	at := Attempt{TaskID: ev.TaskID, Turn: b.turn, ScheduledAt: ev.Timestamp, Outcome: Pending}
	if i, timer, ok := b.retried(ev.Name); ok {
		b.tl.Timers[b.timer[timer]].RetryOf = lastAttempt(&b.tl.Activities[i]).TaskID
		at.RetryTimer = timer
		a := &b.tl.Activities[i]
		a.Attempts = append(a.Attempts, at)
		a.Outcome = Pending
		b.activity[ev.TaskID] = i
		return
	}
	b.activity[ev.TaskID] = len(b.tl.Activities)
	b.tl.Activities = append(b.tl.Activities, Activity{Name: ev.Name, Input: ev.Input, Outcome: Pending, Attempts: []Attempt{at}})
}

// retried finds the activity call that an activity named name, scheduled in the current turn,
// retries: a call of that name whose last attempt failed in the turn that created a timer which
// fired in this turn and delayed no other retry. It returns the call's index and the timer's
// task ID.
func (b *builder) retried(name string) (activity, timer int, ok bool) {
	for i := range b.tl.Activities {
		a := &b.tl.Activities[i]
		last := lastAttempt(a)
		if a.Name != name || last.Outcome != Failed || last.Rewound {
			continue
		}
		for _, t := range b.tl.Timers {
			if t.Outcome == Fired && t.FiredTurn == b.turn && t.Turn == last.EndedTurn && t.RetryOf == 0 {
				return i, t.TaskID, true
			}
		}
	}
	return 0, 0, false
}

// endActivity records an activity task's result on its pending attempt.
func (b *builder) endActivity(ev history.Event) {
	i, ok := b.activity[ev.TaskID]
	if !ok {
		return
	}
	a := &b.tl.Activities[i]
	at := lastAttempt(a)
	if at.TaskID != ev.TaskID || at.Outcome != Pending {
		return
	}
	at.EndedAt, at.EndedTurn = ev.Timestamp, b.turn
	at.Duration = Duration(max(0, ev.Timestamp.Sub(at.ScheduledAt)))
	at.Outcome, at.Result, at.Failure = Completed, ev.Result, ev.Failure
	if ev.Type == history.TaskFailed {
		at.Outcome = Failed
	}
	a.Outcome = at.Outcome
}

// endSubOrchestration records a sub-orchestration's result.
func (b *builder) endSubOrchestration(ev history.Event) {
	i, ok := b.sub[ev.TaskID]
	if !ok || b.tl.SubOrchestrations[i].Outcome != Pending {
		return
	}
	s := &b.tl.SubOrchestrations[i]
	s.EndedAt, s.EndedTurn = ev.Timestamp, b.turn
	s.Duration = Duration(max(0, ev.Timestamp.Sub(s.CreatedAt)))
	s.Outcome, s.Result, s.Failure = Completed, ev.Result, ev.Failure
	if ev.Type == history.SubOrchestrationInstanceFailed {
		s.Outcome = Failed
	}
}

// rewind runs the failed tasks an ExecutionRewound names again: an activity gets a new attempt
// with the same task ID, a sub-orchestration is pending again.
func (b *builder) rewind(ev history.Event) {
	for _, id := range ev.TaskIDs {
		if i, ok := b.activity[id]; ok {
			a := &b.tl.Activities[i]
			if last := lastAttempt(a); last.TaskID == id && last.Outcome == Failed {
				last.Rewound = true
				a.Attempts = append(a.Attempts, Attempt{TaskID: id, Turn: b.turn, ScheduledAt: ev.Timestamp, Outcome: Pending})
				a.Outcome = Pending
			}
		}
		if i, ok := b.sub[id]; ok && b.tl.SubOrchestrations[i].Outcome == Failed {
			s := &b.tl.SubOrchestrations[i]
			s.Rewinds++
			s.EndedAt, s.EndedTurn, s.Duration = time.Time{}, 0, 0
			s.Outcome, s.Result, s.Failure = Pending, nil, nil
		}
	}
}

// inferConsumption sets each raised event's ConsumedTurn: the first turn, from the one that
// recorded it, in which the orchestrator progressed.
func (b *builder) inferConsumption() {
	for i := range b.tl.Events {
		ev := &b.tl.Events[i]
		if ev.Turn == 0 {
			continue
		}
		for _, t := range b.tl.Turns[ev.Turn-1:] {
			if t.Progressed {
				ev.ConsumedTurn, ev.ConsumedAt = t.Number, t.Time
				break
			}
		}
	}
}

func lastAttempt(a *Activity) *Attempt { return &a.Attempts[len(a.Attempts)-1] }
