package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

// scenarioEnv is what `jetflow dev` runs: the examples on an embedded JetStream, the HTTP API on
// loopback, and the raiser on approval-queue and event-queue.
type scenarioEnv struct {
	*env
	st *examplestack.Stack
}

func newScenarioEnv(t *testing.T) *scenarioEnv {
	t.Helper()
	st := examplestack.Start(t)
	st.StartRaiser(t, examplestack.DevRaiserConfig())
	return &scenarioEnv{env: &env{client: st.Client, open: st.ServeAPI(t, httpapi.Options{})}, st: st}
}

// pub publishes data to subject with plain NATS, as `nats pub` does.
func (e *scenarioEnv) pub(t *testing.T, subject, data string) {
	t.Helper()
	if err := e.st.NC.Publish(subject, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := e.st.NC.Flush(); err != nil {
		t.Fatal(err)
	}
}

// eventSubject is what `jetflow subject <id> <event>` prints.
func eventSubject(t *testing.T, id, event string) string {
	t.Helper()
	names, err := natsjs.NewNames("")
	if err != nil {
		t.Fatal(err)
	}
	idTok, err := natsjs.EncodeInstanceID(id)
	if err != nil {
		t.Fatal(err)
	}
	nameTok, err := natsjs.EncodeEventName(event)
	if err != nil {
		t.Fatal(err)
	}
	return names.EventSubject(idTok, nameTok)
}

// finalStatus waits for id to end and returns its status object over HTTP.
func (e *scenarioEnv) finalStatus(t *testing.T, id string) map[string]any {
	t.Helper()
	examplestack.WaitEnded(t, e.client, id)
	r := do(t, "GET", inst(e.open, id, ""), "")
	expectCode(t, r, http.StatusOK, "status of ended "+id)
	return r.json(t)
}

// start starts orchestrator name as id over HTTP and waits until it waits for event.
func (e *scenarioEnv) start(t *testing.T, name, id, input, event string) {
	t.Helper()
	r := do(t, "POST", api(e.open, "orchestrators/"+name+"/"+url.PathEscape(id)), input)
	expectCode(t, r, http.StatusAccepted, "start "+id)
	examplestack.WaitFor(t, e.client, id, "waiting for "+event, examplestack.WaitingFor(event))
}

// TestScenariosOverHTTP drives the seed scenarios through the HTTP API, with events raised over
// HTTP, by plain NATS publishes and through the raiser's queues.
func TestScenariosOverHTTP(t *testing.T) {
	e := newScenarioEnv(t)
	const budget = `{"amountCents": 500000, "requester": "ana"}`

	for _, c := range []struct {
		name, id string
		approve  func(t *testing.T, id string)
	}{
		{"BudgetApproval approved over HTTP", "budget http", func(t *testing.T, id string) {
			expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Approval"), "true"), http.StatusAccepted, "raise")
		}},
		{"BudgetApproval approved by nats pub", "budget.pub*>", func(t *testing.T, id string) {
			e.pub(t, eventSubject(t, id, orchestration.EventApproval), "true")
		}},
		{"BudgetApproval approved from approval-queue", "budget-queue-☕", func(t *testing.T, id string) {
			e.pub(t, "approval-queue", id)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e.start(t, "BudgetApproval", c.id, budget, orchestration.EventApproval)
			c.approve(t, c.id)
			st := e.finalStatus(t, c.id)
			if st["runtimeStatus"] != "Completed" || st["output"] != "approved" || st["instanceId"] != c.id {
				t.Errorf("status %v", st)
			}
		})
	}

	t.Run("Select won by a published Event1", func(t *testing.T) {
		t.Parallel()
		id := "select-pub"
		e.start(t, "Select", id, "", orchestration.Event1)
		e.pub(t, eventSubject(t, id, orchestration.Event1), "2.5")
		st := e.finalStatus(t, id)
		if out, _ := st["output"].(map[string]any); out == nil || out["winner"] != "Event1" || out["value"] != 2.5 {
			t.Errorf("status %v, want Event1 winning with 2.5", st)
		}
	})

	t.Run("NewBuildingPermit approved over HTTP", func(t *testing.T) {
		t.Parallel()
		id := "permit-http"
		e.start(t, "NewBuildingPermit", id, `"`+id+`"`, orchestration.EventFireDeptApproval)
		for _, ev := range []string{orchestration.EventFireDeptApproval, orchestration.EventCityPlanningApproval, orchestration.EventBuildingDeptApproval} {
			expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/"+ev), `{"by": "inspector"}`), http.StatusAccepted, "raise "+ev)
		}
		st := e.finalStatus(t, id)
		out, _ := st["output"].(map[string]any)
		if st["runtimeStatus"] != "Completed" || out == nil || out["id"] != activities.PermitID(id) {
			t.Errorf("status %v, want a permit %s", st, activities.PermitID(id))
		}
	})

	t.Run("PlaceOrder proceeds on a notification from event-queue", func(t *testing.T) {
		t.Parallel()
		id, item := "order-notified", "gizmo-notified"
		e.start(t, "PlaceOrder", id, `{"item": "`+item+`", "quantity": 2, "unitPriceCents": 300}`, orchestration.EventProceed)
		r := do(t, "GET", inst(e.open, id, ""), "")
		expectCode(t, r, http.StatusAccepted, "status while short of stock")
		if cs, _ := r.json(t)["customStatus"].(map[string]any); cs == nil || cs["state"] != "awaiting-stock" {
			t.Errorf("customStatus %v, want state awaiting-stock", r.json(t)["customStatus"])
		}
		if err := activities.Restock(context.Background(), e.st.Inventory, item, 5); err != nil {
			t.Fatal(err)
		}
		e.pub(t, "event-queue", `{"instanceId": "`+id+`", "eventName": "Proceed", "eventData": null}`)
		st := e.finalStatus(t, id)
		out, _ := st["output"].(map[string]any)
		if st["runtimeStatus"] != "Completed" || out == nil || out["totalCents"] != 600.0 {
			t.Errorf("status %v, want an invoice of 600 cents", st)
		}
		if cs, _ := st["customStatus"].(map[string]any); cs == nil || cs["state"] != "reserved" {
			t.Errorf("customStatus %v, want state reserved", st["customStatus"])
		}
	})
}

// TestWaitingForOverHTTP checks the status's waitingFor through a scenario's steps.
func TestWaitingForOverHTTP(t *testing.T) {
	e := newScenarioEnv(t)
	id := "permit-waiting"
	e.start(t, "NewBuildingPermit", id, `"x"`, orchestration.EventCityPlanningApproval)
	expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/"+orchestration.EventCityPlanningApproval), "true"), http.StatusAccepted, "raise")
	want := []string{orchestration.EventBuildingDeptApproval, orchestration.EventFireDeptApproval}
	examplestack.WaitFor(t, e.client, id, "waiting for the other two", func(s *engine.Status) bool { return s.Waiting != nil && slices.Equal(s.Waiting.Events, want) })
	r := do(t, "GET", inst(e.open, id, ""), "")
	var st struct {
		WaitingFor struct{ Events []string } `json:"waitingFor"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || !slices.Equal(st.WaitingFor.Events, want) {
		t.Errorf("waitingFor %+v (%v), want events %v", st.WaitingFor, err, want)
	}
	expectCode(t, do(t, "POST", inst(e.open, id, "/terminate"), ""), http.StatusAccepted, "terminate")
}
