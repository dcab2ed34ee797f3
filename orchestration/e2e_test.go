package orchestration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// The end-to-end tests run the orchestrators on an embedded JetStream server with a real worker,
// the real activities and a real inventory bucket. Each test function starts one server; its
// subtests run in parallel on it, each with its own instance IDs, items and phone numbers.

type env struct {
	client *engine.Client
	kv     jetstream.KeyValue
	sms    *activities.LogSMS
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := examplestack.Start(t)
	return &env{client: st.Client, kv: st.Inventory, sms: st.SMS}
}

// start schedules orchestrator name with input as instance id.
func (e *env) start(t *testing.T, name, id string, input any) {
	t.Helper()
	if _, err := e.client.ScheduleNew(context.Background(), name, engine.WithInstanceID(id), engine.WithInput(input)); err != nil {
		t.Fatalf("starting %s as %s: %v", name, id, err)
	}
}

func (e *env) raise(t *testing.T, id, event string, data any) {
	t.Helper()
	if err := e.client.RaiseEvent(context.Background(), id, event, data); err != nil {
		t.Fatalf("raising %s on %s: %v", event, id, err)
	}
}

// waitingFor waits until instance id waits for every one of events.
func (e *env) waitingFor(t *testing.T, id string, events ...string) *engine.Status {
	t.Helper()
	return examplestack.WaitFor(t, e.client, id, fmt.Sprintf("waiting for %q", events), examplestack.WaitingFor(events...))
}

// completed waits for instance id to end, checks that it completed and decodes its output into v.
func (e *env) completed(t *testing.T, id string, v any) *engine.Status {
	t.Helper()
	s := e.ended(t, id)
	if s.Status != history.StatusCompleted {
		t.Fatalf("%s ended %s (failure %+v), want Completed", id, s.Status, s.Failure)
	}
	if err := json.Unmarshal(s.Output, v); err != nil {
		t.Fatalf("decoding the output %s of %s: %v", s.Output, id, err)
	}
	return s
}

func (e *env) ended(t *testing.T, id string) *engine.Status {
	t.Helper()
	return examplestack.WaitEnded(t, e.client, id)
}

// count returns how many events of type typ (and name, unless it is "") instance id's history holds.
func (e *env) count(t *testing.T, id string, typ history.EventType, name string) int {
	t.Helper()
	events, err := e.client.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range events {
		if ev.Type == typ && (name == "" || ev.Name == name) {
			n++
		}
	}
	return n
}

func (e *env) stock(t *testing.T, item string) int {
	t.Helper()
	n, err := activities.Stock(context.Background(), e.kv, item)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) restock(t *testing.T, item string, qty int) {
	t.Helper()
	if err := activities.Restock(context.Background(), e.kv, item, qty); err != nil {
		t.Fatal(err)
	}
}

func TestBudgetApprovalEndToEnd(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		approved bool
		activity string
		want     string
	}{
		{true, activities.ApproveBudget, "approved"},
		{false, activities.NotifyDenial, "denied"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			id := "budget-" + tc.want
			e.start(t, "BudgetApproval", id, activities.BudgetRequest{ID: id, AmountCents: 1000})
			e.waitingFor(t, id, "Approval")
			e.raise(t, id, "Approval", tc.approved)
			var out string
			e.completed(t, id, &out)
			if out != tc.want {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
			if n := e.count(t, id, history.TaskScheduled, tc.activity); n != 1 {
				t.Fatalf("%s scheduled %d times, want once", tc.activity, n)
			}
			if n := e.count(t, id, history.TaskCompleted, ""); n != 1 {
				t.Fatalf("%d activity results, want 1", n)
			}
		})
	}
	t.Run("raised before the wait", func(t *testing.T) {
		t.Parallel()
		id := "budget-early"
		e.start(t, "BudgetApproval", id, nil)
		e.raise(t, id, "Approval", true)
		var out string
		e.completed(t, id, &out)
		if out != "approved" {
			t.Fatalf("output %q, want approved", out)
		}
	})
	t.Run("payload not a bool", func(t *testing.T) {
		t.Parallel()
		id := "budget-bad"
		e.start(t, "BudgetApproval", id, nil)
		e.raise(t, id, "Approval", "yes")
		s := e.ended(t, id)
		if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, `decoding event "Approval"`) {
			t.Fatalf("status %s, failure %+v; want Failed with a decode error", s.Status, s.Failure)
		}
	})
}

func TestSelectEndToEnd(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		winner string
		data   any
		later  string
		want   orchestration.SelectResult
	}{
		{"Event1", 2.5, "Event3", orchestration.SelectResult{Winner: "Event1", Value: 2.5}},
		{"Event2", false, "Event1", orchestration.SelectResult{Winner: "Event2", Value: false}},
		{"Event3", 7, "Event2", orchestration.SelectResult{Winner: "Event3", Value: float64(7)}},
	} {
		t.Run(tc.winner, func(t *testing.T) {
			t.Parallel()
			id := "select-" + tc.winner
			e.start(t, "Select", id, nil)
			e.waitingFor(t, id, "Event1", "Event2", "Event3")
			e.raise(t, id, tc.winner, tc.data)
			// A later event is never consumed: it reaches a completed instance (and is
			// discarded), or the client already refuses it.
			if err := e.client.RaiseEvent(context.Background(), id, tc.later, "late"); err != nil && !errors.Is(err, engine.ErrInstanceEnded) {
				t.Fatalf("raising the later event: %v", err)
			}
			var out orchestration.SelectResult
			e.completed(t, id, &out)
			if out != tc.want {
				t.Fatalf("output %+v, want %+v", out, tc.want)
			}
			if n := e.count(t, id, history.EventRaised, ""); n != 1 {
				t.Fatalf("%d events in the history, want only the winner", n)
			}
		})
	}
	t.Run("winner of the wrong type", func(t *testing.T) {
		t.Parallel()
		id := "select-bad"
		e.start(t, "Select", id, nil)
		e.raise(t, id, "Event3", 2.5)
		s := e.ended(t, id)
		if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, `decoding event "Event3"`) {
			t.Fatalf("status %s, failure %+v; want Failed with a decode error", s.Status, s.Failure)
		}
	})
}

func TestNewBuildingPermitEndToEnd(t *testing.T) {
	e := newEnv(t)
	for _, order := range [][]string{
		{"CityPlanningApproval", "FireDeptApproval", "BuildingDeptApproval"},
		{"BuildingDeptApproval", "CityPlanningApproval", "FireDeptApproval"},
		{"FireDeptApproval", "BuildingDeptApproval", "CityPlanningApproval"},
	} {
		t.Run(order[0], func(t *testing.T) {
			t.Parallel()
			app := "app-" + order[0]
			e.start(t, "NewBuildingPermit", app, app)
			e.raise(t, app, order[0], true)
			e.raise(t, app, order[1], map[string]string{"by": "inspector"})
			examplestack.WaitFor(t, e.client, app, "waiting for "+order[2]+" only", func(s *engine.Status) bool {
				return s.Waiting != nil && slices.Equal(s.Waiting.Events, order[2:])
			})
			e.raise(t, app, order[2], nil)
			var permit activities.Permit
			e.completed(t, app, &permit)
			if permit.ID != activities.PermitID(app) || permit.ApplicationID != app || permit.IssuedAt.IsZero() {
				t.Fatalf("permit %+v, want ID %s for %s", permit, activities.PermitID(app), app)
			}
		})
	}
}

func TestPlaceOrderEndToEnd(t *testing.T) {
	e := newEnv(t)
	t.Run("in stock", func(t *testing.T) {
		t.Parallel()
		e.restock(t, "widget-in-stock", 10)
		e.start(t, "PlaceOrder", "order-in-stock", activities.Order{Item: "widget-in-stock", Quantity: 4, UnitPriceCents: 125})
		var inv activities.Invoice
		e.completed(t, "order-in-stock", &inv)
		if inv.ID != "inv-order-in-stock" || inv.OrderID != "order-in-stock" || inv.TotalCents != 500 {
			t.Fatalf("invoice %+v", inv)
		}
		if got := e.stock(t, "widget-in-stock"); got != 6 {
			t.Fatalf("stock %d, want 6", got)
		}
	})
	t.Run("short, restocked, Proceed", func(t *testing.T) {
		t.Parallel()
		const item, id = "widget-short", "order-short"
		e.restock(t, item, 1)
		e.start(t, "PlaceOrder", id, activities.Order{ID: "o-77", Item: item, Quantity: 3, UnitPriceCents: 250, Customer: "ada"})
		s := e.waitingFor(t, id, "Proceed")
		var status orchestration.OrderStatus
		if err := json.Unmarshal(s.CustomStatus, &status); err != nil || status.State != "awaiting-stock" {
			t.Fatalf("custom status %s (%v), want state awaiting-stock", s.CustomStatus, err)
		}
		if got := e.stock(t, item); got != 1 {
			t.Fatalf("stock while short = %d, want 1 (nothing reserved)", got)
		}
		e.restock(t, item, 5)
		e.raise(t, id, "Proceed", nil)
		var inv activities.Invoice
		s = e.completed(t, id, &inv)
		want := activities.Invoice{ID: "inv-o-77", OrderID: "o-77", Item: item, Quantity: 3, TotalCents: 750, Customer: "ada", IssuedAt: inv.IssuedAt}
		if inv != want || inv.IssuedAt.IsZero() {
			t.Fatalf("invoice %+v, want %+v", inv, want)
		}
		if err := json.Unmarshal(s.CustomStatus, &status); err != nil || status.State != "reserved" {
			t.Fatalf("custom status %s (%v), want state reserved", s.CustomStatus, err)
		}
		if got := e.stock(t, item); got != 3 {
			t.Fatalf("stock %d, want 3", got)
		}
		if n := e.count(t, id, history.TaskScheduled, activities.CheckAndReserveInventory); n != 2 {
			t.Fatalf("reserved %d times, want 2", n)
		}
	})
	t.Run("still short after Proceed", func(t *testing.T) {
		t.Parallel()
		const item, id = "widget-never", "order-never"
		e.start(t, "PlaceOrder", id, activities.Order{Item: item, Quantity: 2})
		e.waitingFor(t, id, "Proceed")
		e.raise(t, id, "Proceed", nil)
		s := e.ended(t, id)
		if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, "out of stock") {
			t.Fatalf("status %s, failure %+v; want Failed, out of stock", s.Status, s.Failure)
		}
	})
}

func TestPhoneVerificationEndToEnd(t *testing.T) {
	e := newEnv(t)
	// challenge starts a verification and returns the code the phone received.
	challenge := func(t *testing.T, id, phone string, timeoutSeconds float64) int {
		t.Helper()
		e.start(t, "PhoneVerification", id, orchestration.PhoneVerificationInput{Phone: phone, TimeoutSeconds: timeoutSeconds})
		e.waitingFor(t, id, "SmsChallengeResponse")
		code, ok := e.sms.LastCode(phone)
		if !ok {
			t.Fatalf("no code was sent to %s", phone)
		}
		n, err := strconv.Atoi(code)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	wrong := func(code int) int { return 1000 + (code-1000+1)%9000 }

	t.Run("correct on the second attempt", func(t *testing.T) {
		t.Parallel()
		id := "phone-second"
		code := challenge(t, id, "+15550001", 60)
		e.raise(t, id, "SmsChallengeResponse", wrong(code))
		e.raise(t, id, "SmsChallengeResponse", code)
		var ok bool
		e.completed(t, id, &ok)
		if !ok {
			t.Fatal("not verified")
		}
		if n := e.count(t, id, history.EventRaised, "SmsChallengeResponse"); n != 2 {
			t.Fatalf("%d answers in the history, want 2", n)
		}
	})
	t.Run("three wrong answers", func(t *testing.T) {
		t.Parallel()
		id := "phone-wrong"
		code := challenge(t, id, "+15550002", 60)
		e.raise(t, id, "SmsChallengeResponse", wrong(code))
		e.raise(t, id, "SmsChallengeResponse", "code "+strconv.Itoa(code)) // not a number: counted as wrong
		e.raise(t, id, "SmsChallengeResponse", wrong(code))
		var ok bool
		e.completed(t, id, &ok)
		if ok {
			t.Fatal("verified after three wrong answers")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		id := "phone-timeout"
		challenge(t, id, "+15550003", 1)
		var ok bool
		e.completed(t, id, &ok)
		if ok {
			t.Fatal("verified without an answer")
		}
		if n := e.count(t, id, history.TimerFired, ""); n != 1 {
			t.Fatalf("%d timers fired, want 1", n)
		}
	})
}
