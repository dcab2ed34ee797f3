package activities_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// inventory returns a fresh inventory bucket on an embedded server.
func inventory(t *testing.T) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	kv, err := activities.InventoryBucket(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

func newActivities(t *testing.T, deps activities.Deps) *activities.Activities {
	t.Helper()
	a, err := activities.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func stock(t *testing.T, kv jetstream.KeyValue, item string) int {
	t.Helper()
	n, err := activities.Stock(context.Background(), kv, item)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRegister(t *testing.T) {
	reg := durable.NewRegistry()
	if err := activities.Register(reg, activities.Deps{}); err == nil || !strings.Contains(err.Error(), "Inventory is required") {
		t.Fatalf("Register without inventory: %v, want an error naming Deps.Inventory", err)
	}
	_, kv := inventory(t)
	if err := activities.Register(reg, activities.Deps{Inventory: kv}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(reg.ActivityNames(), ",")
	want := "ApproveBudget,CheckAndReserveInventory,IssueBuildingPermit,NotifyDenial,ProcessPayment,SendSmsChallenge"
	if got != want {
		t.Fatalf("registered %s, want %s", got, want)
	}
	if err := activities.Register(reg, activities.Deps{Inventory: kv}); err == nil {
		t.Fatal("registering twice succeeded")
	}
}

func TestInventoryBucket(t *testing.T) {
	js, kv := inventory(t)
	ctx := context.Background()
	if _, err := activities.InventoryBucket(ctx, js, 1); err != nil {
		t.Fatalf("creating the bucket again: %v", err)
	}
	if _, err := activities.InventoryBucket(ctx, js, 0); err == nil {
		t.Fatal("replicas 0 accepted")
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := status.Bucket(); got != activities.InventoryBucketName {
		t.Fatalf("bucket %q, want %q", got, activities.InventoryBucketName)
	}

	if got := stock(t, kv, "widget"); got != 0 {
		t.Fatalf("stock of an unknown item = %d, want 0", got)
	}
	for range 2 {
		if err := activities.Restock(ctx, kv, "widget", 5); err != nil {
			t.Fatal(err)
		}
	}
	if got := stock(t, kv, "widget"); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
	// The value is a plain number, as an operator would put it.
	if _, err := kv.Put(ctx, "gadget", []byte("7")); err != nil {
		t.Fatal(err)
	}
	if got := stock(t, kv, "gadget"); got != 7 {
		t.Fatalf("stock of a hand-set item = %d, want 7", got)
	}
	// A deleted key is no stock, and can be restocked.
	if err := kv.Delete(ctx, "gadget"); err != nil {
		t.Fatal(err)
	}
	if err := activities.Restock(ctx, kv, "gadget", 1); err != nil {
		t.Fatalf("restocking a deleted item: %v", err)
	}
	if got := stock(t, kv, "gadget"); got != 1 {
		t.Fatalf("stock after delete and restock = %d, want 1", got)
	}

	for _, tc := range []struct {
		name string
		item string
		qty  int
		want string
	}{
		{"zero quantity", "widget", 0, "quantity must be > 0"},
		{"empty item", "", 1, "item name is empty"},
		{"item with a dot", "a.b", 1, `item name "a.b": only letters`},
	} {
		if err := activities.Restock(ctx, kv, tc.item, tc.qty); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Restock error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := kv.Put(ctx, "broken", []byte("many")); err != nil {
		t.Fatal(err)
	}
	if _, err := activities.Stock(ctx, kv, "broken"); err == nil || !strings.Contains(err.Error(), `"many", not a number`) {
		t.Fatalf("Stock of a non-number: %v", err)
	}
}

func TestCheckAndReserveInventory(t *testing.T) {
	_, kv := inventory(t)
	ctx := context.Background()
	a := newActivities(t, activities.Deps{Inventory: kv})
	if err := activities.Restock(ctx, kv, "widget", 5); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		qty       int
		want      bool
		wantStock int
	}{
		{3, true, 2},
		{3, false, 2}, // short: nothing reserved
		{2, true, 0},
		{1, false, 0},
	}
	for i, s := range steps {
		got, err := a.CheckAndReserveInventory(ctx, activities.Order{ID: "o", Item: "widget", Quantity: s.qty})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != s.want {
			t.Fatalf("step %d: reserving %d = %v, want %v", i, s.qty, got, s.want)
		}
		if got := stock(t, kv, "widget"); got != s.wantStock {
			t.Fatalf("step %d: stock %d, want %d", i, got, s.wantStock)
		}
	}
	if ok, err := a.CheckAndReserveInventory(ctx, activities.Order{Item: "never-stocked", Quantity: 1}); ok || err != nil {
		t.Fatalf("reserving an unknown item = %v, %v; want false, nil", ok, err)
	}
	for _, bad := range []activities.Order{{Item: "widget"}, {Item: "", Quantity: 1}, {Item: "widget", Quantity: 1, UnitPriceCents: -1}} {
		if _, err := a.CheckAndReserveInventory(ctx, bad); err == nil {
			t.Errorf("order %+v accepted", bad)
		}
	}
}

func TestConcurrentReservationsNeverOversell(t *testing.T) {
	_, kv := inventory(t)
	ctx := context.Background()
	a := newActivities(t, activities.Deps{Inventory: kv})
	const stocked, buyers = 12, 20
	if err := activities.Restock(ctx, kv, "widget", stocked); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make(chan bool, buyers)
	for i := range buyers {
		wg.Go(func() {
			ok, err := a.CheckAndReserveInventory(ctx, activities.Order{ID: strconv.Itoa(i), Item: "widget", Quantity: 1})
			if err != nil {
				t.Error(err)
			}
			results <- ok
		})
	}
	wg.Wait()
	close(results)
	reserved := 0
	for ok := range results {
		if ok {
			reserved++
		}
	}
	if reserved != stocked {
		t.Fatalf("%d reservations succeeded, want %d", reserved, stocked)
	}
	if got := stock(t, kv, "widget"); got != 0 {
		t.Fatalf("stock %d, want 0", got)
	}
}

func TestProcessPaymentAndPermit(t *testing.T) {
	_, kv := inventory(t)
	ctx := context.Background()
	a := newActivities(t, activities.Deps{Inventory: kv})

	inv, err := a.ProcessPayment(ctx, activities.Order{ID: "o-1", Item: "widget", Quantity: 3, UnitPriceCents: 250, Customer: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.ID != "inv-o-1" || inv.OrderID != "o-1" || inv.TotalCents != 750 || inv.Quantity != 3 || inv.Customer != "ada" || inv.IssuedAt.IsZero() {
		t.Fatalf("invoice %+v", inv)
	}
	if _, err := a.ProcessPayment(ctx, activities.Order{Item: "widget", Quantity: 1}); err == nil {
		t.Fatal("payment without an order ID accepted")
	}

	p, err := a.IssueBuildingPermit(ctx, "app-7")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "permit-app-7" || p.ApplicationID != "app-7" || p.IssuedAt.IsZero() {
		t.Fatalf("permit %+v", p)
	}
	if _, err := a.IssueBuildingPermit(ctx, ""); err == nil {
		t.Fatal("permit without an application ID issued")
	}

	req := activities.BudgetRequest{ID: "b-1", AmountCents: 100}
	if d, err := a.ApproveBudget(ctx, req); err != nil || d != (activities.BudgetDecision{RequestID: "b-1", Approved: true}) {
		t.Fatalf("ApproveBudget = %+v, %v", d, err)
	}
	if d, err := a.NotifyDenial(ctx, req); err != nil || d != (activities.BudgetDecision{RequestID: "b-1", Approved: false}) {
		t.Fatalf("NotifyDenial = %+v, %v", d, err)
	}
}

type failingSMS struct{}

func (failingSMS) Send(context.Context, string, string) error { return errors.New("carrier down") }

func TestSendSmsChallenge(t *testing.T) {
	_, kv := inventory(t)
	ctx := context.Background()
	var logged strings.Builder
	sms := &activities.LogSMS{Log: zerolog.New(&logged)}
	a := newActivities(t, activities.Deps{Inventory: kv, SMS: sms})
	for i := range 20 {
		code, err := a.SendSmsChallenge(ctx, "+15550100")
		if err != nil {
			t.Fatal(err)
		}
		if code < 1000 || code > 9999 {
			t.Fatalf("code %d is not four digits", code)
		}
		last, ok := sms.LastCode("+15550100")
		if !ok || last != strconv.Itoa(code) {
			t.Fatalf("send %d: LastCode = %q, %v; want %d", i, last, ok, code)
		}
	}
	if !strings.Contains(logged.String(), `"phone":"+15550100"`) || !strings.Contains(logged.String(), `"code":"`) {
		t.Fatalf("LogSMS logged %s", logged.String())
	}
	if _, ok := sms.LastCode("+15550199"); ok {
		t.Fatal("LastCode of a phone never texted")
	}
	if _, err := a.SendSmsChallenge(ctx, ""); err == nil {
		t.Fatal("empty phone accepted")
	}
	failing := newActivities(t, activities.Deps{Inventory: kv, SMS: failingSMS{}})
	if _, err := failing.SendSmsChallenge(ctx, "+15550100"); err == nil || !strings.Contains(err.Error(), "carrier down") {
		t.Fatalf("SendSmsChallenge with a failing sender: %v", err)
	}
	// The default sender is a LogSMS on Deps.Log.
	var defaultLog strings.Builder
	def := newActivities(t, activities.Deps{Inventory: kv, Log: zerolog.New(&defaultLog)})
	if _, err := def.SendSmsChallenge(ctx, "+15550111"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(defaultLog.String(), `"code":"`) {
		t.Fatalf("default sender logged %s", defaultLog.String())
	}
}
