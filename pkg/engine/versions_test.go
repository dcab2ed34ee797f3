package engine_test

// Versioning end to end: two worker processes (each with its own NATS connection and backend)
// with different versions of one orchestrator share the partitions; work is routed to the
// worker that has an instance's version, an instance whose version no worker has waits visibly,
// and a patched orchestrator replays instances started before the patch.

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// startProcess runs a worker with reg on a NATS connection and backend of its own, as a worker
// process has, until the test ends or stop is called.
func (e *env) startProcess(reg *durable.Registry) (stop func()) {
	e.t.Helper()
	_, js := natstest.Connect(e.t, e.srv)
	b, err := natsjs.New(context.Background(), js)
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := engine.NewWorker(b, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("worker: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	e.t.Cleanup(stop)
	return stop
}

// orderVersion is version v of orchestrator "Order": it waits for event Go and returns "v<v>".
func orderRegistry(t *testing.T, v string) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	fn := func(ctx *durable.OrchestrationContext) (any, error) {
		if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
			return nil, err
		}
		return "v" + ctx.Version(), nil
	}
	if err := reg.AddOrchestrator("Order", fn, durable.WithVersion(v)); err != nil {
		t.Fatal(err)
	}
	return reg
}

func (e *env) startOrders(prefix string, n int, opts ...engine.StartOption) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		if _, err := e.client.ScheduleNew(context.Background(), "Order", append(opts, engine.WithInstanceID(ids[i]))...); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

func (e *env) finishOrders(ids []string, want string) {
	e.t.Helper()
	for _, id := range ids {
		if err := e.client.RaiseEvent(context.Background(), id, "Go", true); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, id := range ids {
		s := e.wait(id)
		if s.Status != "Completed" || string(s.Output) != `"`+want+`"` {
			e.t.Fatalf("%s: %s with output %s (failure %+v), want Completed with %q", id, s.Status, s.Output, s.Failure, want)
		}
	}
}

// TestVersionsV1ToV2: instances start on v1; a worker with only v2 is deployed beside the v1
// worker (the partitions are shared, so each worker takes work of the other's version and routes
// it); the old instances finish on v1 and new ones run on v2. When the v1 worker stops, a v1
// instance waits with a visible status, and it completes once a v1 worker is back.
func TestVersionsV1ToV2(t *testing.T) {
	e := newEnv(t)
	stopV1 := e.startProcess(orderRegistry(t, "1"))
	waitBalanced(t, e, 16)
	old := e.startOrders("old", 12)
	for _, id := range old {
		if s := e.waitFor(id, "waiting on v1", waitingForEvent("Go")); s.OrchestratorVersion != "1" {
			t.Fatalf("%s started on version %q, want 1", id, s.OrchestratorVersion)
		}
	}

	e.startProcess(orderRegistry(t, "2"))
	waitBalanced(t, e, 8, 8)
	fresh := e.startOrders("new", 12, engine.WithVersion("2"))
	for _, id := range fresh {
		if s := e.waitFor(id, "waiting on v2", waitingForEvent("Go")); s.OrchestratorVersion != "2" {
			t.Fatalf("%s started on version %q, want 2", id, s.OrchestratorVersion)
		}
	}
	e.finishOrders(old, "v1")
	e.finishOrders(fresh, "v2")

	late := e.startOrders("late", 4, engine.WithVersion("1"))
	for _, id := range late {
		e.waitFor(id, "waiting on v1", waitingForEvent("Go"))
	}
	stopV1()
	waitBalanced(t, e, 16)
	for _, id := range late {
		if err := e.client.RaiseEvent(context.Background(), id, "Go", true); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range late {
		s := e.waitFor(id, "waiting for a v1 worker", func(s *engine.Status) bool { return s.WaitingForVersion != "" })
		if s.Status != "Running" || s.WaitingForVersion != "Order@1" || s.Warning == "" {
			t.Fatalf("%s without a v1 worker: %s, waiting for %q, warning %q; want Running, waiting for Order@1", id, s.Status, s.WaitingForVersion, s.Warning)
		}
	}
	e.startProcess(orderRegistry(t, "1"))
	for _, id := range late {
		s := e.wait(id)
		if s.Status != "Completed" || string(s.Output) != `"v1"` || s.WaitingForVersion != "" || s.Warning != "" {
			t.Fatalf("%s after a v1 worker came back: %+v, want Completed with \"v1\" and no warning", id, s)
		}
	}
}

// patchedFlow waits for Go twice and calls activity A after each; patched, it calls B from
// change "use-b" on.
func patchedFlow(t *testing.T, patched bool) *durable.Registry {
	t.Helper()
	return mustRegistry(t, map[string]durable.OrchestratorFunc{"Flow": func(ctx *durable.OrchestrationContext) (any, error) {
		var calls []string
		for range 2 {
			if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
				return nil, err
			}
			name := "A"
			if patched && ctx.IsPatched("use-b") {
				name = "B"
			}
			var out string
			if err := ctx.CallActivity(name, nil).Await(&out); err != nil {
				return nil, err
			}
			calls = append(calls, out)
		}
		return calls, nil
	}}, map[string]durable.ActivityFunc{
		"A": func(context.Context, json.RawMessage) (any, error) { return "A", nil },
		"B": func(context.Context, json.RawMessage) (any, error) { return "B", nil },
	})
}

// TestPatchAppliedToRunningInstance: an instance that ran its first step on the old code is
// replayed by a new worker with the patched code without a non-determinism failure: it keeps its
// old step and takes the patched branch from then on; an instance started after the patch takes
// it everywhere.
func TestPatchAppliedToRunningInstance(t *testing.T) {
	e := newEnv(t)
	stopOld := e.startProcess(patchedFlow(t, false))
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Flow", engine.WithInstanceID("before")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("before", "waiting", waitingForEvent("Go"))
	if err := e.client.RaiseEvent(ctx, "before", "Go", 1); err != nil {
		t.Fatal(err)
	}
	e.waitFor("before", "waiting again", func(s *engine.Status) bool {
		return waitingForEvent("Go")(s) && len(s.Waiting.Activities) == 0 && s.HistoryEvents > 6
	})
	stopOld()

	e.startProcess(patchedFlow(t, true))
	if _, err := e.client.ScheduleNew(ctx, "Flow", engine.WithInstanceID("after")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("after", "waiting", waitingForEvent("Go"))
	// The second event for "after" is buffered until its second wait.
	for _, id := range []string{"before", "after", "after"} {
		if err := e.client.RaiseEvent(ctx, id, "Go", 2); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"before": `["A","B"]`, "after": `["B","B"]`} {
		s := e.wait(id)
		if s.Status != "Completed" || string(s.Output) != want {
			t.Fatalf("%s: %s with output %s (failure %+v), want Completed with %s", id, s.Status, s.Output, s.Failure, want)
		}
	}
}
