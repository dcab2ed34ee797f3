package backendtest

// The suite's end-to-end part: an engine.Worker runs orchestrations on the backend.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// collectN waits for n events "Item" and returns their values in the order received.
func collectN(ctx *durable.OrchestrationContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	var items []int
	for range n {
		var v int
		if err := ctx.WaitForExternalEvent("Item").Await(&v); err != nil {
			return nil, err
		}
		items = append(items, v)
	}
	var out []int
	err := ctx.CallActivity("Double", items).Await(&out)
	return out, err
}

func double(_ context.Context, in []int) ([]int, error) {
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = 2 * v
	}
	return out, nil
}

func waitTimer(ctx *durable.OrchestrationContext) (any, error) {
	err := ctx.WaitForExternalEvent("Never", durable.WithTimeout(200*time.Millisecond)).Await(nil)
	if !errors.Is(err, durable.ErrTimeout) {
		return nil, fmt.Errorf("want a timeout, got %v", err)
	}
	before := ctx.CurrentTime()
	if err := ctx.CreateTimer(200 * time.Millisecond).Await(nil); err != nil {
		return nil, err
	}
	return ctx.CurrentTime().Sub(before) >= 200*time.Millisecond, nil
}

func parent(ctx *durable.OrchestrationContext) (any, error) {
	var out []int
	err := ctx.CallSubOrchestrator("Collect", 0, durable.WithInstanceID(ctx.InstanceID()+"-child")).Await(&out)
	return out, err
}

// runWorker runs a worker with the suite's orchestrations on b until the test ends.
func runWorker(t *testing.T, b backend.Backend) *engine.Client {
	t.Helper()
	reg := durable.NewRegistry()
	for name, fn := range map[string]durable.OrchestratorFunc{"Collect": collectN, "Timer": waitTimer, "Parent": parent} {
		if err := reg.AddOrchestrator(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.AddActivity("Double", durable.Activity(double)); err != nil {
		t.Fatal(err)
	}
	return runWorkerWith(t, b, reg)
}

// runWorkerWith runs a worker with reg on b until the test ends.
func runWorkerWith(t *testing.T, b backend.Backend, reg *durable.Registry) *engine.Client {
	t.Helper()
	w, err := engine.NewWorker(b, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return engine.NewClient(b)
}

func waitFor(t *testing.T, c *engine.Client, id, what string, ok func(*engine.Status) bool) *engine.Status {
	t.Helper()
	s, err := c.WaitFor(ctxFor(t), id, ok)
	if err != nil {
		t.Fatalf("waiting for %s to be %s: %v (last %+v)", id, what, err, s)
	}
	return s
}

func waitingFor(name string) func(*engine.Status) bool {
	return func(s *engine.Status) bool {
		return s.Waiting != nil && len(s.Waiting.Events) > 0 && s.Waiting.Events[0] == name
	}
}

func ended(s *engine.Status) bool { return s.Status.IsTerminal() }

func wantOutput(t *testing.T, s *engine.Status, want string) {
	t.Helper()
	if s.Status != history.StatusCompleted || string(s.Output) != want {
		t.Fatalf("%s: %s with output %s (failure %+v), want Completed with %s", s.ID, s.Status, s.Output, s.Failure, want)
	}
}

func testEngineEvents(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	ctx := ctxFor(t)
	// One event raised before the orchestrator waits (buffered), one after.
	if _, err := c.StartWithEvent(ctx, "Collect", engine.Event{Name: "Item", Data: 1}, engine.WithInstanceID("ev"), engine.WithInput(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ev", "waiting", waitingFor("Item"))
	// A start-with-event for the running instance: the start is ignored (input 2 stays) and
	// the event is raised on it; the caller is told that the instance exists.
	if _, err := c.StartWithEvent(ctx, "Collect", engine.Event{Name: "Item", Data: 2}, engine.WithInstanceID("ev"), engine.WithInput(9)); !errors.Is(err, engine.ErrInstanceExists) {
		t.Fatalf("start-with-event on a running instance: %v, want ErrInstanceExists", err)
	}
	wantOutput(t, waitFor(t, c, "ev", "ended", ended), "[2,4]")
	if err := c.RaiseEvent(ctx, "ev", "Item", 3); !errors.Is(err, engine.ErrInstanceEnded) {
		t.Fatalf("raising on a completed instance: %v, want ErrInstanceEnded", err)
	}
	if err := c.RaiseEvent(ctx, "missing", "Item", 3); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Fatalf("raising on a missing instance: %v, want ErrInstanceNotFound", err)
	}
}

func testEngineEventIDDedup(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	ctx := ctxFor(t)
	if _, err := c.ScheduleNew(ctx, "Collect", engine.WithInstanceID("dd"), engine.WithInput(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "dd", "waiting", waitingFor("Item"))
	for _, ev := range []struct {
		id string
		v  int
	}{{"a", 1}, {"a", 100}, {"b", 2}} {
		if err := c.RaiseEvent(ctx, "dd", "Item", ev.v, engine.WithEventID(ev.id)); err != nil {
			t.Fatal(err)
		}
	}
	wantOutput(t, waitFor(t, c, "dd", "ended", ended), "[2,4]")
}

func testEngineTimers(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	if _, err := c.ScheduleNew(ctxFor(t), "Timer", engine.WithInstanceID("tt")); err != nil {
		t.Fatal(err)
	}
	wantOutput(t, waitFor(t, c, "tt", "ended", ended), "true")
}

func testEngineControl(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	ctx := ctxFor(t)
	if _, err := c.ScheduleNew(ctx, "Collect", engine.WithInstanceID("ctl"), engine.WithInput(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ctl", "waiting", waitingFor("Item"))
	if err := c.Suspend(ctx, "ctl", "pause"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ctl", "suspended", func(s *engine.Status) bool { return s.Status == history.StatusSuspended })
	if err := c.RaiseEvent(ctx, "ctl", "Item", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx, "ctl", "go on"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "ctl", "running again", func(s *engine.Status) bool { return s.Status == history.StatusRunning })
	if err := c.Terminate(ctx, "ctl", "enough"); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, c, "ctl", "ended", ended)
	if s.Status != history.StatusTerminated {
		t.Fatalf("status %s, want Terminated", s.Status)
	}
	events, err := c.GetHistory(ctx, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	raised := 0
	for _, ev := range events {
		if ev.Type == history.EventRaised {
			raised++
		}
	}
	if raised != 1 {
		t.Fatalf("%d events raised in the history, want the one sent while suspended", raised)
	}
}

func testEngineSubOrchestration(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	ctx := ctxFor(t)
	if _, err := c.ScheduleNew(ctx, "Parent", engine.WithInstanceID("par")); err != nil {
		t.Fatal(err)
	}
	wantOutput(t, waitFor(t, c, "par", "ended", ended), "[]")
	// The child reports to its parent as it ends; its own state may be stored a moment later.
	child := waitFor(t, c, "par-child", "ended", ended)
	if child.Parent == nil || child.Parent.InstanceID != "par" {
		t.Fatalf("child %+v, want one with parent par", child)
	}
	wantOutput(t, child, "[]")
}
