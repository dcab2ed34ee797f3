// Package orchestration holds the example orchestrators, the scenarios of the Durable Functions
// documentation on jetflow. Register adds them to a registry under their function names; the
// activities they call are in package activities.
//
// Event payloads are JSON. When an event's data does not decode into the type an orchestrator
// expects, BudgetApproval and Select fail the instance with the *durable.DecodeError message
// (for example `decoding event "Approval": json: cannot unmarshal string into Go value of type
// bool`): the sender made a mistake that waiting longer would not fix, and the failure says which.
// PhoneVerification instead counts a payload that is not a number as a wrong answer, as a user
// typing letters into a code field would expect. NewBuildingPermit and PlaceOrder ignore the
// payloads of their events: their arrival is what counts.
package orchestration

import (
	"errors"
	"fmt"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/pkg/durable"
)

// The events the orchestrators wait for. Names are case-sensitive.
const (
	EventApproval             = "Approval"
	Event1                    = "Event1"
	Event2                    = "Event2"
	Event3                    = "Event3"
	EventCityPlanningApproval = "CityPlanningApproval"
	EventFireDeptApproval     = "FireDeptApproval"
	EventBuildingDeptApproval = "BuildingDeptApproval"
	EventProceed              = "Proceed"
	EventSmsChallengeResponse = "SmsChallengeResponse"
)

// Register adds the orchestrators to reg: BudgetApproval, Select, NewBuildingPermit, PlaceOrder
// and PhoneVerification, each under its function's name.
func Register(reg *durable.Registry) error {
	for _, o := range []struct {
		name string
		fn   durable.OrchestratorFunc
	}{
		{"BudgetApproval", BudgetApproval},
		{"Select", Select},
		{"NewBuildingPermit", NewBuildingPermit},
		{"PlaceOrder", PlaceOrder},
		{"PhoneVerification", PhoneVerification},
	} {
		if err := reg.AddOrchestrator(o.name, o.fn); err != nil {
			return err
		}
	}
	return nil
}

// BudgetApproval waits for the event "Approval" (a JSON bool). On true it calls ApproveBudget and
// outputs "approved"; on false it calls NotifyDenial and outputs "denied". Its input, optional, is
// an activities.BudgetRequest passed to either activity. Data that is not a bool fails the
// instance with a decode error.
func BudgetApproval(ctx *durable.OrchestrationContext) (any, error) {
	var req activities.BudgetRequest
	if err := ctx.GetInput(&req); err != nil {
		return nil, err
	}
	var approved bool
	if err := ctx.WaitForExternalEvent(EventApproval).Await(&approved); err != nil {
		return nil, err
	}
	if !approved {
		if err := ctx.CallActivity(activities.NotifyDenial, req).Await(nil); err != nil {
			return nil, err
		}
		return "denied", nil
	}
	if err := ctx.CallActivity(activities.ApproveBudget, req).Await(nil); err != nil {
		return nil, err
	}
	return "approved", nil
}

// SelectResult is the output of Select.
type SelectResult struct {
	Winner string `json:"winner"`
	// Value is the winner's data: a float64 for Event1, a bool for Event2, an int for Event3.
	Value any `json:"value"`
}

// Select waits for "Event1" (a number), "Event2" (a bool) and "Event3" (an integer) at once; the
// first to arrive wins and the others are left unconsumed. It outputs a SelectResult such as
// {"winner":"Event2","value":true}. Winning data of the wrong type fails the instance with a
// decode error.
func Select(ctx *durable.OrchestrationContext) (any, error) {
	names := []string{Event1, Event2, Event3}
	values := []any{new(float64), new(bool), new(int)}
	waits := make([]*durable.Task, len(names))
	for i, name := range names {
		waits[i] = ctx.WaitForExternalEvent(name)
	}
	var i int
	if err := ctx.WhenAny(waits...).Await(&i); err != nil {
		return nil, err
	}
	if err := waits[i].Await(values[i]); err != nil {
		return nil, err
	}
	var value any
	switch v := values[i].(type) {
	case *float64:
		value = *v
	case *bool:
		value = *v
	case *int:
		value = *v
	}
	return SelectResult{Winner: names[i], Value: value}, nil
}

// NewBuildingPermit takes an application ID (a JSON string) and waits for the events
// "CityPlanningApproval", "FireDeptApproval" and "BuildingDeptApproval", in any order (their data
// is ignored). Then it calls IssueBuildingPermit and outputs the activities.Permit.
func NewBuildingPermit(ctx *durable.OrchestrationContext) (any, error) {
	var applicationID string
	if err := ctx.GetInput(&applicationID); err != nil {
		return nil, err
	}
	if applicationID == "" {
		return nil, errors.New("NewBuildingPermit: the input must be an application ID, a non-empty JSON string")
	}
	gates := ctx.WhenAll(
		ctx.WaitForExternalEvent(EventCityPlanningApproval),
		ctx.WaitForExternalEvent(EventFireDeptApproval),
		ctx.WaitForExternalEvent(EventBuildingDeptApproval),
	)
	if err := gates.Await(nil); err != nil {
		return nil, err
	}
	var permit activities.Permit
	if err := ctx.CallActivity(activities.IssueBuildingPermit, applicationID).Await(&permit); err != nil {
		return nil, err
	}
	return permit, nil
}

// ErrOutOfStock fails a PlaceOrder whose item is still short after "Proceed".
var ErrOutOfStock = errors.New("out of stock")

// OrderStatus is the custom status of PlaceOrder.
type OrderStatus struct {
	// State is "awaiting-stock" while waiting for Proceed, "reserved" once the items are reserved.
	State    string `json:"state"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
}

// PlaceOrder takes an activities.Order (its ID defaults to the instance ID) and calls
// CheckAndReserveInventory. If the stock is short, it sets its custom status to an OrderStatus
// with State "awaiting-stock", waits for the event "Proceed" (data ignored; raise it once the
// item is restocked) and tries once more; still short, it fails with ErrOutOfStock. Once the
// items are reserved (custom status State "reserved") it calls ProcessPayment and outputs the
// activities.Invoice. A failed payment does not give the reserved items back.
func PlaceOrder(ctx *durable.OrchestrationContext) (any, error) {
	var order activities.Order
	if err := ctx.GetInput(&order); err != nil {
		return nil, err
	}
	if err := order.Validate(); err != nil {
		return nil, fmt.Errorf("PlaceOrder: %w", err)
	}
	if order.ID == "" {
		order.ID = ctx.InstanceID()
	}
	var reserved bool
	if err := ctx.CallActivity(activities.CheckAndReserveInventory, order).Await(&reserved); err != nil {
		return nil, err
	}
	if !reserved {
		ctx.Logger().Info().Str("item", order.Item).Int("quantity", order.Quantity).Msg("short of stock: waiting for Proceed")
		if err := ctx.SetCustomStatus(OrderStatus{State: "awaiting-stock", Item: order.Item, Quantity: order.Quantity}); err != nil {
			return nil, err
		}
		if err := ctx.WaitForExternalEvent(EventProceed).Await(nil); err != nil {
			return nil, err
		}
		if err := ctx.CallActivity(activities.CheckAndReserveInventory, order).Await(&reserved); err != nil {
			return nil, err
		}
		if !reserved {
			return nil, fmt.Errorf("%w: %d × %q still not available after %s", ErrOutOfStock, order.Quantity, order.Item, EventProceed)
		}
	}
	if err := ctx.SetCustomStatus(OrderStatus{State: "reserved", Item: order.Item, Quantity: order.Quantity}); err != nil {
		return nil, err
	}
	var invoice activities.Invoice
	if err := ctx.CallActivity(activities.ProcessPayment, order).Await(&invoice); err != nil {
		return nil, err
	}
	return invoice, nil
}
