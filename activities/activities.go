// Package activities holds the example activities that the orchestrators in orchestration/ call:
// budget decisions, building permits, inventory reservations in a JetStream KV bucket, payments
// and SMS challenges.
//
// Activities are plain Go methods of *Activities, which carries their dependencies (Deps).
// Register adds them to a durable.Registry under the names below. Like every jetflow activity
// they run at least once: a worker that dies after running one but before its result is recorded
// causes it to run again. The doc of each says what that means for it.
package activities

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/durable"
)

// The names the activities are registered under.
const (
	ApproveBudget            = "ApproveBudget"
	NotifyDenial             = "NotifyDenial"
	IssueBuildingPermit      = "IssueBuildingPermit"
	CheckAndReserveInventory = "CheckAndReserveInventory"
	ProcessPayment           = "ProcessPayment"
	SendSmsChallenge         = "SendSmsChallenge"
)

// Deps are what the activities need.
type Deps struct {
	// Inventory is the stock bucket (see InventoryBucket); required.
	Inventory jetstream.KeyValue
	// SMS sends challenge codes (default: a *LogSMS writing to Log).
	SMS SMSSender
	// Log receives one line per activity run (default: discard).
	Log zerolog.Logger
}

// Activities are the example activities bound to their dependencies.
type Activities struct {
	inventory jetstream.KeyValue
	sms       SMSSender
	log       zerolog.Logger
}

// New binds the activities to deps. It returns an error if deps.Inventory is nil.
func New(deps Deps) (*Activities, error) {
	if deps.Inventory == nil {
		return nil, errors.New("activities: Deps.Inventory is required")
	}
	a := &Activities{inventory: deps.Inventory, sms: deps.SMS, log: deps.Log}
	if a.sms == nil {
		a.sms = &LogSMS{Log: deps.Log}
	}
	return a, nil
}

// Register adds the activities, bound to deps, to reg under their names.
func Register(reg *durable.Registry, deps Deps) error {
	a, err := New(deps)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		fn   durable.ActivityFunc
	}{
		{ApproveBudget, durable.Activity(a.ApproveBudget)},
		{NotifyDenial, durable.Activity(a.NotifyDenial)},
		{IssueBuildingPermit, durable.Activity(a.IssueBuildingPermit)},
		{CheckAndReserveInventory, durable.Activity(a.CheckAndReserveInventory)},
		{ProcessPayment, durable.Activity(a.ProcessPayment)},
		{SendSmsChallenge, durable.Activity(a.SendSmsChallenge)},
	} {
		if err := reg.AddActivity(r.name, r.fn); err != nil {
			return err
		}
	}
	return nil
}

// BudgetRequest is the input of the BudgetApproval orchestration and its activities. Every field
// is optional.
type BudgetRequest struct {
	ID          string `json:"id,omitempty"`
	AmountCents int64  `json:"amountCents,omitempty"`
	Requester   string `json:"requester,omitempty"`
}

// BudgetDecision is what ApproveBudget and NotifyDenial return.
type BudgetDecision struct {
	RequestID string `json:"requestId,omitempty"`
	Approved  bool   `json:"approved"`
}

// ApproveBudget records that a budget request was approved. This example only logs it; running
// it twice logs twice.
func (a *Activities) ApproveBudget(ctx context.Context, req BudgetRequest) (BudgetDecision, error) {
	a.activityLog(ctx).Info().Str("request_id", req.ID).Int64("amount_cents", req.AmountCents).
		Str("requester", req.Requester).Msg("budget approved")
	return BudgetDecision{RequestID: req.ID, Approved: true}, nil
}

// NotifyDenial tells the requester that a budget request was denied. This example only logs it;
// running it twice logs twice.
func (a *Activities) NotifyDenial(ctx context.Context, req BudgetRequest) (BudgetDecision, error) {
	a.activityLog(ctx).Info().Str("request_id", req.ID).Str("requester", req.Requester).Msg("budget denied")
	return BudgetDecision{RequestID: req.ID, Approved: false}, nil
}

// Permit is a building permit.
type Permit struct {
	ID            string    `json:"id"`
	ApplicationID string    `json:"applicationId"`
	IssuedAt      time.Time `json:"issuedAt"`
}

// PermitID returns the ID of the permit issued for an application: "permit-" + applicationID.
func PermitID(applicationID string) string { return "permit-" + applicationID }

// IssueBuildingPermit issues the permit for an application ID. The permit ID is derived from the
// application ID, so running it twice issues the same permit (with a later IssuedAt).
func (a *Activities) IssueBuildingPermit(ctx context.Context, applicationID string) (Permit, error) {
	if applicationID == "" {
		return Permit{}, errors.New("issuing a building permit: the application ID is empty")
	}
	p := Permit{ID: PermitID(applicationID), ApplicationID: applicationID, IssuedAt: time.Now().UTC()}
	a.activityLog(ctx).Info().Str("application_id", applicationID).Str("permit_id", p.ID).Msg("building permit issued")
	return p, nil
}

// Order is the input of the PlaceOrder orchestration and of CheckAndReserveInventory and
// ProcessPayment.
type Order struct {
	// ID identifies the order; PlaceOrder uses its instance ID when it is empty.
	ID string `json:"id,omitempty"`
	// Item is the inventory key: letters, digits, '-', '_' and '=' only.
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
	// UnitPriceCents is the price of one item, in cents.
	UnitPriceCents int64  `json:"unitPriceCents,omitempty"`
	Customer       string `json:"customer,omitempty"`
}

// Validate reports what is wrong with an order, if anything.
func (o Order) Validate() error {
	if err := checkItem(o.Item); err != nil {
		return err
	}
	if o.Quantity <= 0 {
		return fmt.Errorf("order of %q: quantity must be > 0, got %d", o.Item, o.Quantity)
	}
	if o.UnitPriceCents < 0 {
		return fmt.Errorf("order of %q: unit price must be >= 0, got %d", o.Item, o.UnitPriceCents)
	}
	return nil
}

// CheckAndReserveInventory takes order.Quantity items out of the stock of order.Item in the
// inventory bucket, atomically (a compare-and-set on the key's revision, retried on conflict).
// It returns false, and reserves nothing, if the stock is short. It is not idempotent: if it runs
// twice for one call, it reserves twice.
func (a *Activities) CheckAndReserveInventory(ctx context.Context, order Order) (bool, error) {
	if err := order.Validate(); err != nil {
		return false, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	log := a.activityLog(ctx).With().Str("order_id", order.ID).Str("item", order.Item).Int("quantity", order.Quantity).Logger()
	var reserved bool
	err := updateStock(ctx, a.inventory, order.Item, func(stock int) (int, bool) {
		reserved = stock >= order.Quantity
		if !reserved {
			log.Info().Int("stock", stock).Msg("not enough stock")
			return stock, false
		}
		return stock - order.Quantity, true
	})
	if err != nil {
		return false, fmt.Errorf("reserving %d × %q: %w", order.Quantity, order.Item, err)
	}
	if reserved {
		log.Info().Msg("stock reserved")
	}
	return reserved, nil
}

// Invoice is what ProcessPayment returns.
type Invoice struct {
	ID         string    `json:"id"`
	OrderID    string    `json:"orderId"`
	Item       string    `json:"item"`
	Quantity   int       `json:"quantity"`
	TotalCents int64     `json:"totalCents"`
	Customer   string    `json:"customer,omitempty"`
	IssuedAt   time.Time `json:"issuedAt"`
}

// InvoiceID returns the ID of the invoice of an order: "inv-" + orderID.
func InvoiceID(orderID string) string { return "inv-" + orderID }

// ProcessPayment charges the order and returns its invoice. The invoice ID is derived from the
// order ID, which a real payment provider would take as its idempotency key, so running it twice
// charges once.
func (a *Activities) ProcessPayment(ctx context.Context, order Order) (Invoice, error) {
	if order.ID == "" {
		return Invoice{}, errors.New("processing a payment: the order ID is empty")
	}
	if err := order.Validate(); err != nil {
		return Invoice{}, err
	}
	inv := Invoice{
		ID:         InvoiceID(order.ID),
		OrderID:    order.ID,
		Item:       order.Item,
		Quantity:   order.Quantity,
		TotalCents: int64(order.Quantity) * order.UnitPriceCents,
		Customer:   order.Customer,
		IssuedAt:   time.Now().UTC(),
	}
	a.activityLog(ctx).Info().Str("order_id", order.ID).Str("invoice_id", inv.ID).Int64("total_cents", inv.TotalCents).Msg("payment processed")
	return inv, nil
}

// SendSmsChallenge sends a random four-digit code (1000–9999) to phone and returns it. If it runs
// twice, the phone gets two codes and only the one recorded in the history is accepted.
func (a *Activities) SendSmsChallenge(ctx context.Context, phone string) (int, error) {
	if phone == "" {
		return 0, errors.New("sending an SMS challenge: the phone number is empty")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(9000))
	if err != nil {
		return 0, fmt.Errorf("generating a challenge code: %w", err)
	}
	code := 1000 + int(n.Int64())
	if err := a.sms.Send(ctx, phone, strconv.Itoa(code)); err != nil {
		return 0, fmt.Errorf("sending an SMS challenge to %s: %w", phone, err)
	}
	a.activityLog(ctx).Info().Str("phone", phone).Msg("SMS challenge sent")
	return code, nil
}

// SMSSender sends a text message with a challenge code.
type SMSSender interface {
	Send(ctx context.Context, phone, code string) error
}

// LogSMS is the SMSSender for development and tests: it logs each code (at info level) instead of
// sending it, and remembers the last code sent to each phone. Its zero value logs nothing. It is
// safe for concurrent use.
type LogSMS struct {
	Log zerolog.Logger

	mu   sync.Mutex
	last map[string]string
}

var _ SMSSender = (*LogSMS)(nil)

// Send logs the code and remembers it as phone's last code.
func (l *LogSMS) Send(_ context.Context, phone, code string) error {
	l.mu.Lock()
	if l.last == nil {
		l.last = map[string]string{}
	}
	l.last[phone] = code
	l.mu.Unlock()
	l.Log.Info().Str("phone", phone).Str("code", code).Msg("SMS challenge code (not sent: LogSMS)")
	return nil
}

// LastCode returns the last code sent to phone.
func (l *LogSMS) LastCode(phone string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	code, ok := l.last[phone]
	return code, ok
}

// activityLog returns the logger with the calling instance and task, when the worker provided them.
func (a *Activities) activityLog(ctx context.Context) *zerolog.Logger {
	log := a.log
	if info, ok := durable.ActivityInfoFrom(ctx); ok {
		log = log.With().Str("instance_id", info.InstanceID).Str("activity", info.Name).Int("task_id", info.TaskID).Logger()
	}
	return &log
}
