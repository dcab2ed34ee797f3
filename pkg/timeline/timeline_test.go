package timeline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestBuild_ApprovalTurnsActivityAndConsumedEvent(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "BudgetApproval", raw(`{"amountCents":5}`), 1, nil),
		history.NewOrchestratorStarted(at(1000)),
		history.NewEventRaised(at(990), "Approval", raw(`true`), "ev-1"),
		history.NewTaskScheduled(at(1000), 1, "ApproveBudget", nil),
		history.NewOrchestratorStarted(at(1250)),
		history.NewTaskCompleted(at(1200), 1, raw(`"ok"`)),
		history.NewExecutionCompleted(at(1250), history.StatusCompleted, raw(`"approved"`), nil),
	})

	if got := len(tl.Turns); got != 3 {
		t.Fatalf("turns = %d, want 3", got)
	}
	if tl.Turns[0].Progressed || !tl.Turns[1].Progressed || !tl.Turns[2].Progressed {
		t.Errorf("progressed = %v %v %v, want false true true", tl.Turns[0].Progressed, tl.Turns[1].Progressed, tl.Turns[2].Progressed)
	}
	if got := tl.Turns[1]; got.FirstEntry != 2 || got.Entries != 3 {
		t.Errorf("turn 2 spans entries %d+%d, want 2+3", got.FirstEntry, got.Entries)
	}
	if len(tl.Activities) != 1 || len(tl.Activities[0].Attempts) != 1 {
		t.Fatalf("activities = %+v, want one with one attempt", tl.Activities)
	}
	a := tl.Activities[0].Attempts[0]
	if a.Outcome != Completed || time.Duration(a.Duration) != 200*time.Millisecond || a.Turn != 2 || a.EndedTurn != 3 {
		t.Errorf("attempt = %+v, want completed in 200ms, turns 2→3", a)
	}
	ev := tl.Events[0]
	if ev.Name != "Approval" || ev.EventID != "ev-1" || ev.Turn != 2 || ev.ConsumedTurn != 2 || !ev.ConsumedAt.Equal(at(1000)) {
		t.Errorf("event = %+v, want Approval consumed in its own turn 2", ev)
	}
	if got := tl.Entries[7]; got.Turn != 3 || got.Summary != `Completed  output "approved"` {
		t.Errorf("last entry = %+v", got)
	}
	if got := time.Duration(tl.Entries[6].Offset); got != 1200*time.Millisecond {
		t.Errorf("offset = %v, want 1.2s", got)
	}
}

func TestBuild_RetryIsOneCallWithTwoAttempts(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Pay", nil, 1, nil),
		history.NewTaskScheduled(at(0), 1, "Charge", raw(`1`)),
		history.NewOrchestratorStarted(at(100)),
		history.NewTaskFailed(at(90), 1, &history.Failure{Message: "card declined"}),
		history.NewTimerCreated(at(100), 2, at(1100)),
		history.NewOrchestratorStarted(at(1100)),
		history.NewTimerFired(at(1100), 2),
		history.NewTaskScheduled(at(1100), 3, "Charge", raw(`1`)),
		history.NewTaskScheduled(at(1100), 4, "Other", nil),
		history.NewOrchestratorStarted(at(1300)),
		history.NewTaskCompleted(at(1150), 3, raw(`"paid"`)),
	})

	if len(tl.Activities) != 2 {
		t.Fatalf("activities = %d, want 2 (Charge with its retry, Other)", len(tl.Activities))
	}
	charge := tl.Activities[0]
	if charge.Name != "Charge" || charge.Outcome != Completed || len(charge.Attempts) != 2 {
		t.Fatalf("Charge = %+v, want completed after 2 attempts", charge)
	}
	first, second := charge.Attempts[0], charge.Attempts[1]
	if first.Outcome != Failed || first.Failure.Message != "card declined" || time.Duration(first.Duration) != 90*time.Millisecond {
		t.Errorf("first attempt = %+v", first)
	}
	if second.TaskID != 3 || second.RetryTimer != 2 || time.Duration(second.Duration) != 50*time.Millisecond {
		t.Errorf("second attempt = %+v, want task 3 after timer 2, 50ms", second)
	}
	if tl.Timers[0].RetryOf != 1 || tl.Timers[0].Outcome != Fired || tl.Timers[0].FiredTurn != 3 {
		t.Errorf("timer = %+v, want fired in turn 3, the retry delay of #1", tl.Timers[0])
	}
	if o := tl.Activities[1]; o.Name != "Other" || o.Outcome != Pending || len(o.Attempts) != 1 {
		t.Errorf("Other = %+v, want one pending attempt", o)
	}
}

func TestBuild_TimerThatDelaysNoRetry(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Sleepy", nil, 1, nil),
		history.NewTaskScheduled(at(0), 1, "Work", nil),
		history.NewOrchestratorStarted(at(10)),
		history.NewTaskFailed(at(10), 1, &history.Failure{Message: "no"}),
		history.NewOrchestratorStarted(at(20)),
		history.NewEventRaised(at(20), "Go", nil, ""),
		history.NewTimerCreated(at(20), 2, at(30)),
		history.NewOrchestratorStarted(at(30)),
		history.NewTimerFired(at(30), 2),
		history.NewTaskScheduled(at(30), 3, "Work", nil),
	})
	// The timer was not created in the turn #1's failure arrived: #3 is a new call.
	if len(tl.Activities) != 2 || tl.Timers[0].RetryOf != 0 {
		t.Errorf("activities = %d, timer retryOf = %d; want 2 calls and no retry", len(tl.Activities), tl.Timers[0].RetryOf)
	}
}

func TestBuild_BufferedEventIsConsumedWhenTheOrchestratorGoesOn(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Flow", nil, 1, nil),
		history.NewTaskScheduled(at(0), 1, "A", nil),
		history.NewOrchestratorStarted(at(10)),
		history.NewEventRaised(at(10), "Early", nil, ""),
		history.NewOrchestratorStarted(at(20)),
		history.NewTaskCompleted(at(20), 1, nil),
		history.NewTimerCreated(at(20), 2, at(99)),
		history.NewOrchestratorStarted(at(30)),
		history.NewEventRaised(at(30), "Late", nil, ""),
	})
	early, late := tl.Events[0], tl.Events[1]
	if early.Turn != 2 || early.ConsumedTurn != 3 || !early.ConsumedAt.Equal(at(20)) {
		t.Errorf("Early = %+v, want arrived in turn 2, consumed in turn 3", early)
	}
	if late.ConsumedTurn != 0 || !late.ConsumedAt.IsZero() {
		t.Errorf("Late = %+v, want not consumed", late)
	}
	if tl.Timers[0].Outcome != Pending {
		t.Errorf("timer = %+v, want pending", tl.Timers[0])
	}
}

func TestBuild_RewindRunsFailedTasksAgain(t *testing.T) {
	fail := &history.Failure{Type: "Error", Message: "boom"}
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Flow", nil, 1, nil),
		history.NewTaskScheduled(at(0), 1, "A", nil),
		history.NewSubOrchestrationCreated(at(0), 2, "Child", "child-1", raw(`{}`)),
		history.NewOrchestratorStarted(at(10)),
		history.NewTaskFailed(at(10), 1, fail),
		history.NewSubOrchestrationFailed(at(10), 2, fail),
		history.NewExecutionCompleted(at(10), history.StatusFailed, nil, fail),
		history.NewOrchestratorStarted(at(100)),
		history.NewExecutionRewound(at(100), "fixed", []int{1, 2}),
		history.NewOrchestratorStarted(at(200)),
		history.NewTaskCompleted(at(150), 1, raw(`1`)),
		history.NewSubOrchestrationCompleted(at(200), 2, raw(`2`)),
	})
	a := tl.Activities[0]
	if a.Outcome != Completed || len(a.Attempts) != 2 || !a.Attempts[0].Rewound || a.Attempts[1].TaskID != 1 {
		t.Fatalf("activity = %+v, want a rewound failed attempt then a completed one of task 1", a)
	}
	if got := time.Duration(a.Attempts[1].Duration); got != 50*time.Millisecond {
		t.Errorf("rerun took %v, want 50ms (from the rewind)", got)
	}
	s := tl.SubOrchestrations[0]
	if s.Outcome != Completed || s.Rewinds != 1 || s.InstanceID != "child-1" || s.Failure != nil {
		t.Errorf("sub-orchestration = %+v, want completed after one rewind", s)
	}
}

func TestBuild_IgnoresResultsOfUnknownOrEndedTasks(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Flow", nil, 1, nil),
		history.NewTaskScheduled(at(0), 1, "A", nil),
		history.NewOrchestratorStarted(at(10)),
		history.NewTaskCompleted(at(10), 1, raw(`1`)),
		history.NewTaskFailed(at(10), 1, &history.Failure{Message: "late"}),
		history.NewTaskCompleted(at(10), 9, raw(`9`)),
		history.NewTimerFired(at(10), 7),
	})
	if a := tl.Activities[0]; a.Outcome != Completed || a.Attempts[0].Failure != nil {
		t.Errorf("activity = %+v, want its first result kept", a)
	}
	if len(tl.Entries) != 8 || len(tl.Timers) != 0 {
		t.Errorf("entries = %d, timers = %d; want every event listed, no timer made up", len(tl.Entries), len(tl.Timers))
	}
}

func TestBuild_EmptyHistoryEncodesEmptyLists(t *testing.T) {
	out, err := json.Marshal(Build(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"entries":[],"turns":[],"activities":[],"timers":[],"events":[],"subOrchestrations":[]}`
	if string(out) != want {
		t.Errorf("JSON = %s\nwant   %s", out, want)
	}
}

func TestDuration_JSONInMilliseconds(t *testing.T) {
	out, err := json.Marshal(Duration(1500 * time.Microsecond))
	if err != nil || string(out) != "1.5" {
		t.Fatalf("Marshal = %s, %v; want 1.5", out, err)
	}
	var d Duration
	if err := json.Unmarshal([]byte("250"), &d); err != nil || time.Duration(d) != 250*time.Millisecond {
		t.Errorf("Unmarshal(250) = %v, %v; want 250ms", time.Duration(d), err)
	}
}

func TestWriteText(t *testing.T) {
	tl := Build([]history.Event{
		history.NewOrchestratorStarted(at(0)),
		history.NewExecutionStarted(at(0), "Pay", raw(`"`+strings.Repeat("x", 300)+`"`), 1, nil),
		history.NewTaskScheduled(at(0), 1, "Charge", nil),
		history.NewOrchestratorStarted(at(100)),
		history.NewTaskFailed(at(100), 1, &history.Failure{Message: "declined"}),
		history.NewTimerCreated(at(100), 2, at(5000)),
		history.NewEventRaised(at(100), "Cancel", raw(`{}`), "c-1"),
	})
	var buf bytes.Buffer
	if err := tl.WriteText(&buf, at(1000)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"history (7 events, 2 turns)",
		"03:04:05.000  +0s",
		"(turn 2 begins)",
		"x… (302 bytes)",
		"TaskFailed",
		"#1  failure declined",
		"activities (1)",
		"#1  Charge  attempt 1  failed in 100ms: declined",
		"timers (1)",
		"#2  fires 2026-01-02 03:04:10.000Z\n",
		"#2  turn 2  fires 2026-01-02 03:04:10.000Z (in 4s)",
		"events raised (1)",
		"Cancel  arrived 03:04:05.100 (turn 2)  consumed in turn 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}
