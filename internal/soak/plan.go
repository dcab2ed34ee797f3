package soak

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"

	"github.com/jetflow-dev/jetflow/activities"
)

// channel is how an event reaches its instance.
type channel int

const (
	viaHTTP     channel = iota // the HTTP API's raiseEvent, with header Jetflow-Event-Id
	viaPublish                 // a core NATS publish to the event subject, header Nats-Msg-Id only
	viaQueue                   // a notification on the raiser's queue soak-events
	viaApproval                // the instance ID on the raiser's queue soak-approvals (Approval true)
	channels
)

func (c channel) String() string {
	return [...]string{"http", "publish", "queue", "approval-queue"}[c]
}

// event is one event the driver raises on an instance.
type event struct {
	ID   string // its event ID, unique in the run
	Name string
	Data json.RawMessage
	Via  channel
}

// plan is one instance: what starts it, the events it gets and the output it must end with.
type plan struct {
	ID     string
	Orch   string
	Input  any
	Events []event
	// Want is the expected output; for NewBuildingPermit and PlaceOrder only the fields that do
	// not hold times (see outputMatches).
	Want json.RawMessage
	// Bad is a deliberate bad input sent before the events (bad* constants), 0 for none.
	Bad int
}

// soakItem is the inventory item of the PlaceOrder instances, stocked for all of them.
const soakItem = "soak-widget"

// makePlans returns n plans: the five example orchestrations in turn, their events spread over
// the channels.
func makePlans(n int, rng *rand.Rand) []*plan {
	plans := make([]*plan, n)
	for i := range plans {
		id := fmt.Sprintf("soak-%05d", i)
		var p *plan
		switch i % 5 {
		case 0:
			p = budgetPlan(id, i, rng)
		case 1:
			p = selectPlan(id, i, rng)
		case 2:
			p = permitPlan(id, rng)
		case 3:
			p = orderPlan(id, i)
		case 4:
			p = phonePlan(id, i, rng)
		}
		plans[i] = p
	}
	return plans
}

// ev makes the k-th event of instance id.
func ev(id string, k int, name string, data any, via channel) event {
	b, _ := json.Marshal(data)
	return event{ID: fmt.Sprintf("%s:e%d", id, k), Name: name, Data: b, Via: via}
}

// pick returns one of the three general channels at random.
func pick(rng *rand.Rand) channel { return channel(rng.Intn(int(viaApproval))) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func budgetPlan(id string, i int, rng *rand.Rand) *plan {
	approve := rng.Intn(2) == 0
	via := channel(rng.Intn(int(channels)))
	if via == viaApproval && !approve {
		via = viaQueue
	}
	want := "denied"
	if approve {
		want = "approved"
	}
	return &plan{ID: id, Orch: "BudgetApproval",
		Input:  activities.BudgetRequest{ID: id, AmountCents: int64(1000 + i), Requester: "soak"},
		Events: []event{ev(id, 1, "Approval", approve, via)}, Want: mustJSON(want)}
}

func selectPlan(id string, i int, rng *rand.Rand) *plan {
	var e event
	var value any
	switch rng.Intn(3) {
	case 0:
		value = float64(i) + 0.5
		e = ev(id, 1, "Event1", value, pick(rng))
	case 1:
		value = i%2 == 0
		e = ev(id, 1, "Event2", value, pick(rng))
	default:
		value = i
		e = ev(id, 1, "Event3", value, pick(rng))
	}
	return &plan{ID: id, Orch: "Select", Events: []event{e},
		Want: mustJSON(map[string]any{"winner": e.Name, "value": value})}
}

func permitPlan(id string, rng *rand.Rand) *plan {
	app := "app-" + id
	names := []string{"CityPlanningApproval", "FireDeptApproval", "BuildingDeptApproval"}
	rng.Shuffle(len(names), func(a, b int) { names[a], names[b] = names[b], names[a] })
	var evs []event
	for k, name := range names {
		evs = append(evs, ev(id, k+1, name, map[string]any{"by": name}, channel(k)))
	}
	return &plan{ID: id, Orch: "NewBuildingPermit", Input: app, Events: evs,
		Want: mustJSON(map[string]any{"id": activities.PermitID(app), "applicationId": app})}
}

func orderPlan(id string, i int) *plan {
	o := activities.Order{Item: soakItem, Quantity: 1 + i%3, UnitPriceCents: 250, Customer: "soak"}
	return &plan{ID: id, Orch: "PlaceOrder", Input: o,
		Want: mustJSON(map[string]any{"id": activities.InvoiceID(id), "orderId": id, "item": soakItem,
			"quantity": o.Quantity, "totalCents": int64(o.Quantity) * o.UnitPriceCents, "customer": "soak"})}
}

// phonePlan answers three wrong codes (codes are 1000-9999): the output is false.
func phonePlan(id string, i int, rng *rand.Rand) *plan {
	in := map[string]any{"phone": fmt.Sprintf("+1555%06d", i), "timeoutSeconds": 3600}
	var evs []event
	for k := 1; k <= 3; k++ {
		evs = append(evs, ev(id, k, "SmsChallengeResponse", k, pick(rng)))
	}
	return &plan{ID: id, Orch: "PhoneVerification", Input: in, Events: evs, Want: mustJSON(false)}
}

// outputMatches reports whether got is the plan's output: equal JSON, or for objects, every
// field of Want equal in got (permits and invoices also hold the time they were issued).
func (p *plan) outputMatches(got json.RawMessage) bool {
	var want, have any
	if json.Unmarshal(p.Want, &want) != nil || json.Unmarshal(got, &have) != nil {
		return false
	}
	wm, ok := want.(map[string]any)
	if !ok || p.Orch == "Select" {
		return reflect.DeepEqual(want, have)
	}
	hm, ok := have.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range wm {
		if !reflect.DeepEqual(hm[k], v) {
			return false
		}
	}
	return true
}
