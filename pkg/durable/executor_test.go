package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// run drives an orchestrator turn by turn: every turn's events are checked by replaying the whole
// history into a fresh executor, so each test also proves replay reaches the same state.
type harness struct {
	t    *testing.T
	reg  *Registry
	e    *Executor
	past []history.Event
	now  time.Time
}

func newHarness(t *testing.T, fn OrchestratorFunc) *harness {
	reg := NewRegistry()
	if err := reg.AddOrchestrator("O", fn); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, reg: reg, e: NewExecutor(reg, "inst-1", zerolog.Nop()), now: t0}
	t.Cleanup(func() { h.e.Close() })
	return h
}

func (h *harness) turn(events ...history.Event) *TurnResult {
	h.t.Helper()
	h.now = h.now.Add(time.Second)
	res := h.e.Execute(h.now, events)
	h.past = append(h.past, res.Events...)
	// A cold replay of everything so far must accept the history and schedule nothing new.
	cold, err := Replay(h.reg, "inst-1", zerolog.Nop(), h.past)
	if err != nil {
		h.t.Fatalf("replaying the history: %v", err)
	}
	if got, want := cold.waiting(), res.Waiting; !equalJSON(got, want) {
		h.t.Fatalf("cold replay waits for %+v, hot executor for %+v", got, want)
	}
	cold.Close()
	return res
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func started(input string) history.Event {
	return history.NewExecutionStarted(t0, "O", json.RawMessage(input), 1, nil)
}

func raised(name, data string) history.Event {
	return history.NewEventRaised(t0, name, json.RawMessage(data), "")
}

func TestBudgetApprovalFlow(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var approved bool
		if err := ctx.WaitForExternalEvent("Approval").Await(&approved); err != nil {
			return nil, err
		}
		if approved {
			if err := ctx.CallActivity("ApproveBudget", 100).Await(nil); err != nil {
				return nil, err
			}
			return "approved", nil
		}
		return "denied", nil
	})
	res := h.turn(started(`null`))
	if res.Status != history.StatusRunning || len(res.Actions) != 0 || len(res.Waiting.Events) != 1 {
		t.Fatalf("after start: %+v", res)
	}
	res = h.turn(raised("Approval", "true"))
	if len(res.Actions) != 1 || res.Actions[0].Name != "ApproveBudget" || string(res.Actions[0].Input) != "100" {
		t.Fatalf("after approval, actions = %+v", res.Actions)
	}
	res = h.turn(history.NewTaskCompleted(t0, res.Actions[0].TaskID, json.RawMessage(`null`)))
	if res.Status != history.StatusCompleted || string(res.Output) != `"approved"` {
		t.Fatalf("final: status %s output %s", res.Status, res.Output)
	}
}

func TestEventsBufferedFIFOAndWhenAnyLoserConsumesNothing(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var got []int
		// The loser of this WhenAny must not consume an "A".
		var winner *Task
		ctx.WhenAny(ctx.WaitForExternalEvent("A"), ctx.WaitForExternalEvent("B")).Await(&winner)
		var b int
		if err := winner.Await(&b); err != nil {
			return nil, err
		}
		got = append(got, b)
		for range 2 {
			var a int
			if err := ctx.WaitForExternalEvent("A").Await(&a); err != nil {
				return nil, err
			}
			got = append(got, a)
		}
		return got, nil
	})
	h.turn(started(`null`))
	h.turn(raised("B", "0"))
	res := h.turn(raised("A", "1"), raised("A", "2"))
	if res.Status != history.StatusCompleted || string(res.Output) != `[0,1,2]` {
		t.Fatalf("status %s output %s, want Completed [0,1,2]", res.Status, res.Output)
	}
}

func TestWaitTimeoutThenEventStaysBuffered(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		err := ctx.WaitForExternalEvent("X", WithTimeout(time.Minute)).Await(nil)
		if !errors.Is(err, ErrTimeout) {
			return nil, errors.New("want timeout")
		}
		var v string
		err = ctx.WaitForExternalEvent("X").Await(&v)
		return v, err
	})
	res := h.turn(started(`null`))
	if len(res.Actions) != 1 || res.Actions[0].Kind != ActionTimer || !res.Actions[0].FireAt.Equal(t0.Add(time.Second+time.Minute)) {
		t.Fatalf("actions = %+v", res.Actions)
	}
	res = h.turn(history.NewTimerFired(t0, res.Actions[0].TaskID))
	if res.Status != history.StatusRunning || len(res.Waiting.Events) != 1 {
		t.Fatalf("after timeout: %+v", res)
	}
	res = h.turn(raised("X", `"late"`))
	if string(res.Output) != `"late"` {
		t.Fatalf("output %s", res.Output)
	}
}

func TestDecodeErrorIsHandled(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var n int
		err := ctx.WaitForExternalEvent("N").Await(&n)
		var de *DecodeError
		if errors.As(err, &de) {
			return "bad: " + de.What, nil
		}
		return n, err
	})
	h.turn(started(`null`))
	res := h.turn(raised("N", `"seven"`))
	if string(res.Output) != `"bad: event \"N\""` {
		t.Fatalf("output %s", res.Output)
	}
}

func TestDuplicateEventIDAppliedOnce(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var a, b int
		ctx.WaitForExternalEvent("E").Await(&a)
		ctx.WaitForExternalEvent("E").Await(&b)
		return a + b, nil
	})
	h.turn(started(`null`))
	ev := history.NewEventRaised(t0, "E", json.RawMessage(`1`), "id-1")
	res := h.turn(ev, ev)
	if res.Status != history.StatusRunning || len(res.Events) != 2 {
		t.Fatalf("duplicate applied: %+v", res)
	}
	res = h.turn(history.NewEventRaised(t0, "E", json.RawMessage(`10`), "id-2"))
	if string(res.Output) != "11" {
		t.Fatalf("output %s", res.Output)
	}
}

func TestNonDeterminismDetected(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		return nil, ctx.CallActivity("A", nil).Await(nil)
	})
	h.turn(started(`null`))
	changed := NewRegistry()
	changed.AddOrchestrator("O", func(ctx *OrchestrationContext) (any, error) {
		return nil, ctx.CallActivity("B", nil).Await(nil)
	})
	e, err := Replay(changed, "inst-1", zerolog.Nop(), h.past)
	defer e.Close()
	if !errors.Is(err, ErrNonDeterminism) {
		t.Fatalf("err = %v, want ErrNonDeterminism", err)
	}
	res := e.Execute(t0, []history.Event{history.NewTaskCompleted(t0, 1, nil)})
	if res.Status != history.StatusFailed || res.Failure == nil {
		t.Fatalf("status %s failure %+v", res.Status, res.Failure)
	}
}

func TestRetryPolicyUsesDurableTimers(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var out string
		err := ctx.CallActivity("Flaky", nil, WithRetry(RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second})).Await(&out)
		return out, err
	})
	res := h.turn(started(`null`))
	res = h.turn(history.NewTaskFailed(t0, res.Actions[0].TaskID, &history.Failure{Message: "boom"}))
	if len(res.Actions) != 1 || res.Actions[0].Kind != ActionTimer {
		t.Fatalf("want a retry timer, got %+v", res.Actions)
	}
	res = h.turn(history.NewTimerFired(t0, res.Actions[0].TaskID))
	if len(res.Actions) != 1 || res.Actions[0].Name != "Flaky" {
		t.Fatalf("want a second attempt, got %+v", res.Actions)
	}
	res = h.turn(history.NewTaskCompleted(t0, res.Actions[0].TaskID, json.RawMessage(`"ok"`)))
	if string(res.Output) != `"ok"` {
		t.Fatalf("output %s", res.Output)
	}
}

func TestSuspendHoldsEventsUntilResume(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var v int
		err := ctx.WaitForExternalEvent("E").Await(&v)
		return v, err
	})
	h.turn(started(`null`))
	res := h.turn(history.NewExecutionSuspended(t0, "hold"), raised("E", "5"))
	if res.Status != history.StatusSuspended {
		t.Fatalf("status %s", res.Status)
	}
	res = h.turn(history.NewExecutionResumed(t0, ""))
	if res.Status != history.StatusCompleted || string(res.Output) != "5" {
		t.Fatalf("status %s output %s", res.Status, res.Output)
	}
}

func TestContinueAsNewCarriesUnprocessedEvents(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var n int
		ctx.GetInput(&n)
		ctx.WaitForExternalEvent("Tick").Await(nil)
		return nil, ctx.ContinueAsNew(n + 1)
	})
	h.turn(started(`0`))
	res := h.turn(raised("Tick", "1"), raised("Tick", "2"), raised("Other", "3"))
	if res.Status != history.StatusContinuedAsNew || string(res.ContinueAsNew.Input) != "1" {
		t.Fatalf("status %s can %+v", res.Status, res.ContinueAsNew)
	}
	if got := len(res.ContinueAsNew.CarryOver); got != 2 {
		t.Fatalf("carried %d events, want 2", got)
	}
}

func TestPanicFailsInstance(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) { panic("kaboom") })
	res := h.turn(started(`null`))
	if res.Status != history.StatusFailed || res.Failure.Message != "kaboom" {
		t.Fatalf("status %s failure %+v", res.Status, res.Failure)
	}
}

func TestInvalidActivityNameFailsTheTaskNotTheWorker(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		err := ctx.CallActivity("bad\x00name", nil).Await(nil)
		return errors.Is(err, ErrInvalidName), nil
	})
	res := h.turn(started(`null`))
	if string(res.Output) != "true" || len(res.Actions) != 0 {
		t.Fatalf("output %s actions %+v", res.Output, res.Actions)
	}
}

func TestDeterministicTimeUUIDAndQuietReplayLogger(t *testing.T) {
	var logged bytes.Buffer
	reg := NewRegistry()
	reg.AddOrchestrator("O", func(ctx *OrchestrationContext) (any, error) {
		first := ctx.NewUUID()
		ctx.Logger().Info().Msg("before wait")
		ctx.WaitForExternalEvent("Go").Await(nil)
		ctx.Logger().Info().Msg("after wait")
		return []string{first.String(), ctx.NewUUID().String(), ctx.CurrentTime().Format(time.RFC3339)}, nil
	})
	live := NewExecutor(reg, "i", zerolog.New(&logged))
	defer live.Close()
	start := live.Execute(t0, []history.Event{started("null")})
	done := live.Execute(t0.Add(time.Hour), []history.Event{raised("Go", "null")})
	if got := strings.Count(logged.String(), "\n"); got != 2 {
		t.Fatalf("live run logged %d lines, want 2:\n%s", got, logged.String())
	}
	var out []string
	json.Unmarshal(done.Output, &out)
	if out[0] == out[1] || out[2] != t0.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("output %v", out)
	}

	// A replay of the whole history logs nothing and produces the same UUIDs and time.
	logged.Reset()
	past := append(append([]history.Event{}, start.Events...), done.Events...)
	cold, err := Replay(reg, "i", zerolog.New(&logged), past)
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	if logged.Len() != 0 {
		t.Fatalf("replay logged: %s", logged.String())
	}
	if string(cold.output) != string(done.Output) {
		t.Fatalf("replayed output %s, live %s", cold.output, done.Output)
	}
}

func TestTimeoutTimerIsDroppedWhenTheEventWins(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		if err := ctx.WaitForExternalEvent("X", WithTimeout(time.Minute)).Await(nil); err != nil {
			return nil, err
		}
		return nil, ctx.WaitForExternalEvent("Y").Await(nil)
	})
	res := h.turn(started(`null`))
	timer := res.Actions[0]
	res = h.turn(raised("X", "1"))
	if len(res.Waiting.Timers) != 0 {
		t.Fatalf("still waiting for the timeout timer: %+v", res.Waiting)
	}
	res = h.turn(history.NewTimerFired(t0, timer.TaskID))
	if len(res.Events) != 1 {
		t.Fatalf("the stale timer's firing was recorded: %+v", res.Events)
	}
}

func TestSetCustomStatusNilClears(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		ctx.SetCustomStatus("busy")
		ctx.WaitForExternalEvent("X").Await(nil)
		ctx.SetCustomStatus(nil)
		return nil, ctx.WaitForExternalEvent("Y").Await(nil)
	})
	if res := h.turn(started(`null`)); string(res.CustomStatus) != `"busy"` {
		t.Fatalf("custom status %s", res.CustomStatus)
	}
	if res := h.turn(raised("X", "1")); res.CustomStatus != nil {
		t.Fatalf("custom status %s, want none", res.CustomStatus)
	}
}
