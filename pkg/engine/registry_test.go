package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// A client made WithKnownOrchestratorsOnly refuses orchestrators no live worker serves: before
// any worker runs, names the running worker does not serve, and the worker's names once it has
// stopped. The default client accepts them (the instance waits for a worker).
func TestUnknownOrchestratorRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	strict := engine.NewClient(e.b, engine.WithKnownOrchestratorsOnly())
	defer strict.Close()
	if _, err := strict.ScheduleNew(ctx, "Approval"); !errors.Is(err, engine.ErrUnknownOrchestrator) {
		t.Fatalf("no worker: %v, want ErrUnknownOrchestrator", err)
	}
	if _, err := e.client.ScheduleNew(ctx, "Nope", engine.WithInstanceID("lenient")); err != nil {
		t.Fatalf("the default client refused: %v", err)
	}

	_, stop := e.startWorker(approvalRegistry(t))
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		ws, err := strict.Workers(ctx)
		if err != nil || len(ws) != 1 {
			return fmt.Errorf("workers %+v (%v), want one", ws, err)
		}
		if !ws[0].Serves("Approval") || ws[0].ID == "" || ws[0].Started.IsZero() || len(ws[0].Activities) != 1 {
			return fmt.Errorf("worker %+v", ws[0])
		}
		return nil
	})
	id, err := strict.ScheduleNew(ctx, "Approval")
	if err != nil {
		t.Fatalf("a served orchestrator: %v", err)
	}
	if err := strict.RaiseEvent(ctx, id, "Approval", true); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); string(s.Output) != `"approved"` {
		t.Fatalf("output %s", s.Output)
	}
	if _, err := strict.ScheduleNew(ctx, "Nope"); !errors.Is(err, engine.ErrUnknownOrchestrator) {
		t.Fatalf("a name the worker does not serve: %v, want ErrUnknownOrchestrator", err)
	}
	if _, err := strict.StartWithEvent(ctx, "Nope", engine.Event{Name: "x"}); !errors.Is(err, engine.ErrUnknownOrchestrator) {
		t.Fatalf("start-with-event of a name the worker does not serve: %v, want ErrUnknownOrchestrator", err)
	}

	stop() // a clean stop removes the worker's entry
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		_, err := strict.ScheduleNew(ctx, "Approval", engine.WithInstanceID("after-stop"))
		if errors.Is(err, engine.ErrUnknownOrchestrator) {
			return nil
		}
		return fmt.Errorf("after the worker stopped: %v, want ErrUnknownOrchestrator", err)
	})
	if ws, err := strict.Workers(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("workers after the stop: %+v (%v)", ws, err)
	}
}
