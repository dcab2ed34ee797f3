package orchestration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/durable/durabletest"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// These tests run the orchestrators through durabletest: the test completes the activities and
// raises the events. orchestration_e2e_test.go runs them on JetStream with the real activities.

func registry(t *testing.T) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	if err := orchestration.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func start(t *testing.T, name string, input any) *durabletest.Run {
	t.Helper()
	return durabletest.New(t, registry(t), name, input)
}

// wantFailed checks that the instance failed with wantMessage, and with wantType unless it is "".
func wantFailed(t *testing.T, run *durabletest.Run, wantType, wantMessage string) {
	t.Helper()
	if got := run.Status(); got != history.StatusFailed {
		t.Fatalf("status = %s, want Failed", got)
	}
	f := run.Failure()
	if (wantType != "" && f.Type != wantType) || !strings.Contains(f.Message, wantMessage) {
		t.Fatalf("failure = %s: %s, want %s containing %q", f.Type, f.Message, wantType, wantMessage)
	}
}

func wantInput(t *testing.T, a durable.Action, want any) {
	t.Helper()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Input) != string(b) {
		t.Fatalf("input of %s = %s, want %s", a.Name, a.Input, b)
	}
}

func TestRegister(t *testing.T) {
	reg := registry(t)
	for _, name := range []string{"BudgetApproval", "Select", "NewBuildingPermit", "PlaceOrder", "PhoneVerification"} {
		if _, ok := reg.Orchestrator(name); !ok {
			t.Errorf("%s is not registered", name)
		}
	}
	if err := orchestration.Register(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}

func TestBudgetApproval(t *testing.T) {
	req := activities.BudgetRequest{ID: "b-1", AmountCents: 50000, Requester: "ada"}
	for _, tc := range []struct {
		approved bool
		activity string
		want     string
	}{
		{true, activities.ApproveBudget, "approved"},
		{false, activities.NotifyDenial, "denied"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			run := start(t, "BudgetApproval", req)
			if got := run.Waiting().Events; len(got) != 1 || got[0] != "Approval" {
				t.Fatalf("waiting for %q, want [Approval]", got)
			}
			run.Raise("Approval", tc.approved)
			call := run.Activity(tc.activity)
			wantInput(t, call, req)
			if n := len(run.Pending()); n != 1 {
				t.Fatalf("%d activities pending, want only %s", n, tc.activity)
			}
			run.Complete(call, activities.BudgetDecision{RequestID: req.ID, Approved: tc.approved})
			var out string
			run.Output(&out)
			if out != tc.want {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
	t.Run("no input", func(t *testing.T) {
		run := start(t, "BudgetApproval", nil)
		run.Raise("Approval", true)
		wantInput(t, run.Activity(activities.ApproveBudget), activities.BudgetRequest{})
	})
	t.Run("payload not a bool", func(t *testing.T) {
		run := start(t, "BudgetApproval", nil)
		run.Raise("Approval", "yes")
		wantFailed(t, run, "DecodeError", `decoding event "Approval": json: cannot unmarshal string into Go value of type bool`)
	})
	t.Run("activity fails", func(t *testing.T) {
		run := start(t, "BudgetApproval", nil)
		run.Raise("Approval", true)
		run.Fail(run.Activity(activities.ApproveBudget), "ledger offline")
		wantFailed(t, run, "TaskFailed", "ledger offline")
	})
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		winner string
		data   any
		later  string
		want   string
	}{
		{"Event1", 2.5, "Event2", `{"winner":"Event1","value":2.5}`},
		{"Event2", true, "Event3", `{"winner":"Event2","value":true}`},
		{"Event3", 7, "Event1", `{"winner":"Event3","value":7}`},
	} {
		t.Run(tc.winner, func(t *testing.T) {
			run := start(t, "Select", nil)
			if got := strings.Join(run.Waiting().Events, ","); got != "Event1,Event2,Event3" {
				t.Fatalf("waiting for %s, want all three events", got)
			}
			run.Raise(tc.winner, tc.data)
			run.Raise(tc.later, json.RawMessage(`"ignored"`)) // after the end: not consumed
			var out json.RawMessage
			run.Output(&out)
			if string(out) != tc.want {
				t.Fatalf("output %s, want %s", out, tc.want)
			}
			raised := 0
			for _, ev := range run.History() {
				if ev.Type == history.EventRaised {
					raised++
				}
			}
			if raised != 1 {
				t.Fatalf("%d events in the history, want only the winner", raised)
			}
		})
	}
	t.Run("winner of the wrong type", func(t *testing.T) {
		run := start(t, "Select", nil)
		run.Raise("Event3", 2.5)
		wantFailed(t, run, "DecodeError", `decoding event "Event3": json: cannot unmarshal number 2.5 into Go value of type int`)
	})
}

func TestNewBuildingPermit(t *testing.T) {
	gates := []string{"CityPlanningApproval", "FireDeptApproval", "BuildingDeptApproval"}
	orders := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, order := range orders {
		name := fmt.Sprintf("%s,%s,%s", gates[order[0]], gates[order[1]], gates[order[2]])
		t.Run(name, func(t *testing.T) {
			run := start(t, "NewBuildingPermit", "app-42")
			for i, g := range order {
				if got := len(run.Waiting().Events); got != 3-i {
					t.Fatalf("before approval %d, waiting for %d events, want %d", i+1, got, 3-i)
				}
				if n := len(run.Pending()); n != 0 {
					t.Fatalf("something scheduled before all approvals: %+v", run.Pending())
				}
				run.Raise(gates[g], map[string]string{"by": "clerk"})
			}
			call := run.Activity(activities.IssueBuildingPermit)
			wantInput(t, call, "app-42")
			permit := activities.Permit{ID: activities.PermitID("app-42"), ApplicationID: "app-42", IssuedAt: durabletest.Epoch}
			run.Complete(call, permit)
			var out activities.Permit
			run.Output(&out)
			if out != permit {
				t.Fatalf("output %+v, want %+v", out, permit)
			}
		})
	}
	t.Run("approvals before the wait", func(t *testing.T) {
		run := start(t, "NewBuildingPermit", "app-43")
		// An approval raised twice counts once; the duplicate stays buffered.
		run.Raise("FireDeptApproval", nil)
		run.Raise("FireDeptApproval", nil)
		run.Raise("BuildingDeptApproval", nil)
		if got := run.Waiting().Events; len(got) != 1 || got[0] != "CityPlanningApproval" {
			t.Fatalf("waiting for %q, want [CityPlanningApproval]", got)
		}
		run.Raise("CityPlanningApproval", nil)
		run.Activity(activities.IssueBuildingPermit)
	})
	t.Run("no application ID", func(t *testing.T) {
		wantFailed(t, start(t, "NewBuildingPermit", ""), "", "the input must be an application ID")
	})
}

func TestPlaceOrder(t *testing.T) {
	order := activities.Order{ID: "o-1", Item: "widget", Quantity: 3, UnitPriceCents: 250}
	invoice := activities.Invoice{ID: "inv-o-1", OrderID: "o-1", Item: "widget", Quantity: 3, TotalCents: 750, IssuedAt: durabletest.Epoch}
	checkInvoice := func(t *testing.T, run *durabletest.Run) {
		t.Helper()
		var out activities.Invoice
		run.Output(&out)
		if out != invoice {
			t.Fatalf("output %+v, want %+v", out, invoice)
		}
		var status orchestration.OrderStatus
		run.CustomStatus(&status)
		if status.State != "reserved" {
			t.Fatalf("custom status %+v, want state reserved", status)
		}
	}

	t.Run("in stock", func(t *testing.T) {
		run := start(t, "PlaceOrder", order)
		reserve := run.Activity(activities.CheckAndReserveInventory)
		wantInput(t, reserve, order)
		run.Complete(reserve, true)
		pay := run.Activity(activities.ProcessPayment)
		wantInput(t, pay, order)
		run.Complete(pay, invoice)
		checkInvoice(t, run)
	})
	t.Run("short, then restocked", func(t *testing.T) {
		run := start(t, "PlaceOrder", order)
		run.Complete(run.Activity(activities.CheckAndReserveInventory), false)
		var status orchestration.OrderStatus
		run.CustomStatus(&status)
		if want := (orchestration.OrderStatus{State: "awaiting-stock", Item: "widget", Quantity: 3}); status != want {
			t.Fatalf("custom status %+v, want %+v", status, want)
		}
		if got := run.Waiting().Events; len(got) != 1 || got[0] != "Proceed" {
			t.Fatalf("waiting for %q, want [Proceed]", got)
		}
		run.Raise("Proceed", nil)
		run.Complete(run.Activity(activities.CheckAndReserveInventory), true)
		run.Complete(run.Activity(activities.ProcessPayment), invoice)
		checkInvoice(t, run)
	})
	t.Run("still short after Proceed", func(t *testing.T) {
		run := start(t, "PlaceOrder", order)
		run.Complete(run.Activity(activities.CheckAndReserveInventory), false)
		run.Raise("Proceed", "go")
		run.Complete(run.Activity(activities.CheckAndReserveInventory), false)
		wantFailed(t, run, "", `out of stock: 3 × "widget" still not available after Proceed`)
	})
	t.Run("order ID defaults to the instance ID", func(t *testing.T) {
		run := start(t, "PlaceOrder", activities.Order{Item: "widget", Quantity: 1})
		wantInput(t, run.Activity(activities.CheckAndReserveInventory), activities.Order{ID: durabletest.InstanceID, Item: "widget", Quantity: 1})
	})
	t.Run("invalid order", func(t *testing.T) {
		run := start(t, "PlaceOrder", activities.Order{Item: "widget"})
		wantFailed(t, run, "", "quantity must be > 0")
	})
	t.Run("payment fails", func(t *testing.T) {
		run := start(t, "PlaceOrder", order)
		run.Complete(run.Activity(activities.CheckAndReserveInventory), true)
		run.Fail(run.Activity(activities.ProcessPayment), "card declined")
		wantFailed(t, run, "TaskFailed", "card declined")
	})
}

func TestPhoneVerification(t *testing.T) {
	const code = 4321
	// started sends the challenge and returns the run waiting for the first answer.
	started := func(t *testing.T, input any) *durabletest.Run {
		t.Helper()
		run := start(t, "PhoneVerification", input)
		send := run.Activity(activities.SendSmsChallenge)
		wantInput(t, send, "+15550100")
		run.Complete(send, code)
		return run
	}
	result := func(t *testing.T, run *durabletest.Run) bool {
		t.Helper()
		var ok bool
		run.Output(&ok)
		return ok
	}
	input := orchestration.PhoneVerificationInput{Phone: "+15550100", TimeoutSeconds: 2}

	t.Run("correct on the first attempt", func(t *testing.T) {
		run := started(t, input)
		run.Raise("SmsChallengeResponse", code)
		if !result(t, run) {
			t.Fatal("not verified")
		}
	})
	t.Run("correct on the second attempt", func(t *testing.T) {
		run := started(t, input)
		run.Raise("SmsChallengeResponse", 1111)
		if got := run.Status(); got != history.StatusRunning {
			t.Fatalf("status after a wrong answer = %s, want Running", got)
		}
		run.Raise("SmsChallengeResponse", code)
		if !result(t, run) {
			t.Fatal("not verified")
		}
	})
	t.Run("three wrong answers", func(t *testing.T) {
		run := started(t, input)
		for _, answer := range []any{1111, "code 4321", 2222} { // not a number: wrong
			run.Raise("SmsChallengeResponse", answer)
		}
		if result(t, run) {
			t.Fatal("verified after three wrong answers")
		}
		run.Raise("SmsChallengeResponse", code) // too late
		if result(t, run) {
			t.Fatal("verified by a fourth answer")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		run := started(t, input)
		timers := run.Pending()
		if len(timers) != 1 || !timers[0].FireAt.Equal(durabletest.Epoch.Add(2*time.Second)) {
			t.Fatalf("pending %+v, want one timer at Epoch+2s", timers)
		}
		run.Raise("SmsChallengeResponse", 1111)
		run.FireTimers()
		if result(t, run) {
			t.Fatal("verified after the timeout")
		}
	})
	t.Run("default timeout, phone as a plain string", func(t *testing.T) {
		run := started(t, "+15550100")
		timers := run.Pending()
		if len(timers) != 1 || !timers[0].FireAt.Equal(durabletest.Epoch.Add(orchestration.DefaultChallengeTimeout)) {
			t.Fatalf("pending %+v, want one timer at Epoch+%s", timers, orchestration.DefaultChallengeTimeout)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		wantFailed(t, start(t, "PhoneVerification", orchestration.PhoneVerificationInput{}), "", "must hold a phone number")
		wantFailed(t, start(t, "PhoneVerification", orchestration.PhoneVerificationInput{Phone: "1", TimeoutSeconds: -1}),
			"", "timeoutSeconds must be > 0")
		wantFailed(t, start(t, "PhoneVerification", 42), "DecodeError", "decoding orchestration input")
	})
	t.Run("SMS fails", func(t *testing.T) {
		run := start(t, "PhoneVerification", input)
		run.Fail(run.Activity(activities.SendSmsChallenge), "carrier down")
		wantFailed(t, run, "TaskFailed", "carrier down")
	})
}
