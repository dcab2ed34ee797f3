package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// flakyRegistry has orchestrator "Flaky": activity "Step" then activity "Charge", which fails
// while *down is set, then a wait for event "Done"; and "FailsAlways", which returns an error of
// its own after an event.
func flakyRegistry(t *testing.T, down *atomic.Bool, charges *atomic.Int32) *durable.Registry {
	return mustRegistry(t,
		map[string]durable.OrchestratorFunc{
			"Flaky": func(ctx *durable.OrchestrationContext) (any, error) {
				var step, charged string
				if err := ctx.CallActivity("Step", nil).Await(&step); err != nil {
					return nil, err
				}
				if err := ctx.CallActivity("Charge", step).Await(&charged); err != nil {
					return nil, err
				}
				var done string
				if err := ctx.WaitForExternalEvent("Done").Await(&done); err != nil {
					return nil, err
				}
				return step + "+" + charged + "+" + done, nil
			},
			"FailsAlways": func(ctx *durable.OrchestrationContext) (any, error) {
				if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
					return nil, err
				}
				return nil, errors.New("always fails")
			},
		},
		map[string]durable.ActivityFunc{
			"Step": durable.Activity(func(context.Context, any) (string, error) { return "step", nil }),
			"Charge": durable.Activity(func(_ context.Context, step string) (string, error) {
				n := charges.Add(1)
				if down.Load() {
					return "", fmt.Errorf("payment service down (call %d)", n)
				}
				return fmt.Sprintf("charged-%d", n), nil
			}),
		})
}

func TestRewindFailedInstance(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	var charges atomic.Int32
	down.Store(true)
	e.startWorker(flakyRegistry(t, &down, &charges))
	ctx := context.Background()

	id, err := e.client.ScheduleNew(ctx, "Flaky", engine.WithInstanceID("flaky-1"))
	if err != nil {
		t.Fatal(err)
	}
	s := e.wait(id)
	if s.Status != history.StatusFailed || s.Failure == nil {
		t.Fatalf("status %s failure %v, want Failed", s.Status, s.Failure)
	}

	// Not failed: rewinding a running instance is refused, and so is a completed one.
	other, err := e.client.ScheduleNew(ctx, "FailsAlways")
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(other, "waiting for Go", waitingForEvent("Go"))
	if err := e.client.Rewind(ctx, other, "no"); !errors.Is(err, engine.ErrInstanceNotFailed) {
		t.Errorf("rewind of a running instance: %v, want ErrInstanceNotFailed", err)
	}
	if err := e.client.Rewind(ctx, "no-such-instance", ""); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Errorf("rewind of an unknown instance: %v, want ErrInstanceNotFound", err)
	}

	down.Store(false)
	if err := e.client.Rewind(ctx, id, "payment service is back"); err != nil {
		t.Fatal(err)
	}
	e.waitFor(id, "rewound and waiting for Done", waitingForEvent("Done"))
	if err := e.client.RaiseEvent(ctx, id, "Done", "ok"); err != nil {
		t.Fatal(err)
	}
	s = e.wait(id)
	if s.Status != history.StatusCompleted || string(s.Output) != `"step+charged-2+ok"` {
		t.Fatalf("after rewind: status %s output %s failure %v", s.Status, s.Output, s.Failure)
	}
	if err := e.client.Rewind(ctx, id, ""); !errors.Is(err, engine.ErrInstanceEnded) {
		t.Errorf("rewind of a completed instance: %v, want ErrInstanceEnded", err)
	}
	events, err := e.client.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var rewound []history.Event
	for _, ev := range events {
		if ev.Type == history.ExecutionRewound {
			rewound = append(rewound, ev)
		}
	}
	if len(rewound) != 1 || rewound[0].Reason != "payment service is back" || len(rewound[0].TaskIDs) != 1 {
		t.Errorf("ExecutionRewound events = %+v", rewound)
	}

	// An orchestrator that fails by itself fails again after a rewind.
	if err := e.client.RaiseEvent(ctx, other, "Go", nil); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(other); s.Status != history.StatusFailed {
		t.Fatalf("FailsAlways: %s", s.Status)
	}
	before, _ := e.client.GetStatus(ctx, other)
	if err := e.client.Rewind(ctx, other, "again"); err != nil {
		t.Fatal(err)
	}
	s = e.waitFor(other, "failed again", func(s *engine.Status) bool { return s.Version > before.Version && s.Status.IsTerminal() })
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Message != "always fails" {
		t.Errorf("FailsAlways after rewind: %s %v", s.Status, s.Failure)
	}
}

// TestRewindReplaysColdOnAnotherWorker rewinds, then has a new worker (empty cache) replay the
// rewound history and finish it.
func TestRewindReplaysColdOnAnotherWorker(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	var charges atomic.Int32
	down.Store(true)
	reg := flakyRegistry(t, &down, &charges)
	_, stop := e.startWorker(reg)
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Flaky")
	if err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); s.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", s.Status)
	}
	down.Store(false)
	if err := e.client.Rewind(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor(id, "rewound and waiting for Done", waitingForEvent("Done"))
	stop()
	e.startWorker(reg, engine.WithCacheSize(0))
	if err := e.client.RaiseEvent(ctx, id, "Done", "cold"); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); s.Status != history.StatusCompleted || string(s.Output) != `"step+charged-2+cold"` {
		t.Fatalf("status %s output %s failure %v", s.Status, s.Output, s.Failure)
	}
}

// TestRewindTimerAndSubOrchestration rewinds a parent whose sub-orchestration failed while a
// timer was pending; the failure cancelled the timer, the rewind schedules it again and the
// child runs again.
func TestRewindTimerAndSubOrchestration(t *testing.T) {
	e := newEnv(t)
	var down atomic.Bool
	down.Store(true)
	reg := mustRegistry(t,
		map[string]durable.OrchestratorFunc{
			"Parent": func(ctx *durable.OrchestrationContext) (any, error) {
				timer := ctx.CreateTimer(500 * time.Millisecond)
				var out string
				if err := ctx.CallSubOrchestrator("Child", nil).Await(&out); err != nil {
					return nil, err
				}
				if err := timer.Await(nil); err != nil {
					return nil, err
				}
				return out, nil
			},
			"Child": func(ctx *durable.OrchestrationContext) (any, error) {
				var out string
				err := ctx.CallActivity("Work", nil).Await(&out)
				return out, err
			},
		},
		map[string]durable.ActivityFunc{
			"Work": durable.Activity(func(context.Context, any) (string, error) {
				if down.Load() {
					return "", errors.New("down")
				}
				return "worked", nil
			}),
		})
	e.startWorker(reg)
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Parent")
	if err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); s.Status != history.StatusFailed {
		t.Fatalf("status %s, want Failed", s.Status)
	}
	// The failed generation cancelled its pending timer: no schedule is left; the rewind
	// schedules it again.
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n := e.scheduledTimers(); n != 0 {
			return fmt.Errorf("%d timers scheduled after the failure, want 0", n)
		}
		return nil
	})
	down.Store(false)
	if err := e.client.Rewind(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	s := e.waitFor(id, "ended after the rewind", func(s *engine.Status) bool { return s.Status.IsTerminal() && s.Failure == nil })
	if s.Status != history.StatusCompleted || string(s.Output) != `"worked"` {
		t.Fatalf("status %s output %s failure %v", s.Status, s.Output, s.Failure)
	}
}
