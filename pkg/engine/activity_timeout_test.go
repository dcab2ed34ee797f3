package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// callOne is an orchestrator that calls activity "Work" with opts and outputs its result; its
// failure fails the instance with the activity's failure type in the message.
func callOne(opts ...durable.CallOption) durable.OrchestratorFunc {
	return func(ctx *durable.OrchestrationContext) (any, error) {
		var out any
		err := ctx.CallActivity("Work", nil, opts...).Await(&out)
		if kind, ok := durable.ActivityTimedOut(err); ok {
			return nil, fmt.Errorf("timed out (%s): %w", kind, err)
		}
		return out, err
	}
}

// runOne starts a worker with orchestrator "Call" (callOne(opts...)) and activity "Work" (fn),
// runs one instance and returns its final status and history.
func runOne(t *testing.T, fn durable.ActivityFunc, wopts []engine.WorkerOption, opts ...durable.CallOption) (*engine.Status, []history.Event) {
	t.Helper()
	e := newEnv(t)
	e.startWorker(mustRegistry(t,
		map[string]durable.OrchestratorFunc{"Call": callOne(opts...)},
		map[string]durable.ActivityFunc{"Work": fn}), wopts...)
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Call")
	if err != nil {
		t.Fatal(err)
	}
	s := e.wait(id)
	events, err := e.client.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return s, events
}

// taskFailures returns the failures of the history's TaskFailed events, in order.
func taskFailures(events []history.Event) []*history.Failure {
	var out []*history.Failure
	for _, ev := range events {
		if ev.Type == history.TaskFailed {
			out = append(out, ev.Failure)
		}
	}
	return out
}

// retryTimeouts retries activity attempts that timed out with kind, and nothing else.
func retryTimeouts(kind string, attempts int) durable.CallOption {
	return durable.WithRetry(durable.RetryPolicy{MaxAttempts: attempts, FirstRetryInterval: time.Millisecond, Handle: func(err error) bool {
		got, ok := durable.ActivityTimedOut(err)
		return ok && got == kind
	}})
}

// A hung activity (its first attempt ignores its context and never returns) fails with a
// StartToClose timeout, which the retry policy sees and retries.
func TestActivityStartToCloseTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var attempts atomic.Int32
	hung := func(ctx context.Context, _ json.RawMessage) (any, error) {
		if attempts.Add(1) == 1 {
			<-release // hung: ignores its context
			return "too late", nil
		}
		return "second attempt", nil
	}
	s, events := runOne(t, hung, nil, durable.WithStartToClose(300*time.Millisecond), retryTimeouts(history.FailureStartToCloseTimeout, 2))
	if s.Status != history.StatusCompleted || string(s.Output) != `"second attempt"` {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
	f := taskFailures(events)
	if len(f) != 1 || f[0].Type != history.FailureStartToCloseTimeout || !strings.Contains(f[0].Message, "300ms") {
		t.Fatalf("task failures %+v, want one StartToCloseTimeout naming 300ms", f)
	}
}

// An activity that honours its context sees it cancelled at the StartToClose deadline, the
// deadline set on it.
func TestActivityContextHasTheDeadline(t *testing.T) {
	saw := make(chan error, 1)
	waits := func(ctx context.Context, _ json.RawMessage) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			saw <- errors.New("no deadline")
			return nil, nil
		}
		<-ctx.Done()
		saw <- context.Cause(ctx)
		return nil, ctx.Err()
	}
	s, _ := runOne(t, waits, nil, durable.WithStartToClose(200*time.Millisecond))
	if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, history.FailureStartToCloseTimeout) {
		t.Fatalf("status %s failure %+v, want a StartToClose timeout", s.Status, s.Failure)
	}
	if cause := <-saw; cause == nil || !strings.Contains(cause.Error(), history.FailureStartToCloseTimeout) {
		t.Fatalf("the activity's context ended with cause %v, want the StartToClose timeout", cause)
	}
}

// With no StartToClose on the call, the worker's default bounds the attempt.
func TestActivityDefaultStartToClose(t *testing.T) {
	waits := func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s, events := runOne(t, waits, []engine.WorkerOption{engine.WithDefaultStartToClose(250 * time.Millisecond)})
	f := taskFailures(events)
	if s.Status != history.StatusFailed || len(f) != 1 || f[0].Type != history.FailureStartToCloseTimeout || !strings.Contains(f[0].Message, "250ms") {
		t.Fatalf("status %s task failures %+v, want one StartToCloseTimeout of 250ms", s.Status, f)
	}
	if engine.DefaultStartToClose != 10*time.Minute {
		t.Fatalf("DefaultStartToClose = %s, documented as 10m", engine.DefaultStartToClose)
	}
}

type progress struct {
	Done int `json:"done"`
}

// Heartbeats that stop trip the heartbeat timeout; the retry sees the last heartbeat's details.
func TestActivityHeartbeatTimeoutAndDetails(t *testing.T) {
	var attempts atomic.Int32
	resumed := make(chan progress, 1)
	work := func(ctx context.Context, _ json.RawMessage) (any, error) {
		if attempts.Add(1) == 1 {
			for i := 1; i <= 3; i++ {
				if err := durable.Heartbeat(ctx, progress{Done: i}); err != nil {
					return nil, err
				}
			}
			<-ctx.Done() // stops heartbeating
			return nil, ctx.Err()
		}
		var p progress
		ok, err := durable.LastHeartbeatDetails(ctx, &p)
		if err != nil || !ok {
			return nil, fmt.Errorf("no heartbeat details in the second attempt: %v", err)
		}
		resumed <- p
		return p.Done, nil
	}
	s, events := runOne(t, work, nil, durable.WithHeartbeatTimeout(300*time.Millisecond), retryTimeouts(history.FailureHeartbeatTimeout, 2))
	if s.Status != history.StatusCompleted || string(s.Output) != "3" {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
	if p := <-resumed; p.Done != 3 {
		t.Fatalf("second attempt resumed from %+v, want done 3", p)
	}
	f := taskFailures(events)
	if len(f) != 1 || f[0].Type != history.FailureHeartbeatTimeout || string(f[0].Details) != `{"done":3}` {
		t.Fatalf("task failures %+v, want one HeartbeatTimeout with details {\"done\":3}", f)
	}
}

// An activity that keeps heartbeating runs longer than its heartbeat timeout.
func TestActivityHeartbeatsKeepItAlive(t *testing.T) {
	const timeout = 300 * time.Millisecond
	work := func(ctx context.Context, _ json.RawMessage) (any, error) {
		tick := time.NewTicker(timeout / 6)
		defer tick.Stop()
		for end := time.Now().Add(3 * timeout); time.Now().Before(end); {
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-tick.C:
				if err := durable.Heartbeat(ctx, nil); err != nil {
					return nil, err
				}
			}
		}
		return "done", nil
	}
	s, _ := runOne(t, work, nil, durable.WithHeartbeatTimeout(timeout))
	if s.Status != history.StatusCompleted || string(s.Output) != `"done"` {
		t.Fatalf("status %s output %s failure %+v", s.Status, s.Output, s.Failure)
	}
}

// ScheduleToClose bounds all attempts: a failing activity is retried only while the next attempt
// would begin before the deadline, and an attempt running at the deadline is stopped.
func TestActivityScheduleToCloseBoundsRetries(t *testing.T) {
	var attempts atomic.Int32
	work := func(ctx context.Context, _ json.RawMessage) (any, error) {
		if attempts.Add(1) == 1 {
			return nil, errors.New("first attempt fails")
		}
		<-ctx.Done() // the second hangs until the deadline
		return nil, ctx.Err()
	}
	retry := durable.WithRetry(durable.RetryPolicy{MaxAttempts: 100, FirstRetryInterval: time.Second})
	began := time.Now()
	s, events := runOne(t, work, nil, durable.WithScheduleToClose(2500*time.Millisecond), retry)
	if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, history.FailureScheduleToCloseTimeout) {
		t.Fatalf("status %s failure %+v, want the ScheduleToClose timeout", s.Status, s.Failure)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2 (the second stopped at the deadline, no third)", n)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("took %s, bounded by a 2.5s ScheduleToClose", took)
	}
	if f := taskFailures(events); len(f) != 2 {
		t.Fatalf("task failures %+v, want 2", f)
	}
}

// With no worker to run the activity at all, the ScheduleToClose failure still reaches the
// instance at the deadline: the backend delivers it.
func TestScheduleToCloseWithoutWorker(t *testing.T) {
	e := newEnv(t)
	e.startWorker(mustRegistry(t, map[string]durable.OrchestratorFunc{"Call": callOne(durable.WithScheduleToClose(time.Second))}, nil))
	id, err := e.client.ScheduleNew(context.Background(), "Call")
	if err != nil {
		t.Fatal(err)
	}
	s := e.wait(id)
	if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, history.FailureScheduleToCloseTimeout) {
		t.Fatalf("status %s failure %+v, want the ScheduleToClose timeout", s.Status, s.Failure)
	}
}

// Terminating an instance cancels its running activity's context; the result the activity
// returns afterwards is discarded (the history has none) and counted.
func TestTerminateCancelsRunningActivity(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{})
	cancelled := make(chan error, 1)
	work := func(ctx context.Context, _ json.RawMessage) (any, error) {
		close(started)
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
		return "late result", nil
	}
	w, _ := e.startWorker(mustRegistry(t,
		map[string]durable.OrchestratorFunc{"Call": callOne()},
		map[string]durable.ActivityFunc{"Work": work}))
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Call")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if err := e.client.Terminate(ctx, id, "stop it"); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); s.Status != history.StatusTerminated {
		t.Fatalf("status %s, want Terminated", s.Status)
	}
	select {
	case cause := <-cancelled:
		if cause == nil || !strings.Contains(cause.Error(), "instance has ended") {
			t.Fatalf("the activity's context ended with cause %v, want its instance's end", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the running activity's context was not cancelled")
	}
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if st := w.Stats(); st.ActivitiesCanceled != 1 || st.Discarded < 1 {
			return fmt.Errorf("stats %+v: want 1 activity cancelled and its result discarded", st)
		}
		return nil
	})
	events, err := e.client.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Type == history.TaskCompleted || ev.Type == history.TaskFailed {
			t.Fatalf("history has %s after the termination: %+v", ev.Type, ev)
		}
	}
}

// An activity task delivered more than PoisonAfter times without an answer (its workers died or
// handed it back) is answered with a PoisonMessage failure and not run again: the activity
// consumer has no delivery limit of its own.
func TestActivityTaskDeliveryLimit(t *testing.T) {
	b := memory.New()
	t.Cleanup(b.Close)
	var ran atomic.Int32
	reg := mustRegistry(t,
		map[string]durable.OrchestratorFunc{"Call": callOne()},
		map[string]durable.ActivityFunc{"Work": func(context.Context, json.RawMessage) (any, error) { ran.Add(1); return "ran", nil }})
	runWorker(t, b, reg, engine.WithoutActivities())
	client := engine.NewClient(b)
	ctx := context.Background()
	id, err := client.ScheduleNew(ctx, "Call")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // two deliveries that end without an answer
		item, err := b.NextActivityWorkItem(ctx, []string{"Work"})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AbandonActivityWorkItem(ctx, item, 0); err != nil {
			t.Fatal(err)
		}
	}
	runWorker(t, b, reg, engine.WithoutOrchestrations(), engine.WithPoisonAfter(2))
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := client.WaitForCompletion(wctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != history.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, "delivered 3 times") || ran.Load() != 0 {
		t.Fatalf("status %s failure %+v, activity ran %d times: want a failure after 3 deliveries and no run", s.Status, s.Failure, ran.Load())
	}
}

// runWorker runs a worker on b until the test ends.
func runWorker(t *testing.T, b backend.Backend, reg *durable.Registry, opts ...engine.WorkerOption) {
	t.Helper()
	w, err := engine.NewWorker(b, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
