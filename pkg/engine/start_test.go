package engine_test

// Starts at the door and at the worker: one limit for both, concurrent starts of one ID, and
// starts a worker cannot apply leaving their instance Failed rather than Pending.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// startRegistry: Hold waits for "Go" and returns its input; Gather returns the data of the
// first n "E" events, n being its input.
func startRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Hold": func(ctx *durable.OrchestrationContext) (any, error) {
			var in json.RawMessage
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
				return nil, err
			}
			return in, nil
		},
		"Gather": func(ctx *durable.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			got := []string{}
			for range n {
				var s string
				if err := ctx.WaitForExternalEvent("E").Await(&s); err != nil {
					return nil, err
				}
				got = append(got, s)
			}
			sort.Strings(got)
			return got, nil
		},
	}, nil)
}

// TestStartInputUpToTheLimit: an input just under the payload limit is accepted and applied
// (the start message's envelope does not count); one over it is refused and nothing is stored.
func TestStartInputUpToTheLimit(t *testing.T) {
	e := newEnv(t)
	e.startWorker(startRegistry(t))
	ctx := context.Background()
	limit := e.b.MaxPayload()
	in := json.RawMessage(`"` + strings.Repeat("x", limit-40) + `"`)
	if _, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID("big"), engine.WithInput(in)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("big", "waiting for Go", waitingForEvent("Go"))
	if err := e.client.RaiseEvent(ctx, "big", "Go", nil); err != nil {
		t.Fatal(err)
	}
	if s := e.wait("big"); s.Status != history.StatusCompleted || len(s.Output) != len(in) {
		t.Errorf("big: %s, output of %d bytes, failure %+v", s.Status, len(s.Output), s.Failure)
	}

	over := json.RawMessage(`"` + strings.Repeat("x", limit) + `"`)
	_, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID("too-big"), engine.WithInput(over))
	if !errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Fatalf("oversize start: %v, want ErrPayloadTooLarge", err)
	}
	half := json.RawMessage(`"` + strings.Repeat("x", limit/2) + `"`)
	_, err = e.client.StartWithEvent(ctx, "Hold", engine.Event{Name: "Go", Data: half},
		engine.WithInstanceID("too-big"), engine.WithInput(half))
	if !errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Fatalf("oversize start-with-event: %v, want ErrPayloadTooLarge", err)
	}
	if _, err := e.client.GetStatus(ctx, "too-big"); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Errorf("a refused start stored its instance: %v", err)
	}
}

// TestUnappliableStartFailsInstance: a start that reaches a worker that cannot apply it (its
// limit is lower than the client's; a start message published by hand that is not a valid
// start request) is dead-lettered and leaves its instance Failed with the reason, not Pending.
func TestUnappliableStartFailsInstance(t *testing.T) {
	e := newEnv(t)
	e.startWorker(startRegistry(t), engine.WithMaxPayload(backend.MinMaxPayload))
	ctx := context.Background()
	in := `"` + strings.Repeat("x", 2*backend.MinMaxPayload) + `"`
	if _, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID("over-worker-limit"), engine.WithInput(json.RawMessage(in))); err != nil {
		t.Fatal(err)
	}
	s := e.waitFor("over-worker-limit", "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Type != engine.FailurePayloadTooLarge || string(s.Input) != "null" {
		t.Errorf("over-worker-limit: %s %+v input %.20s, want Failed %s without its input", s.Status, s.Failure, s.Input, engine.FailurePayloadTooLarge)
	}

	// A start published by hand whose event has no name.
	data := []byte(`{"instanceId": "bad-start", "name": "Hold", "startId": "s1", "event": {"name": ""}}`)
	nc := e.js.Conn()
	subject := mustNames(t).InstanceSubject("bad-start", string(backend.KindStart))
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Data: data}); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, faultTimeout, 10*time.Millisecond, func() error {
		var err error
		s, err = e.client.GetStatus(ctx, "bad-start")
		return err
	})
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Type != engine.FailureInvalidStart {
		t.Errorf("bad-start: %s %+v, want Failed %s", s.Status, s.Failure, engine.FailureInvalidStart)
	}
	letters, err := e.b.DeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 2 {
		reasons := make([]string, len(letters))
		for i, l := range letters {
			reasons[i] = l.Reason
		}
		t.Errorf("%d dead letters, want the two starts: %q", len(letters), reasons)
	}
}

// TestConcurrentStarts: of 30 concurrent starts of one ID, exactly one succeeds and the others
// are told that the instance exists, for a new ID and for one whose instance ended, for plain
// starts and for starts with an event (whose events all reach the one instance).
func TestConcurrentStarts(t *testing.T) {
	const n = 30
	e := newEnv(t)
	e.startWorker(startRegistry(t))
	ctx := context.Background()

	plain := func(id string) string {
		t.Helper()
		winner := race(t, n, func(i int) error {
			_, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID(id), engine.WithInput(i))
			return err
		})
		e.waitFor(id, "waiting for Go", waitingForEvent("Go"))
		if err := e.client.RaiseEvent(ctx, id, "Go", nil); err != nil {
			t.Fatal(err)
		}
		s := e.wait(id)
		if s.Status != history.StatusCompleted || string(s.Output) != fmt.Sprint(winner) {
			t.Errorf("%s: %s output %s, want the winner's input %d", id, s.Status, s.Output, winner)
		}
		return string(s.Output)
	}
	plain("plain")
	plain("plain") // ended: one start replaces it

	withEvent := func(id string, generation uint64) {
		t.Helper()
		race(t, n, func(i int) error {
			_, err := e.client.StartWithEvent(ctx, "Gather", engine.Event{Name: "E", Data: fmt.Sprintf("e%02d", i)},
				engine.WithInstanceID(id), engine.WithInput(n))
			return err
		})
		s := e.waitFor(id, "ended", func(s *engine.Status) bool { return s.Generation == generation && s.Status.IsTerminal() })
		var got []string
		if err := json.Unmarshal(s.Output, &got); err != nil || s.Status != history.StatusCompleted || len(got) != n {
			t.Fatalf("%s: %s output %s (%v), want all %d events", id, s.Status, s.Output, err, n)
		}
		for i, v := range got {
			if v != fmt.Sprintf("e%02d", i) {
				t.Fatalf("%s gathered %v, want e00..e%d once each", id, got, n-1)
			}
		}
	}
	withEvent("with-event", 1)
	withEvent("with-event", 2)
}

// race runs start(i) for i in [0, n) at once and returns the i of the one that succeeded; the
// test fails unless exactly one did and every other was told ErrInstanceExists.
func race(t *testing.T, n int, start func(i int) error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = start(i) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("starts %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, engine.ErrInstanceExists):
			t.Fatalf("start %d: %v, want nil or ErrInstanceExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no start succeeded")
	}
	return winner
}

func mustNames(t *testing.T) natsjs.Names {
	names, err := natsjs.NewNames(natsjs.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return names
}
