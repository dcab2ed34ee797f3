package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// limitsRegistry: Loop calls Echo n times, waits for "More", and calls it n times again; FanOut
// calls Echo n times at once.
func limitsRegistry(t *testing.T) *durable.Registry {
	echo := durable.Activity(func(_ context.Context, i int) (int, error) { return i, nil })
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Loop": func(ctx *durable.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			for round := range 2 {
				for i := range n {
					if err := ctx.CallActivity("Echo", i).Await(nil); err != nil {
						return nil, err
					}
				}
				if round == 0 {
					if err := ctx.WaitForExternalEvent("More").Await(nil); err != nil {
						return nil, err
					}
				}
			}
			return "done", nil
		},
		"FanOut": func(ctx *durable.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			tasks := make([]*durable.Task, n)
			for i := range tasks {
				tasks[i] = ctx.CallActivity("Echo", i)
			}
			return n, ctx.WhenAll(tasks...).Await(nil)
		},
	}, map[string]durable.ActivityFunc{"Echo": echo})
}

// TestHistoryLimit: from 80% of the history limit the status warns and suggests ContinueAsNew;
// the turn that would pass the limit fails the instance with the reason.
func TestHistoryLimit(t *testing.T) {
	e := newEnv(t)
	e.startWorker(limitsRegistry(t), engine.WithMaxHistoryEvents(100))
	ctx := context.Background()
	// Each call adds three events (a turn, the completion, the next scheduling): 27 calls make
	// about 84.
	if _, err := e.client.ScheduleNew(ctx, "Loop", engine.WithInstanceID("long"), engine.WithInput(27)); err != nil {
		t.Fatal(err)
	}
	s := e.waitFor("long", "waiting for More", waitingForEvent("More"))
	if s.HistoryEvents < 80 || s.HistoryEvents > 100 || !strings.Contains(s.Warning, "ContinueAsNew") {
		t.Fatalf("at %d events the warning is %q, want one suggesting ContinueAsNew", s.HistoryEvents, s.Warning)
	}
	if err := e.client.RaiseEvent(ctx, "long", "More", nil); err != nil {
		t.Fatal(err)
	}
	s = e.wait("long")
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Type != engine.FailureHistoryTooLong || s.Warning != "" {
		t.Fatalf("long: %s %+v warning %q, want Failed %s", s.Status, s.Failure, s.Warning, engine.FailureHistoryTooLong)
	}
	if s.HistoryEvents > 100 {
		t.Errorf("the failed history holds %d events, over the limit", s.HistoryEvents)
	}

	// Under 80%: no warning.
	if _, err := e.client.ScheduleNew(ctx, "Loop", engine.WithInstanceID("short"), engine.WithInput(5)); err != nil {
		t.Fatal(err)
	}
	if s := e.waitFor("short", "waiting for More", waitingForEvent("More")); s.Warning != "" {
		t.Errorf("short: warning %q at %d events", s.Warning, s.HistoryEvents)
	}
}

// TestPendingTaskLimit: an instance may wait for at most the limit of tasks at once; the turn
// that schedules more fails it.
func TestPendingTaskLimit(t *testing.T) {
	e := newEnv(t)
	e.startWorker(limitsRegistry(t), engine.WithMaxPendingTasks(10))
	ctx := context.Background()
	for id, n := range map[string]int{"ten": 10, "eleven": 11} {
		if _, err := e.client.ScheduleNew(ctx, "FanOut", engine.WithInstanceID(id), engine.WithInput(n)); err != nil {
			t.Fatal(err)
		}
	}
	if s := e.wait("ten"); s.Status != history.StatusCompleted {
		t.Errorf("ten: %s %+v", s.Status, s.Failure)
	}
	s := e.wait("eleven")
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Type != engine.FailureTooManyPendingTasks {
		t.Errorf("eleven: %s %+v, want Failed %s", s.Status, s.Failure, engine.FailureTooManyPendingTasks)
	}
}
