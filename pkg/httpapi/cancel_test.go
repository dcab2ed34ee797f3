package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// treeEnv is a real JetStream with a worker serving Parent → Child → Grandchild (which waits
// for an event that never comes, or a timer in an hour), and two APIs: strict refuses
// orchestrators no live worker serves (as `jetflow api` does), lenient accepts them.
type treeEnv struct {
	client          *engine.Client
	strict, lenient *httptest.Server
}

func newTreeEnv(t *testing.T) *treeEnv {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	b, err := natsjs.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	reg := durable.NewRegistry()
	for name, fn := range map[string]durable.OrchestratorFunc{
		"Parent": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallSubOrchestrator("Child", nil, durable.WithInstanceID(ctx.InstanceID()+"-child")).Await(nil)
		},
		"Child": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallSubOrchestrator("Grandchild", nil, durable.WithInstanceID(ctx.InstanceID()+"-grand")).Await(nil)
		},
		"Grandchild": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.WhenAny(ctx.WaitForExternalEvent("Never"), ctx.CreateTimer(time.Hour)).Await(nil)
		},
	} {
		if err := reg.AddOrchestrator(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	w, err := engine.NewWorker(b, reg, examplestack.WorkerOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	examplestack.RunInBackground(t, "worker", w.Run)
	strict := engine.NewClient(b, engine.WithKnownOrchestratorsOnly())
	t.Cleanup(strict.Close)
	e := &treeEnv{client: engine.NewClient(b)}
	e.strict = httptest.NewServer(httpapi.New(strict, httpapi.Options{}))
	t.Cleanup(e.strict.Close)
	e.lenient = httptest.NewServer(httpapi.New(e.client, httpapi.Options{}))
	t.Cleanup(e.lenient.Close)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if ws, err := e.client.Workers(context.Background()); err != nil || len(ws) != 1 {
			return fmt.Errorf("workers %+v (%v), want the worker", ws, err)
		}
		return nil
	})
	return e
}

// startTree starts Parent as id over the strict API and waits until its grandchild waits.
func (e *treeEnv) startTree(t *testing.T, id string) []string {
	t.Helper()
	expectCode(t, do(t, http.MethodPost, api(e.strict, "orchestrators/Parent/"+id), ""), http.StatusAccepted, "start Parent")
	tree := []string{id, id + "-child", id + "-child-grand"}
	examplestack.WaitCreated(t, e.client, tree[2])
	examplestack.WaitFor(t, e.client, tree[2], "waiting", examplestack.WaitingFor("Never"))
	return tree
}

// Terminate and purge reach the sub-orchestrations by default (recursive=true), and only the
// instance with recursive=false; a recursive value that is not a boolean is 400.
func TestRecursiveTerminateAndPurgeOverHTTP(t *testing.T) {
	e := newTreeEnv(t)
	tree := e.startTree(t, "tree")
	expectCode(t, do(t, http.MethodPost, inst(e.strict, "tree", "/terminate?reason=enough&recursive=maybe"), ""), http.StatusBadRequest, "recursive=maybe")
	expectCode(t, do(t, http.MethodPost, inst(e.strict, "tree", "/terminate?reason=enough"), ""), http.StatusAccepted, "terminate")
	for _, id := range tree {
		if s := examplestack.WaitEnded(t, e.client, id); s.Status != history.StatusTerminated {
			t.Fatalf("%s: %s, want Terminated", id, s.Status)
		}
	}
	r := do(t, http.MethodDelete, inst(e.strict, "tree", ""), "")
	expectCode(t, r, http.StatusOK, "purge")
	if got := r.json(t)["instancesDeleted"]; got != float64(3) {
		t.Fatalf("instancesDeleted %v, want 3", got)
	}
	for _, id := range tree {
		expectCode(t, do(t, http.MethodGet, inst(e.strict, id, ""), ""), http.StatusNotFound, "status of "+id+" after the purge")
	}

	flat := e.startTree(t, "flat")
	expectCode(t, do(t, http.MethodPost, inst(e.strict, "flat", "/terminate?recursive=false"), ""), http.StatusAccepted, "terminate, not recursive")
	examplestack.WaitEnded(t, e.client, "flat")
	// A message sent to the child now is applied after anything the terminate sent it.
	if err := e.client.RaiseEvent(context.Background(), flat[1], "Probe", 1); err != nil {
		t.Fatal(err)
	}
	examplestack.WaitFor(t, e.client, flat[1], "to have applied the probe", func(s *engine.Status) bool { return s.HistoryEvents >= 5 })
	if s, err := e.client.GetStatus(context.Background(), flat[1]); err != nil || s.Status != history.StatusRunning {
		t.Fatalf("child after a non-recursive terminate: %+v %v, want Running", s, err)
	}
	r = do(t, http.MethodDelete, inst(e.strict, "flat", "?recursive=false"), "")
	expectCode(t, r, http.StatusOK, "purge, not recursive")
	if got := r.json(t)["instancesDeleted"]; got != float64(1) {
		t.Fatalf("instancesDeleted %v, want 1", got)
	}
	expectCode(t, do(t, http.MethodGet, inst(e.strict, flat[1], ""), ""), http.StatusAccepted, "the child after a non-recursive purge")
}

// Starting an orchestrator no live worker serves is 400 from an API that refuses unknown names,
// and accepted (202) by one that allows them.
func TestUnknownOrchestratorIs400(t *testing.T) {
	e := newTreeEnv(t)
	r := do(t, http.MethodPost, api(e.strict, "orchestrators/Nope"), "")
	expectCode(t, r, http.StatusBadRequest, "start of an unknown orchestrator")
	if got := r.json(t)["error"]; got != "UnknownOrchestrator" {
		t.Fatalf("error %v, want UnknownOrchestrator; body %s", got, r.body)
	}
	expectCode(t, do(t, http.MethodPost, api(e.strict, "orchestrators/Nope/n1/raiseEvent/Go"), `{"input":1,"eventData":2}`),
		http.StatusBadRequest, "start-with-event of an unknown orchestrator")
	expectCode(t, do(t, http.MethodPost, api(e.strict, "orchestrators/Parent/known"), ""), http.StatusAccepted, "start of a served orchestrator")
	expectCode(t, do(t, http.MethodPost, api(e.lenient, "orchestrators/Nope/lenient"), ""), http.StatusAccepted, "start of an unknown orchestrator, allowed")
	if _, err := e.client.GetStatus(context.Background(), "lenient"); err != nil {
		t.Fatalf("the allowed start: %v, want the instance created", err)
	}
}
