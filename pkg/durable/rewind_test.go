package durable

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// rewind replaces the harness's executor by one prepared to rewind its failed history, runs the
// rewind turn with extra events after the marker, and checks the turn as h.turn does.
func (h *harness) rewind(extra ...history.Event) *TurnResult {
	h.t.Helper()
	h.now = h.now.Add(time.Second)
	h.e.Close()
	e, ev, err := PrepareRewind(h.reg, "inst-1", zerolog.Nop(), h.past, h.now, "try again")
	if err != nil {
		h.t.Fatalf("preparing the rewind: %v", err)
	}
	h.e = e
	res := e.Execute(h.now, append([]history.Event{ev}, extra...))
	h.past = append(h.past, res.Events...)
	cold, err := Replay(h.reg, "inst-1", zerolog.Nop(), h.past)
	if err != nil {
		h.t.Fatalf("replaying the rewound history: %v", err)
	}
	if got, want := cold.waiting(), res.Waiting; !equalJSON(got, want) {
		h.t.Fatalf("cold replay waits for %+v, hot executor for %+v", got, want)
	}
	cold.Close()
	return res
}

func failed(id int, msg string) history.Event {
	return history.NewTaskFailed(t0, id, &history.Failure{Message: msg})
}

func completed(id int, result string) history.Event {
	return history.NewTaskCompleted(t0, id, json.RawMessage(result))
}

func TestRewindRunsTheFailedActivityAgain(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var a, b int
		if err := ctx.CallActivity("A", nil).Await(&a); err != nil {
			return nil, err
		}
		if err := ctx.CallActivity("B", a).Await(&b); err != nil {
			return nil, err
		}
		return a + b, nil
	})
	h.turn(started(`null`))
	h.turn(completed(1, "1"))
	res := h.turn(failed(2, "B is down"))
	if res.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", res.Status)
	}
	// A result discarded after the failure makes no difference.
	res = h.rewind()
	if res.Status != history.StatusRunning || res.Failure != nil {
		t.Fatalf("after rewind: status %s failure %v", res.Status, res.Failure)
	}
	if len(res.Actions) != 1 || res.Actions[0].Name != "B" || res.Actions[0].TaskID != 2 || res.Actions[0].Rewind != 1 {
		t.Fatalf("rewind actions = %+v, want B (task 2) again, rewind 1", res.Actions)
	}
	if n := len(res.Events); n != 2 || res.Events[1].Type != history.ExecutionRewound || !slices.Equal(res.Events[1].TaskIDs, []int{2}) {
		t.Fatalf("rewind events = %+v", res.Events)
	}
	res = h.turn(completed(2, "10"))
	if res.Status != history.StatusCompleted || string(res.Output) != "11" {
		t.Fatalf("status %s output %s, want Completed 11", res.Status, res.Output)
	}
}

func TestRewindKeepsHandledFailuresAndCanRepeat(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		// A's failure is handled (a fallback runs); B's is not.
		var out string
		if err := ctx.CallActivity("A", nil).Await(&out); err != nil {
			if err := ctx.CallActivity("Fallback", nil).Await(&out); err != nil {
				return nil, err
			}
		}
		var more string
		if err := ctx.CallActivity("B", nil).Await(&more); err != nil {
			return nil, err
		}
		return out + more, nil
	})
	h.turn(started(`null`))
	h.turn(failed(1, "A failed"))
	h.turn(completed(2, `"fallback"`))
	if res := h.turn(failed(3, "B failed")); res.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", res.Status)
	}
	res := h.rewind()
	if len(res.Actions) != 1 || res.Actions[0].Name != "B" {
		t.Fatalf("first rewind actions = %+v, want only B", res.Actions)
	}
	if res := h.turn(failed(3, "B failed again")); res.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed again", res.Status)
	}
	res = h.rewind()
	if len(res.Actions) != 1 || res.Actions[0].Name != "B" || res.Actions[0].Rewind != 2 {
		t.Fatalf("second rewind actions = %+v, want B, rewind 2", res.Actions)
	}
	res = h.turn(completed(3, `"+b"`))
	if res.Status != history.StatusCompleted || string(res.Output) != `"fallback+b"` {
		t.Fatalf("status %s output %s", res.Status, res.Output)
	}
}

func TestRewindAfterRetriesRunsTheLastAttempt(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var v int
		err := ctx.CallActivity("Flaky", nil, WithRetry(RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Second})).Await(&v)
		return v, err
	})
	res := h.turn(started(`null`))
	res = h.turn(failed(res.Actions[0].TaskID, "attempt 1"))
	if len(res.Actions) != 1 || res.Actions[0].Kind != ActionTimer {
		t.Fatalf("after attempt 1: %+v", res.Actions)
	}
	res = h.turn(history.NewTimerFired(t0, res.Actions[0].TaskID))
	attempt2 := res.Actions[0].TaskID
	if res = h.turn(failed(attempt2, "attempt 2")); res.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", res.Status)
	}
	res = h.rewind()
	if len(res.Actions) != 1 || res.Actions[0].TaskID != attempt2 {
		t.Fatalf("rewind actions = %+v, want attempt 2 (task %d) again", res.Actions, attempt2)
	}
	if res = h.turn(completed(attempt2, "5")); res.Status != history.StatusCompleted || string(res.Output) != "5" {
		t.Fatalf("status %s output %s", res.Status, res.Output)
	}
}

func TestRewindOfAnOrchestratorErrorFailsAgain(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
			return nil, err
		}
		return nil, errors.New("always")
	})
	h.turn(started(`null`))
	if res := h.turn(raised("Go", "null")); res.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", res.Status)
	}
	res := h.rewind()
	if res.Status != history.StatusFailed || res.Failure == nil || res.Failure.Message != "always" || len(res.Actions) != 0 {
		t.Fatalf("after rewind: %+v", res)
	}
	types := []history.EventType{}
	for _, ev := range res.Events {
		types = append(types, ev.Type)
	}
	want := []history.EventType{history.OrchestratorStarted, history.ExecutionRewound, history.ExecutionCompleted}
	if !slices.Equal(types, want) {
		t.Fatalf("rewind turn events %v, want %v", types, want)
	}
}
