package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// env is a real embedded JetStream with a backend and a client; workers are started per test.
type env struct {
	t      *testing.T
	srv    *server.Server
	js     jetstream.JetStream
	b      *natsjs.Backend
	client *engine.Client
	// opts are the options of each worker's backend; shared makes workers share one inbox.
	opts   []natsjs.Option
	shared bool
	// backends are the workers' backends, in the order the workers started.
	backends []*natsjs.Backend
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	b, err := natsjs.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, js: js, b: b, client: engine.NewClient(b)}
}

// startWorker runs a worker until the test ends (or stop is called).
func (e *env) startWorker(reg *durable.Registry, opts ...engine.WorkerOption) (w *engine.Worker, stop func()) {
	e.t.Helper()
	w, cancel, wait := e.faultWorkerOn(nil, reg, opts...)
	return w, func() { cancel(); wait() }
}

func (e *env) wait(id string) *engine.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.client.WaitForCompletion(ctx, id)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v (last %+v)", id, err, s)
	}
	return s
}

// waitFor waits until the instance's state satisfies ok.
func (e *env) waitFor(id string, what string, ok func(*engine.Status) bool) *engine.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.client.WaitFor(ctx, id, ok)
	if err != nil {
		e.t.Fatalf("waiting for %s to be %s: %v (last %+v)", id, what, err, s)
	}
	return s
}

func waitingForEvent(name string) func(*engine.Status) bool {
	return func(s *engine.Status) bool {
		if s.Waiting == nil {
			return false
		}
		for _, n := range s.Waiting.Events {
			if n == name {
				return true
			}
		}
		return false
	}
}

func mustRegistry(t testing.TB, orchestrators map[string]durable.OrchestratorFunc, activities map[string]durable.ActivityFunc) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	for name, fn := range orchestrators {
		if err := reg.AddOrchestrator(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	for name, fn := range activities {
		if err := reg.AddActivity(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func approval(ctx *durable.OrchestrationContext) (any, error) {
	var ok bool
	if err := ctx.WaitForExternalEvent("Approval").Await(&ok); err != nil {
		return nil, err
	}
	var out string
	err := ctx.CallActivity("Decide", ok).Await(&out)
	return out, err
}

func decide(_ context.Context, ok bool) (string, error) {
	if ok {
		return "approved", nil
	}
	return "denied", nil
}

func approvalRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t,
		map[string]durable.OrchestratorFunc{"Approval": approval},
		map[string]durable.ActivityFunc{"Decide": durable.Activity(decide)})
}

func TestApprovalEndToEnd(t *testing.T) {
	for _, cache := range []int{10000, 0} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			e := newEnv(t)
			e.startWorker(approvalRegistry(t), engine.WithCacheSize(cache))
			ctx := context.Background()
			id, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("order 42/α"))
			if err != nil {
				t.Fatal(err)
			}
			// Raised right after scheduling: buffered until the orchestrator waits.
			if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
				t.Fatal(err)
			}
			s := e.wait(id)
			if s.Status != history.StatusCompleted || string(s.Output) != `"approved"` {
				t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
			}
			events, err := e.client.GetHistory(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[history.EventType]int{}
			for _, ev := range events {
				counts[ev.Type]++
			}
			if counts[history.EventRaised] != 1 || counts[history.TaskScheduled] != 1 || counts[history.TaskCompleted] != 1 || counts[history.ExecutionCompleted] != 1 {
				t.Fatalf("history counts %v", counts)
			}
			// Raising to an ended instance says so.
			if err := e.client.RaiseEvent(ctx, id, "Approval", true); !errors.Is(err, engine.ErrInstanceEnded) {
				t.Fatalf("raise after completion: %v, want ErrInstanceEnded", err)
			}
		})
	}
}

func TestRaiseUnknownInstance(t *testing.T) {
	e := newEnv(t)
	err := e.client.RaiseEvent(context.Background(), "nope", "Approval", true)
	if !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Fatalf("err = %v, want ErrInstanceNotFound", err)
	}
}

func TestEventsForMissingInstanceAreDiscarded(t *testing.T) {
	e := newEnv(t)
	w, _ := e.startWorker(approvalRegistry(t))
	if _, err := e.js.Publish(context.Background(), "jetflow.inst.ghost.event.Approval", []byte("true")); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if w.Stats().Discarded != 1 {
			return fmt.Errorf("discarded %d", w.Stats().Discarded)
		}
		return nil
	})
}

func TestStartExistingInstanceFails(t *testing.T) {
	e := newEnv(t)
	e.startWorker(approvalRegistry(t))
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("dup")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("dup")); !errors.Is(err, engine.ErrInstanceExists) {
		t.Fatalf("second start: %v, want ErrInstanceExists", err)
	}
	e.waitFor("dup", "waiting", waitingForEvent("Approval"))
	if err := e.client.RaiseEvent(ctx, "dup", "Approval", false); err != nil {
		t.Fatal(err)
	}
	if s := e.wait("dup"); string(s.Output) != `"denied"` {
		t.Fatalf("output %s", s.Output)
	}
	// An ended instance can be started again: a new generation with a fresh history.
	if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("dup")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("dup", "waiting again", waitingForEvent("Approval"))
	e.client.RaiseEvent(ctx, "dup", "Approval", true)
	s := e.wait("dup")
	if string(s.Output) != `"approved"` || s.Generation != 2 {
		t.Fatalf("restart: output %s generation %d", s.Output, s.Generation)
	}
	events, _ := e.client.GetHistory(ctx, "dup")
	if events[1].Type != history.ExecutionStarted || events[1].Generation != 2 {
		t.Fatalf("history of restart does not start fresh: %+v", events[:2])
	}
}

func TestTimerAndTimeout(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Timeout": func(ctx *durable.OrchestrationContext) (any, error) {
			err := ctx.WaitForExternalEvent("Never", durable.WithTimeout(300*time.Millisecond)).Await(nil)
			if !errors.Is(err, durable.ErrTimeout) {
				return nil, fmt.Errorf("want timeout, got %v", err)
			}
			start := ctx.CurrentTime()
			if err := ctx.CreateTimer(200 * time.Millisecond).Await(nil); err != nil {
				return nil, err
			}
			return ctx.CurrentTime().Sub(start) >= 200*time.Millisecond, nil
		},
	}, nil)
	e.startWorker(reg)
	id, err := e.client.ScheduleNew(context.Background(), "Timeout")
	if err != nil {
		t.Fatal(err)
	}
	s := e.wait(id)
	if s.Status != history.StatusCompleted || string(s.Output) != "true" {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
}

func TestTerminateSuspendResumePurge(t *testing.T) {
	e := newEnv(t)
	e.startWorker(approvalRegistry(t))
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Approval")
	e.waitFor(id, "waiting", waitingForEvent("Approval"))
	if err := e.client.Suspend(ctx, id, "hold"); err != nil {
		t.Fatal(err)
	}
	e.waitFor(id, "suspended", func(s *engine.Status) bool { return s.Status == history.StatusSuspended })
	e.client.RaiseEvent(ctx, id, "Approval", true)
	if err := e.client.Resume(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); string(s.Output) != `"approved"` {
		t.Fatalf("output %s", s.Output)
	}
	if err := e.client.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetStatus(ctx, id); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Fatalf("after purge: %v", err)
	}

	id2, _ := e.client.ScheduleNew(ctx, "Approval")
	if err := e.client.Purge(ctx, id2); !errors.Is(err, engine.ErrInstanceNotEnded) {
		t.Fatalf("purge running: %v", err)
	}
	if err := e.client.Terminate(ctx, id2, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	s := e.wait(id2)
	if s.Status != history.StatusTerminated || string(s.Output) != `"no longer needed"` {
		t.Fatalf("status %s output %s", s.Status, s.Output)
	}
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	w, _ := e.startWorker(approvalRegistry(t))
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("m1"))
	e.waitFor(id, "waiting", waitingForEvent("Approval"))
	for _, m := range []struct{ subject, data string }{
		{"jetflow.inst.m1.event.Approval", "{not json"},
		{"jetflow.inst.m1.result", "[]"},
		{"jetflow.inst.m1.bogus", "x"},
		{"jetflow.inst.bad=ZZ.event.Approval", "true"},
	} {
		if _, err := e.js.Publish(ctx, m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); string(s.Output) != `"approved"` {
		t.Fatalf("output %s", s.Output)
	}
	dlq, err := e.js.Stream(ctx, "JETFLOW_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	// Three are dead-lettered by the engine; the unusable subject by the backend, before it
	// reaches the engine.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := dlq.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 4 || w.Stats().DeadLettered != 3 {
			return fmt.Errorf("%d dead letters, %d by the engine; want 4, 3", info.State.Msgs, w.Stats().DeadLettered)
		}
		return nil
	})
	raw, err := dlq.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var rec backend.DeadLetter
	if err := json.Unmarshal(raw.Data, &rec); err != nil || rec.Reason == "" {
		t.Fatalf("dead-letter record %s: %v", raw.Data, err)
	}
}

// committedTurns reads the whole history stream and returns, per encoded instance ID, the turn
// numbers of its turn records (pending records left out) in the order they are stored.
func committedTurns(ctx context.Context, js jetstream.JetStream, names natsjs.Names) (map[string][]uint64, error) {
	stream, err := js.Stream(ctx, names.HistoryStream())
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(names.HistorySubjects(), ">")
	turns := map[string][]uint64{}
	for left := info.State.Msgs; left > 0; {
		batch, err := cons.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			var rec struct {
				Pending bool `json:"pending"`
				State   struct {
					Turn uint64 `json:"turn"`
				} `json:"state"`
			}
			if err := json.Unmarshal(msg.Data(), &rec); err != nil {
				return nil, fmt.Errorf("record on %s: %w", msg.Subject(), err)
			}
			if !rec.Pending {
				tok := strings.TrimPrefix(msg.Subject(), prefix)
				turns[tok] = append(turns[tok], rec.State.Turn)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("history stream: %d records not read", left)
		}
		left -= uint64(got)
	}
	return turns, nil
}
