package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/durable/durabletest"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

func registry(t *testing.T, name string, fn durable.OrchestratorFunc) *durable.Registry {
	t.Helper()
	reg := durable.NewRegistry()
	if err := reg.AddOrchestrator(name, fn); err != nil {
		t.Fatal(err)
	}
	return reg
}

// greet calls an activity, waits for an event, sleeps on a durable timer and reports the time.
func greet(ctx *durable.OrchestrationContext) (any, error) {
	var name string
	if err := ctx.GetInput(&name); err != nil {
		return nil, err
	}
	var greeting string
	if err := ctx.CallActivity("Greet", name).Await(&greeting); err != nil {
		return nil, err
	}
	var punctuation string
	if err := ctx.WaitForExternalEvent("Punctuation").Await(&punctuation); err != nil {
		return nil, err
	}
	if err := ctx.CreateTimer(time.Hour).Await(nil); err != nil {
		return nil, err
	}
	return fmt.Sprintf("%s%s at %s", greeting, punctuation, ctx.CurrentTime().Format(time.RFC3339)), nil
}

func TestActivityEventTimer(t *testing.T) {
	run := durabletest.New(t, registry(t, "Greet", greet), "Greet", "Ada")
	if got, want := run.Status(), history.StatusRunning; got != want {
		t.Fatalf("status = %s, want %s", got, want)
	}
	call := run.Activity("Greet")
	if got, want := string(call.Input), `"Ada"`; got != want {
		t.Fatalf("activity input = %s, want %s", got, want)
	}
	if got := run.Waiting().Activities; len(got) != 1 || got[0] != "Greet" {
		t.Fatalf("waiting for activities %q, want [Greet]", got)
	}
	run.Complete(call, "Hello, Ada")
	// An event raised to an unrelated name is buffered and changes nothing.
	run.Raise("Unrelated", 1)
	if got := run.Waiting().Events; len(got) != 1 || got[0] != "Punctuation" {
		t.Fatalf("waiting for events %q, want [Punctuation]", got)
	}
	run.Raise("Punctuation", "!")
	if got := len(run.Pending()); got != 1 {
		t.Fatalf("%d pending actions, want the timer", got)
	}
	if got, want := run.FireTimers(), 1; got != want {
		t.Fatalf("fired %d timers, want %d", got, want)
	}
	if got, want := run.Now(), durabletest.Epoch.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("clock at %s, want %s", got, want)
	}
	var out string
	run.Output(&out)
	if want := "Hello, Ada! at 2030-01-01T01:00:00Z"; out != want {
		t.Fatalf("output = %q, want %q", out, want)
	}
	if got := run.FireTimers(); got != 0 {
		t.Fatalf("fired %d timers after the end, want 0", got)
	}
}

func TestFailedActivityAndRetry(t *testing.T) {
	reg := registry(t, "Retry", func(ctx *durable.OrchestrationContext) (any, error) {
		policy := durable.RetryPolicy{MaxAttempts: 2, FirstRetryInterval: time.Minute}
		err := ctx.CallActivity("Flaky", nil, durable.WithRetry(policy)).Await(nil)
		var failed *durable.TaskFailedError
		if errors.As(err, &failed) {
			return "gave up: " + failed.Failure.Message, nil
		}
		return "ok", err
	})

	t.Run("succeeds on retry", func(t *testing.T) {
		run := durabletest.New(t, reg, "Retry", nil)
		run.Fail(run.Activity("Flaky"), "boom")
		if got := run.FireTimers(); got != 1 {
			t.Fatalf("fired %d timers, want the retry delay", got)
		}
		run.Complete(run.Activity("Flaky"), nil)
		var out string
		run.Output(&out)
		if out != "ok" {
			t.Fatalf("output = %q, want ok", out)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		run := durabletest.New(t, reg, "Retry", nil)
		run.Fail(run.Activity("Flaky"), "boom")
		run.FireTimers()
		run.Fail(run.Activity("Flaky"), "boom again")
		var out string
		run.Output(&out)
		if want := "gave up: boom again"; out != want {
			t.Fatalf("output = %q, want %q", out, want)
		}
	})
}

func TestWaitTimeout(t *testing.T) {
	reg := registry(t, "Timeout", func(ctx *durable.OrchestrationContext) (any, error) {
		err := ctx.WaitForExternalEvent("Never", durable.WithTimeout(30*time.Second)).Await(nil)
		return errors.Is(err, durable.ErrTimeout), nil
	})
	run := durabletest.New(t, reg, "Timeout", nil)
	timers := run.Pending()
	if len(timers) != 1 || timers[0].Kind != durable.ActionTimer || !timers[0].FireAt.Equal(durabletest.Epoch.Add(30*time.Second)) {
		t.Fatalf("pending = %+v, want one timer at Epoch+30s", timers)
	}
	run.FireTimers()
	var timedOut bool
	run.Output(&timedOut)
	if !timedOut {
		t.Fatal("the wait did not time out")
	}
}

func TestContinueAsNewCarriesEvents(t *testing.T) {
	reg := registry(t, "Counter", func(ctx *durable.OrchestrationContext) (any, error) {
		var n int
		if err := ctx.GetInput(&n); err != nil {
			return nil, err
		}
		var add int
		if err := ctx.WaitForExternalEvent("Add").Await(&add); err != nil {
			return nil, err
		}
		if n+add >= 10 {
			return n + add, nil
		}
		return nil, ctx.ContinueAsNew(n + add)
	})
	run := durabletest.New(t, reg, "Counter", 0)
	run.Raise("Add", 3)
	if got := run.Status(); got != history.StatusRunning {
		t.Fatalf("status after the first generation = %s, want Running", got)
	}
	// Events buffered in the history of a new generation.
	run.Raise("Add", 4)
	run.Raise("Add", 5)
	var out int
	run.Output(&out)
	if out != 12 {
		t.Fatalf("output = %d, want 12", out)
	}
}

func TestFailureStatus(t *testing.T) {
	reg := registry(t, "Typed", func(ctx *durable.OrchestrationContext) (any, error) {
		var n int
		err := ctx.WaitForExternalEvent("N").Await(&n)
		return n, err
	})
	run := durabletest.New(t, reg, "Typed", nil)
	run.Raise("N", "not a number")
	if got := run.Status(); got != history.StatusFailed {
		t.Fatalf("status = %s, want Failed", got)
	}
	if f := run.Failure(); f == nil || f.Type != "DecodeError" || !strings.Contains(f.Message, `event "N"`) {
		t.Fatalf("failure = %+v, want a DecodeError naming event N", f)
	}
}

// fakeT records the first Fatalf and ends the goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	message  string
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.message = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs body with a fake T and returns the message it failed with.
func fatal(t *testing.T, body func(t testing.TB)) string {
	t.Helper()
	f := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	if f.message == "" {
		t.Fatal("the harness did not fail the test")
	}
	return f.message
}

func TestHarnessFailures(t *testing.T) {
	var calls atomic.Int64
	reg := durable.NewRegistry()
	orchestrators := map[string]durable.OrchestratorFunc{
		// Schedules a different activity on every run.
		"Schedules": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallActivity(fmt.Sprintf("A%d", calls.Add(1)), nil).Await(nil)
		},
		// Returns a different output on every run.
		"Outputs": func(ctx *durable.OrchestrationContext) (any, error) {
			if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
				return nil, err
			}
			return calls.Add(1), nil
		},
		"Fails": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, errors.New("no luck")
		},
		"Text": func(ctx *durable.OrchestrationContext) (any, error) {
			return "text", nil
		},
		"Calls": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallActivity("A", nil).Await(nil)
		},
	}
	for name, fn := range orchestrators {
		if err := reg.AddOrchestrator(name, fn); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name string
		body func(t testing.TB)
		want string
	}{
		{"replay schedules something else", func(t testing.TB) {
			durabletest.New(t, reg, "Schedules", nil)
		}, "non-deterministic"},
		{"replay returns something else", func(t testing.TB) {
			durabletest.New(t, reg, "Outputs", nil).Raise("Go", nil)
		}, "replay reaches a different state"},
		{"no such activity", func(t testing.TB) {
			durabletest.New(t, reg, "Calls", nil).Activity("B")
		}, `no pending call of activity "B"; instance is Running, pending: activity "A" (task 1)`},
		{"completed twice", func(t testing.TB) {
			run := durabletest.New(t, reg, "Calls", nil)
			a := run.Activity("A")
			run.Complete(a, nil)
			run.Complete(a, nil)
		}, `activity "A" (task 1) is not pending; instance is Completed`},
		{"output of a failed instance", func(t testing.TB) {
			var out any
			durabletest.New(t, reg, "Fails", nil).Output(&out)
		}, "no output: instance is Failed (Error: no luck)"},
		{"output of the wrong type", func(t testing.TB) {
			var out int
			durabletest.New(t, reg, "Text", nil).Output(&out)
		}, `decoding output "text"`},
		{"activity after the end", func(t testing.TB) {
			run := durabletest.New(t, reg, "Calls", nil)
			run.Complete(run.Activity("A"), nil)
			run.Activity("A")
		}, `no pending call of activity "A"; instance is Completed, nothing pending`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := fatal(t, tc.body)
			t.Logf("the harness failed with: %s", msg)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("failed with %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

func TestRewind(t *testing.T) {
	reg := registry(t, "Charge", func(ctx *durable.OrchestrationContext) (any, error) {
		var receipt string
		if err := ctx.CallActivity("Charge", 100).Await(&receipt); err != nil {
			return nil, err
		}
		return receipt, nil
	})
	run := durabletest.New(t, reg, "Charge", nil)
	run.Fail(run.Activity("Charge"), "card service down")
	if run.Status() != history.StatusFailed {
		t.Fatalf("status %s, want Failed", run.Status())
	}
	run.Rewind("card service is back")
	if run.Status() != history.StatusRunning {
		t.Fatalf("status %s after the rewind, want Running", run.Status())
	}
	run.Complete(run.Activity("Charge"), "receipt-1")
	var out string
	run.Output(&out)
	if out != "receipt-1" {
		t.Fatalf("output %q", out)
	}
}

func TestEngine(t *testing.T) {
	reg := durable.NewRegistry()
	if err := reg.AddOrchestrator("Greet", func(ctx *durable.OrchestrationContext) (any, error) {
		var name string
		if err := ctx.WaitForExternalEvent("Name").Await(&name); err != nil {
			return nil, err
		}
		var out string
		err := ctx.CallActivity("Hello", name).Await(&out)
		return out, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddActivity("Hello", durable.Activity(func(_ context.Context, name string) (string, error) {
		return "hello " + name, nil
	})); err != nil {
		t.Fatal(err)
	}
	c := durabletest.Engine(t, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.ScheduleNew(ctx, "Greet")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "Name", "ada"); err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id)
	if err != nil || string(s.Output) != `"hello ada"` {
		t.Fatalf("status %+v, %v; want output \"hello ada\"", s, err)
	}
}
