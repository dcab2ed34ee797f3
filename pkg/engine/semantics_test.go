package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// collect waits for n events called name, one at a time, and returns their data in order.
func collect(name string) durable.OrchestratorFunc {
	return func(ctx *durable.OrchestrationContext) (any, error) {
		var n int
		if err := ctx.GetInput(&n); err != nil {
			return nil, err
		}
		got := make([]int, 0, n)
		for range n {
			var v int
			if err := ctx.WaitForExternalEvent(name).Await(&v); err != nil {
				return nil, err
			}
			got = append(got, v)
		}
		return got, nil
	}
}

func TestTenThousandEventHistory(t *testing.T) {
	const n = 10000
	e := newEnv(t)
	e.startWorker(mustRegistry(t, map[string]durable.OrchestratorFunc{"Collect": collect("Tick")}, nil))
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInput(n))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := e.js.PublishAsync("jetflow.inst."+id+".event.Tick", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 { // stay inside the connection's async publish window
			<-e.js.PublishAsyncComplete()
		}
	}
	<-e.js.PublishAsyncComplete()
	s := e.wait(id)
	var got []int
	if err := json.Unmarshal(s.Output, &got); err != nil || len(got) != n {
		t.Fatalf("output has %d values (%v), want %d", len(got), err, n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d has value %d: events applied out of order", i, v)
		}
	}
	events, err := e.client.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	raised := 0
	for _, ev := range events {
		if ev.Type == history.EventRaised {
			raised++
		}
	}
	if raised != n {
		t.Fatalf("history has %d EventRaised, want %d", raised, n)
	}
	// Batching: far fewer turns than events.
	if s.Version > n/10 {
		t.Fatalf("%d turns for %d events: messages were not batched", s.Version, n)
	}
}

func TestEventIDDeduplicatesBeyondJetStreamWindow(t *testing.T) {
	e := newEnv(t)
	e.startWorker(mustRegistry(t, map[string]durable.OrchestratorFunc{"Collect": collect("E")}, nil))
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Collect", engine.WithInput(2))
	// Same event ID through two paths: the Go client, and a raw publish carrying the
	// Jetflow-Event-Id header (which JetStream's own dedup does not see).
	if err := e.client.RaiseEvent(ctx, id, "E", 1, engine.WithEventID("pay-1")); err != nil {
		t.Fatal(err)
	}
	msg := natsMsg("jetflow.inst."+id+".event.E", "1")
	msg.Header.Set("Jetflow-Event-Id", "pay-1")
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if err := e.client.RaiseEvent(ctx, id, "E", 2, engine.WithEventID("pay-2")); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); string(s.Output) != "[1,2]" {
		t.Fatalf("output %s, want [1,2]", s.Output)
	}
}

func TestSubOrchestration(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Parent": func(ctx *durable.OrchestrationContext) (any, error) {
			var a, b string
			t1 := ctx.CallSubOrchestrator("Child", "x", durable.WithInstanceID("child-x"))
			t2 := ctx.CallSubOrchestrator("Child", "y")
			if err := t1.Await(&a); err != nil {
				return nil, err
			}
			if err := t2.Await(&b); err != nil {
				return nil, err
			}
			err := ctx.CallSubOrchestrator("Failing", nil).Await(nil)
			return []string{a, b, fmt.Sprint(err != nil)}, nil
		},
		"Child": func(ctx *durable.OrchestrationContext) (any, error) {
			var in string
			ctx.GetInput(&in)
			var out string
			err := ctx.CallActivity("Upper", in).Await(&out)
			return out, err
		},
		"Failing": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, fmt.Errorf("child refuses")
		},
	}, map[string]durable.ActivityFunc{
		"Upper": durable.Activity(func(_ context.Context, s string) (string, error) { return s + s, nil }),
	})
	e.startWorker(reg)
	id, _ := e.client.ScheduleNew(context.Background(), "Parent")
	s := e.wait(id)
	if string(s.Output) != `["xx","yy","true"]` {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
	child, err := e.client.GetStatus(context.Background(), "child-x")
	if err != nil || child.Status != history.StatusCompleted || child.Parent == nil || child.Parent.InstanceID != id {
		t.Fatalf("child status %+v, err %v", child, err)
	}
}

func TestContinueAsNewKeepsEvents(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		// Counts Tick events, one generation per event, until it has seen 20.
		"Counter": func(ctx *durable.OrchestrationContext) (any, error) {
			var n int
			ctx.GetInput(&n)
			if n == 20 {
				return n, nil
			}
			if err := ctx.WaitForExternalEvent("Tick").Await(nil); err != nil {
				return nil, err
			}
			return nil, ctx.ContinueAsNew(n + 1)
		},
	}, nil)
	e.startWorker(reg)
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Counter", engine.WithInput(0))
	// All raised at once: the events that arrive while a generation ends are carried over.
	for range 20 {
		if err := e.client.RaiseEvent(ctx, id, "Tick", nil); err != nil {
			t.Fatal(err)
		}
	}
	s := e.wait(id)
	if s.Status != history.StatusCompleted || string(s.Output) != "20" {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
	events, _ := e.client.GetHistory(ctx, id)
	if events[1].Type != history.ExecutionStarted || string(events[1].Input) != "20" {
		t.Fatalf("history does not start with the last generation: %+v", events[:2])
	}
}

func TestWhenAnyLoserDoesNotConsumeEvent(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Race": func(ctx *durable.OrchestrationContext) (any, error) {
			var winner int
			if err := ctx.WhenAny(ctx.WaitForExternalEvent("A"), ctx.WaitForExternalEvent("B")).Await(&winner); err != nil {
				return nil, err
			}
			// The A wait lost; the next A must reach this fresh wait.
			var a string
			err := ctx.WaitForExternalEvent("A").Await(&a)
			return []any{winner, a}, err
		},
	}, nil)
	e.startWorker(reg)
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Race")
	e.waitFor(id, "waiting for B", waitingForEvent("B"))
	e.client.RaiseEvent(ctx, id, "B", "b")
	e.waitFor(id, "waiting for A only", func(s *engine.Status) bool {
		return s.Waiting != nil && len(s.Waiting.Events) == 1 && s.Waiting.Events[0] == "A"
	})
	e.client.RaiseEvent(ctx, id, "A", "first-a")
	if s := e.wait(id); string(s.Output) != `[1,"first-a"]` {
		t.Fatalf("output %s", s.Output)
	}
}

func TestFanInIsBatched(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"FanOut": func(ctx *durable.OrchestrationContext) (any, error) {
			tasks := make([]*durable.Task, 100)
			for i := range tasks {
				tasks[i] = ctx.CallActivity("Square", i)
			}
			if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
				return nil, err
			}
			sum := 0
			for _, t := range tasks {
				var v int
				t.Await(&v)
				sum += v
			}
			return sum, nil
		},
	}, map[string]durable.ActivityFunc{
		"Square": durable.Activity(func(_ context.Context, i int) (int, error) { return i * i, nil }),
	})
	e.startWorker(reg)
	id, _ := e.client.ScheduleNew(context.Background(), "FanOut")
	s := e.wait(id)
	if string(s.Output) != "328350" {
		t.Fatalf("output %s", s.Output)
	}
	if s.Version >= 100 {
		t.Fatalf("%d turns for 100 results: results were not batched", s.Version)
	}
}

func TestUnknownOrchestratorFailsInstance(t *testing.T) {
	e := newEnv(t)
	e.startWorker(approvalRegistry(t))
	id, err := e.client.ScheduleNew(context.Background(), "NoSuchThing")
	if err != nil {
		t.Fatal(err)
	}
	s := e.wait(id)
	if s.Status != history.StatusFailed || s.Failure == nil {
		t.Fatalf("status %s failure %+v", s.Status, s.Failure)
	}
}

func natsMsg(subject, data string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(data)
	return m
}

func TestInvalidInstanceIDsAndEventNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, id := range map[string]string{
		"empty":         "",
		"257 chars":     strings.Repeat("x", 257),
		"control":       "a\x01b",
		"invalid utf-8": "\xff",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(id)); id != "" && !errors.Is(err, engine.ErrInvalidName) {
				t.Fatalf("ScheduleNew: %v, want ErrInvalidName", err)
			}
			if err := e.client.RaiseEvent(ctx, id, "E", 1); !errors.Is(err, engine.ErrInvalidName) {
				t.Fatalf("RaiseEvent: %v, want ErrInvalidName", err)
			}
		})
	}
	// Odd but valid IDs work, and 256 characters is the limit.
	e.startWorker(approvalRegistry(t))
	for _, id := range []string{"with space", "dots.and*stars>", "üñí©ødé", "=3D", strings.Repeat("é", 256)} {
		if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(id)); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		e.waitFor(id, "waiting", waitingForEvent("Approval"))
		if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
			t.Fatal(err)
		}
		if s := e.wait(id); string(s.Output) != `"approved"` || s.ID != id {
			t.Fatalf("%q: id %q output %s", id, s.ID, s.Output)
		}
	}
	// An event name that cannot be used.
	if err := e.client.RaiseEvent(ctx, "with space", "bad\nname", 1); !errors.Is(err, engine.ErrInvalidName) {
		t.Fatalf("bad event name: %v", err)
	}
}

func TestRetryPolicyEndToEnd(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	calls := 0
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Retry": func(ctx *durable.OrchestrationContext) (any, error) {
			ctx.SetCustomStatus(map[string]string{"stage": "calling"})
			var out string
			err := ctx.CallActivity("Flaky", nil, durable.WithRetry(durable.RetryPolicy{
				MaxAttempts: 3, FirstRetryInterval: 50 * time.Millisecond, BackoffCoefficient: 2,
			})).Await(&out)
			ctx.SetCustomStatus(map[string]string{"stage": "done"})
			return out, err
		},
	}, map[string]durable.ActivityFunc{
		"Flaky": durable.Activity(func(context.Context, any) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls < 3 {
				return "", fmt.Errorf("attempt %d failed", calls)
			}
			return fmt.Sprintf("ok after %d", calls), nil
		}),
	})
	e.startWorker(reg)
	id, _ := e.client.ScheduleNew(context.Background(), "Retry")
	s := e.wait(id)
	if string(s.Output) != `"ok after 3"` || string(s.CustomStatus) != `{"stage":"done"}` {
		t.Fatalf("output %s custom status %s failure %+v", s.Output, s.CustomStatus, s.Failure)
	}
}

func TestEventForEndedInstanceIsDiscarded(t *testing.T) {
	e := newEnv(t)
	w, _ := e.startWorker(approvalRegistry(t))
	ctx := context.Background()
	id, _ := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("ended"))
	e.client.RaiseEvent(ctx, id, "Approval", true)
	e.wait(id)
	before := w.Stats().Discarded
	// A raw publish bypasses the client's check; the worker discards it and counts it.
	if _, err := e.js.Publish(ctx, "jetflow.inst.ended.event.Approval", []byte("false")); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if w.Stats().Discarded != before+1 {
			return fmt.Errorf("discarded %d, want %d", w.Stats().Discarded, before+1)
		}
		return nil
	})
	if s, _ := e.client.GetStatus(ctx, id); string(s.Output) != `"approved"` {
		t.Fatalf("ended instance changed: %s", s.Output)
	}
}

// A turn that schedules thousands of tasks publishes them in chunks, never stalling the
// connection's async window.
func TestLargeFanOutInOneTurn(t *testing.T) {
	const n = 5000
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Wide": func(ctx *durable.OrchestrationContext) (any, error) {
			tasks := make([]*durable.Task, n)
			for i := range tasks {
				tasks[i] = ctx.CallActivity("One", nil)
			}
			if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
				return nil, err
			}
			return len(tasks), nil
		},
	}, map[string]durable.ActivityFunc{
		"One": durable.Activity(func(context.Context, any) (int, error) { return 1, nil }),
	})
	e.startWorker(reg)
	id, _ := e.client.ScheduleNew(context.Background(), "Wide")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.client.WaitForCompletion(ctx, id)
	if err != nil || string(s.Output) != fmt.Sprint(n) {
		t.Fatalf("status %+v, err %v", s, err)
	}
}
