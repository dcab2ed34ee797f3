package raiser_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

const waitTimeout = examplestack.WaitTimeout

// The queues of `jetflow dev`.
var devQueues = examplestack.DevRaiserConfig()

// env is an example stack: an embedded JetStream with the natsjs backend, a worker running the
// example orchestrators and activities, and a client.
type env struct {
	t      *testing.T
	st     *examplestack.Stack
	nc     *nats.Conn
	js     jetstream.JetStream
	client *engine.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := examplestack.Start(t)
	return &env{t: t, st: st, nc: st.NC, js: st.JS, client: st.Client}
}

// startRaiser starts a raiser with cfg and opts; its queues are set up when it returns.
func (e *env) startRaiser(cfg raiser.Config, opts ...raiser.Option) *raiser.Raiser {
	e.t.Helper()
	return e.st.StartRaiser(e.t, cfg, opts...)
}

// start starts orchestrator name with input and waits until it waits for event.
func (e *env) start(name, id string, input any, event string) {
	e.t.Helper()
	examplestack.StartWaiting(e.t, e.client, name, id, input, event)
}

// publish publishes body to subject with headers (key, value pairs) and returns the ack.
func (e *env) publish(subject, body string, headers ...string) *jetstream.PubAck {
	e.t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	for i := 0; i+1 < len(headers); i += 2 {
		m.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, m)
	if err != nil {
		e.t.Fatalf("publishing to %s: %v", subject, err)
	}
	return ack
}

// waitQueue waits until a raiser running without Setup has created the consumer of a queue.
func (e *env) waitQueue(stream, consumer string) {
	e.t.Helper()
	natstest.CheckFor(e.t, waitTimeout, 10*time.Millisecond, func() error {
		_, err := e.js.Consumer(context.Background(), stream, consumer)
		return err
	})
}

// wait waits for id to end and checks that it completed.
func (e *env) wait(id string) *engine.Status {
	e.t.Helper()
	s := examplestack.WaitEnded(e.t, e.client, id)
	if s.Status != history.StatusCompleted {
		e.t.Fatalf("%s ended %s (%+v), want Completed", id, s.Status, s.Failure)
	}
	return s
}

// raised returns the EventRaised events of id's history.
func (e *env) raised(id string) []history.Event {
	e.t.Helper()
	h, err := e.client.GetHistory(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []history.Event
	for _, ev := range h {
		if ev.Type == history.EventRaised {
			out = append(out, ev)
		}
	}
	return out
}

// deadLetters subscribes to the raiser's dead letters; next returns the next one.
func (e *env) deadLetters() (next func() backend.DeadLetter) {
	e.t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(raiser.DeadLetterSubject, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return func() backend.DeadLetter {
		e.t.Helper()
		select {
		case m := <-ch:
			var rec backend.DeadLetter
			if err := json.Unmarshal(m.Data, &rec); err != nil {
				e.t.Fatalf("dead letter %q: %v", m.Data, err)
			}
			return rec
		case <-time.After(waitTimeout):
			e.t.Fatal("no dead letter")
		}
		return backend.DeadLetter{}
	}
}

func budget() activities.BudgetRequest {
	return activities.BudgetRequest{AmountCents: 500000, Requester: "ana"}
}

func TestApprovalQueue(t *testing.T) {
	e := newEnv(t)
	r := e.startRaiser(devQueues)
	e.start("BudgetApproval", "budget-1", budget(), orchestration.EventApproval)

	ack := e.publish("approval-queue", "budget-1")
	s := e.wait("budget-1")
	if got, want := string(s.Output), `"approved"`; got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	evs := e.raised("budget-1")
	if len(evs) != 1 {
		t.Fatalf("%d EventRaised, want 1", len(evs))
	}
	if got, want := evs[0].EventID, fmt.Sprintf("%s:%d", raiser.DefaultStream, ack.Sequence); got != want {
		t.Errorf("event ID %q, want %q", got, want)
	}
	if got, want := string(evs[0].Input), "true"; got != want {
		t.Errorf("event data %s, want %s", got, want)
	}
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if got := r.Stats(); got != (raiser.Stats{Raised: 1}) {
			return fmt.Errorf("stats %+v, want Raised 1", got)
		}
		return nil
	})
	// The work-queue stream drops acked messages.
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		st, err := e.js.Stream(context.Background(), raiser.DefaultStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("queue stream holds %d messages after the ack", info.State.Msgs)
		}
		return nil
	})
}

func TestNotificationQueue(t *testing.T) {
	e := newEnv(t)
	e.startRaiser(devQueues)
	e.start("Select", "select-1", nil, orchestration.Event2)

	e.publish("event-queue", `{"instanceId": "select-1", "eventName": "Event2", "eventData": true}`, "Nats-Msg-Id", "notif-1")
	s := e.wait("select-1")
	if got, want := string(s.Output), `{"winner":"Event2","value":true}`; got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	evs := e.raised("select-1")
	if len(evs) != 1 || evs[0].EventID != "notif-1" {
		t.Errorf("raised %+v, want one event with ID notif-1", evs)
	}
}

func TestPlaceOrderProceed(t *testing.T) {
	e := newEnv(t)
	e.startRaiser(devQueues)
	// No stock: the order waits for Proceed; restock and notify it.
	order := activities.Order{Item: "gadget", Quantity: 1, UnitPriceCents: 100}
	e.start("PlaceOrder", "order-1", order, orchestration.EventProceed)
	if err := activities.Restock(context.Background(), e.st.Inventory, "gadget", 5); err != nil {
		t.Fatal(err)
	}
	e.publish("event-queue", `{"instanceId": "order-1", "eventName": "Proceed"}`)
	e.wait("order-1")
}

func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	next := e.deadLetters()
	r := e.startRaiser(devQueues)
	e.start("Select", "select-1", nil, orchestration.Event1)
	e.start("BudgetApproval", "budget-1", budget(), orchestration.EventApproval)
	e.start("BudgetApproval", "ended-1", budget(), orchestration.EventApproval)
	ctx := context.Background()
	if err := e.client.Terminate(ctx, "ended-1", "test"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		subject, body, reason string
	}{
		{"event-queue", "", "body is empty"},
		{"event-queue", "\xff\xfe", "not valid UTF-8"},
		{"event-queue", "approve it", "not a notification"},
		{"event-queue", `{"eventName": "Event1"}`, "no instanceId"},
		{"event-queue", `{"instanceId": "select-1"}`, "no eventName"},
		{"event-queue", `{"instanceId": "select-1", "eventName": "Event\u0001"}`, "control character"},
		{"event-queue", `{"instanceId": "nope", "eventName": "Event1", "eventData": 1}`, "not found"},
		{"approval-queue", "  ", "body is empty"},
		{"approval-queue", "no-such-instance", "not found"},
		{"approval-queue", "ended-1", "ended"},
	}
	for _, c := range cases {
		ack := e.publish(c.subject, c.body)
		rec := next()
		if !strings.Contains(rec.Reason, c.reason) {
			t.Errorf("%s %q: reason %q, want it to mention %q", c.subject, c.body, rec.Reason, c.reason)
		}
		if rec.Queue != c.subject || rec.Subject != c.subject || rec.Seq != ack.Sequence || rec.Source != "raiser" {
			t.Errorf("%s %q: record %+v, want queue and subject %s, seq %d", c.subject, c.body, rec, c.subject, ack.Sequence)
		}
		if utf := rec.Data; utf != c.body && string(rec.DataB64) != c.body {
			t.Errorf("%s %q: record data %q / %q", c.subject, c.body, rec.Data, rec.DataB64)
		}
	}

	// The bad messages do not block valid ones.
	e.publish("event-queue", `{"instanceId": "select-1", "eventName": "Event1", "eventData": 2.5}`)
	e.publish("approval-queue", "budget-1")
	if got := string(e.wait("select-1").Output); got != `{"winner":"Event1","value":2.5}` {
		t.Errorf("select-1 output %s", got)
	}
	e.wait("budget-1")
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if got, want := r.Stats(), (raiser.Stats{Raised: 2, DeadLettered: uint64(len(cases))}); got != want {
			return fmt.Errorf("stats %+v, want %+v", got, want)
		}
		return nil
	})

	// The JETFLOW_DLQ stream keeps them.
	st, err := e.js.Stream(ctx, "JETFLOW_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(raiser.DeadLetterSubject))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects[raiser.DeadLetterSubject]; got != uint64(len(cases)) {
		t.Errorf("JETFLOW_DLQ holds %d raiser dead letters, want %d", got, len(cases))
	}
}

func TestDropUnknown(t *testing.T) {
	e := newEnv(t)
	next := e.deadLetters()
	cfg := devQueues
	cfg.OnUnknown = raiser.OnUnknownDrop
	r := e.startRaiser(cfg)
	e.start("BudgetApproval", "budget-1", budget(), orchestration.EventApproval)

	e.publish("approval-queue", "no-such-instance")
	e.publish("event-queue", `{"instanceId": "gone", "eventName": "Approval"}`)
	e.publish("event-queue", `{"instanceId": "budget-1"}`) // malformed: still dead-lettered
	if rec := next(); !strings.Contains(rec.Reason, "no eventName") {
		t.Errorf("dead letter %+v, want the malformed message", rec)
	}
	e.publish("approval-queue", "budget-1")
	e.wait("budget-1")
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if got, want := r.Stats(), (raiser.Stats{Raised: 1, Dropped: 2, DeadLettered: 1}); got != want {
			return fmt.Errorf("stats %+v, want %+v", got, want)
		}
		return nil
	})
}

func TestDuplicateEventID(t *testing.T) {
	e := newEnv(t)
	r := e.startRaiser(devQueues)
	e.start("NewBuildingPermit", "permit-1", "app-1", orchestration.EventCityPlanningApproval)

	notify := func(event string) string {
		return fmt.Sprintf(`{"instanceId": "permit-1", "eventName": %q}`, event)
	}
	// The same Nats-Msg-Id: the queue stream itself drops the second copy.
	e.publish("event-queue", notify(orchestration.EventCityPlanningApproval), "Nats-Msg-Id", "city-1")
	if ack := e.publish("event-queue", notify(orchestration.EventCityPlanningApproval), "Nats-Msg-Id", "city-1"); !ack.Duplicate {
		t.Error("the queue stream took a second message with the same Nats-Msg-Id")
	}
	// The same Jetflow-Event-Id: two messages, two raises, one event.
	e.publish("event-queue", notify(orchestration.EventFireDeptApproval), raiser.HeaderEventID, "fire-1")
	e.publish("event-queue", notify(orchestration.EventFireDeptApproval), raiser.HeaderEventID, "fire-1")
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if got := r.Stats().Raised; got != 3 {
			return fmt.Errorf("raised %d, want 3", got)
		}
		return nil
	})
	e.publish("event-queue", notify(orchestration.EventBuildingDeptApproval), "Nats-Msg-Id", "building-1")
	e.wait("permit-1")

	count := map[string]int{}
	for _, ev := range e.raised("permit-1") {
		count[ev.Name+"/"+ev.EventID]++
	}
	want := map[string]int{"CityPlanningApproval/city-1": 1, "FireDeptApproval/fire-1": 1, "BuildingDeptApproval/building-1": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("EventRaised by name/ID %v, want %v", count, want)
	}
}

// A message with both headers gets its Jetflow-Event-Id as event ID (backend.EventID): another
// message with that Jetflow-Event-Id and another Nats-Msg-Id is raised again but applied once.
func TestEventIDHeaderWinsOverMsgID(t *testing.T) {
	e := newEnv(t)
	r := e.startRaiser(devQueues)
	e.start("NewBuildingPermit", "permit-2", "app-2", orchestration.EventCityPlanningApproval)

	notify := func(event string) string {
		return fmt.Sprintf(`{"instanceId": "permit-2", "eventName": %q}`, event)
	}
	city := notify(orchestration.EventCityPlanningApproval)
	e.publish("event-queue", city, backend.HeaderMsgID, "msg-1", backend.HeaderEventID, "city-1")
	if ack := e.publish("event-queue", city, backend.HeaderMsgID, "msg-2", backend.HeaderEventID, "city-1"); ack.Duplicate {
		t.Fatal("the queue stream dropped a message with another Nats-Msg-Id")
	}
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if got := r.Stats().Raised; got != 2 {
			return fmt.Errorf("raised %d, want 2", got)
		}
		return nil
	})
	e.publish("event-queue", notify(orchestration.EventFireDeptApproval))
	e.publish("event-queue", notify(orchestration.EventBuildingDeptApproval))
	e.wait("permit-2")

	var ids []string
	for _, ev := range e.raised("permit-2") {
		if ev.Name == orchestration.EventCityPlanningApproval {
			ids = append(ids, ev.EventID)
		}
	}
	if fmt.Sprint(ids) != "[city-1]" {
		t.Errorf("CityPlanningApproval events with IDs %q, want one with ID city-1", ids)
	}
}

func TestRaisersShareQueue(t *testing.T) {
	e := newEnv(t)
	cfg := raiser.Config{Queues: devQueues.Queues[:1]}
	r1 := e.startRaiser(cfg, raiser.WithBatch(1))
	r2 := e.startRaiser(cfg, raiser.WithBatch(1))
	// Both raisers are pulling before the messages arrive.
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		c, err := e.js.Consumer(context.Background(), raiser.DefaultStream, "raiser-approval-queue")
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumWaiting < 2 {
			return fmt.Errorf("%d pull requests waiting, want 2", info.NumWaiting)
		}
		return nil
	})

	const n = 12
	for i := range n {
		e.start("BudgetApproval", fmt.Sprintf("budget-%d", i), budget(), orchestration.EventApproval)
	}
	for i := range n {
		e.publish("approval-queue", fmt.Sprintf("budget-%d", i))
	}
	for i := range n {
		id := fmt.Sprintf("budget-%d", i)
		e.wait(id)
		if evs := e.raised(id); len(evs) != 1 {
			t.Errorf("%s: %d EventRaised, want 1", id, len(evs))
		}
	}
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		s1, s2 := r1.Stats(), r2.Stats()
		if s1.Raised+s2.Raised != n {
			return fmt.Errorf("raised %d + %d, want %d in all", s1.Raised, s2.Raised, n)
		}
		return nil
	})
	s1, s2 := r1.Stats(), r2.Stats()
	t.Logf("raiser 1 raised %d, raiser 2 raised %d", s1.Raised, s2.Raised)
	if s1.Raised == 0 || s2.Raised == 0 {
		t.Errorf("one raiser did all the work: %d and %d", s1.Raised, s2.Raised)
	}
}

// TestStreamSubjectsMerged runs raisers without Setup, as `jetflow raiser` does: Run creates the
// stream and the consumers, and a second raiser adds its queue to the stream's subjects.
func TestStreamSubjectsMerged(t *testing.T) {
	e := newEnv(t)
	for _, queues := range [][]raiser.Queue{{{Name: "a-queue"}}, {{Name: "b-queue"}, {Name: "a-queue"}}} {
		r, err := raiser.New(e.js, e.client, raiser.Config{Queues: queues})
		if err != nil {
			t.Fatal(err)
		}
		examplestack.RunInBackground(t, "raiser", r.Run)
		e.waitQueue(raiser.DefaultStream, "raiser-"+queues[0].Name)
	}
	st, err := e.js.Stream(context.Background(), raiser.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if got := strings.Join(info.Config.Subjects, ","); got != "a-queue,b-queue" {
		t.Errorf("subjects %s, want a-queue,b-queue", got)
	}
	if info.Config.Retention != jetstream.WorkQueuePolicy || info.Config.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v, want a work queue on file storage", info.Config)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  raiser.Config
		want string
	}{
		{"no queues", raiser.Config{}, "no queues"},
		{"no name", raiser.Config{Queues: []raiser.Queue{{Event: "E"}}}, "not a NATS subject"},
		{"space in name", raiser.Config{Queues: []raiser.Queue{{Name: "a b"}}}, "not a NATS subject"},
		{"twice", raiser.Config{Queues: []raiser.Queue{{Name: "q"}, {Name: "q"}}}, "twice"},
		{"data without event", raiser.Config{Queues: []raiser.Queue{{Name: "q", Data: json.RawMessage("1")}}}, "without an event"},
		{"bad data", raiser.Config{Queues: []raiser.Queue{{Name: "q", Event: "E", Data: json.RawMessage("yes")}}}, "not valid JSON"},
		{"bad onUnknown", raiser.Config{OnUnknown: "ignore", Queues: []raiser.Queue{{Name: "q"}}}, "onUnknown"},
		{"bad stream", raiser.Config{Queues: []raiser.Queue{{Name: "q", Stream: "A.B"}}}, "stream name"},
		{"same consumer", raiser.Config{Queues: []raiser.Queue{{Name: "q", Consumer: "c"}, {Name: "r", Consumer: "c"}}}, "used by another queue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if !errors.Is(err, raiser.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want ErrInvalidConfig mentioning %q", err, c.want)
			}
		})
	}
	ok := raiser.Config{Queues: []raiser.Queue{{Name: "orders.new", Event: "E"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// TestTransientErrorNaks: when the dead letter cannot be published (no stream captures the
// subject), the message is nak'ed for a retry, not acked and lost.
func TestTransientErrorNaks(t *testing.T) {
	e := newEnv(t)
	r := e.startRaiser(devQueues, raiser.WithDeadLetterSubject("nowhere.raiser"), raiser.WithNakDelay(20*time.Millisecond))
	e.publish("event-queue", "not json")
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		if s := r.Stats(); s.Retried < 2 || s.DeadLettered != 0 {
			return fmt.Errorf("stats %+v, want the message retried twice and not dead-lettered", s)
		}
		return nil
	})
	st, err := e.js.Stream(context.Background(), raiser.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("queue stream holds %d messages, want the nak'ed one", info.State.Msgs)
	}
}
