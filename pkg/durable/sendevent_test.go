package durable

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// A send is recorded as EventSent with a deterministic event ID and becomes a send action; a
// cold replay accepts it and sends nothing again.
func TestSendEventRecordedAndReplayed(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		if err := ctx.SendEvent("other", "Ping", 1); err != nil {
			return nil, err
		}
		var v int
		if err := ctx.WaitForExternalEvent("Pong").Await(&v); err != nil {
			return nil, err
		}
		return v, nil
	})
	res := h.turn(started(`null`))
	var sends []Action
	for _, a := range res.Actions {
		if a.Kind == ActionSendEvent {
			sends = append(sends, a)
		}
	}
	wantID := history.SentEventID("inst-1", 1, 1)
	if len(sends) != 1 || sends[0].InstanceID != "other" || sends[0].Name != "Ping" || string(sends[0].Input) != "1" || sends[0].EventID != wantID {
		t.Fatalf("send actions = %+v, want one Ping to other with ID %s", sends, wantID)
	}
	var sent *history.Event
	for i, ev := range res.Events {
		if ev.Type == history.EventSent {
			sent = &res.Events[i]
		}
	}
	if sent == nil || sent.InstanceID != "other" || sent.EventID != wantID || sent.TaskID != 1 {
		t.Fatalf("events = %+v, want an EventSent to other with ID %s", res.Events, wantID)
	}
	res = h.turn(raised("Pong", "2"))
	if res.Status != history.StatusCompleted || string(res.Output) != "2" || len(res.Actions) != 0 {
		t.Fatalf("after Pong: status %s output %s actions %+v", res.Status, res.Output, res.Actions)
	}
}

// Code that now sends to another instance than its history recorded is not deterministic.
func TestSendEventToAnotherTargetIsNonDeterminism(t *testing.T) {
	reg := NewRegistry()
	if err := reg.AddOrchestrator("O", func(ctx *OrchestrationContext) (any, error) {
		_ = ctx.SendEvent("b", "Ping", nil)
		return nil, ctx.WaitForExternalEvent("x").Await(nil)
	}); err != nil {
		t.Fatal(err)
	}
	past := []history.Event{
		history.NewOrchestratorStarted(t0), started(`null`),
		history.NewEventSent(t0, 1, "a", "Ping", []byte("null"), history.SentEventID("inst-1", 1, 1)),
	}
	e, err := Replay(reg, "inst-1", zerolog.Nop(), past)
	defer e.Close()
	if !errors.Is(err, ErrNonDeterminism) {
		t.Fatalf("replay error = %v, want ErrNonDeterminism", err)
	}
}

// A send with a bad target or name returns an error and sends nothing.
func TestSendEventRejectsBadNames(t *testing.T) {
	var errs []error
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		errs = append(errs, ctx.SendEvent("", "Ping", nil), ctx.SendEvent("b", "", nil), ctx.SendEvent("b", "Ping", func() {}))
		return nil, nil
	})
	res := h.turn(started(`null`))
	for i, err := range errs {
		if err == nil {
			t.Errorf("send %d: no error", i)
		}
	}
	if len(res.Actions) != 0 {
		t.Fatalf("actions = %+v, want none", res.Actions)
	}
}

// A generation that ends cancels the timers it has not seen fire: pending ones, and the timeout
// of a wait whose event came first.
func TestEndingCancelsTimers(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		_ = ctx.WaitForExternalEvent("a", WithTimeout(time.Hour)).Await(nil) // timer 1, given up
		ctx.CreateTimer(time.Hour)                                           // timer 2, never awaited
		fired := ctx.CreateTimer(time.Minute)                                // timer 3, fires
		return nil, fired.Await(nil)
	})
	h.turn(started(`null`))
	h.turn(raised("a", "1"))
	res := h.turn(history.NewTimerFired(t0, 3))
	var cancelled []int
	for _, a := range res.Actions {
		if a.Kind == ActionCancelTimer {
			cancelled = append(cancelled, a.TaskID)
		}
	}
	if res.Status != history.StatusCompleted || !equalJSON(cancelled, []int{1, 2}) {
		t.Fatalf("status %s, cancelled timers %v, want Completed and [1 2]", res.Status, cancelled)
	}
}
