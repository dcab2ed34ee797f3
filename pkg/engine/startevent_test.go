package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// recorder is an activity that remembers every value it is called with.
type recorder struct {
	mu   sync.Mutex
	seen map[string]bool
	more chan struct{} // signalled on every new value
}

func newRecorder() *recorder {
	return &recorder{seen: map[string]bool{}, more: make(chan struct{}, 1)}
}

func (r *recorder) record(_ context.Context, v string) (string, error) {
	r.mu.Lock()
	r.seen[v] = true
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	return v, nil
}

// waitAll waits until every value in want has been recorded.
func (r *recorder) waitAll(t *testing.T, want []string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		var missing []string
		for _, w := range want {
			if !r.seen[w] {
				missing = append(missing, w)
			}
		}
		r.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%d events never reached an orchestrator: %v", len(missing), missing)
		}
	}
}

// drainRegistry has "Drain": it waits for event "E", records its data, and goes on recording
// the "E"s that arrive within 100ms of each other; then it returns the last one. Every event
// that reaches a generation is therefore recorded, and the instance ends between bursts.
func drainRegistry(t *testing.T, rec *recorder) *durable.Registry {
	return mustRegistry(t,
		map[string]durable.OrchestratorFunc{
			"Drain": func(ctx *durable.OrchestrationContext) (any, error) {
				var last string
				var opts []durable.WaitOption
				for {
					var v string
					err := ctx.WaitForExternalEvent("E", opts...).Await(&v)
					if errors.Is(err, durable.ErrTimeout) {
						return last, nil
					}
					if err != nil {
						return nil, err
					}
					if err := ctx.CallActivity("Record", v).Await(&last); err != nil {
						return nil, err
					}
					opts = []durable.WaitOption{durable.WithTimeout(100 * time.Millisecond)}
				}
			},
		},
		map[string]durable.ActivityFunc{"Record": durable.Activity(rec.record)})
}

func TestStartWithEvent(t *testing.T) {
	e := newEnv(t)
	e.startWorker(approvalRegistry(t))
	ctx := context.Background()

	// Absent: the instance starts with the event right after its start.
	id, err := e.client.StartWithEvent(ctx, "Approval", engine.Event{Name: "Approval", Data: true, ID: "ev-1"}, engine.WithInstanceID("swe-1"))
	if err != nil || id != "swe-1" {
		t.Fatalf("StartWithEvent = %q, %v", id, err)
	}
	if s := e.wait(id); s.Status != history.StatusCompleted || string(s.Output) != `"approved"` {
		t.Fatalf("status %s output %s", s.Status, s.Output)
	}
	events, err := e.client.GetHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 3 || events[1].Type != history.ExecutionStarted || events[2].Type != history.EventRaised || events[2].EventID != "ev-1" {
		t.Fatalf("history begins %+v, want OrchestratorStarted, ExecutionStarted, EventRaised ev-1", events[:min(3, len(events))])
	}

	// Running: the start is ignored and the event raised on the running generation.
	id, err = e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("swe-2"), engine.WithInput("first"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(id, "waiting for Approval", waitingForEvent("Approval"))
	if _, err := e.client.StartWithEvent(ctx, "Approval", engine.Event{Name: "Approval", Data: false}, engine.WithInstanceID(id), engine.WithInput("second")); !errors.Is(err, engine.ErrInstanceExists) {
		t.Fatalf("start-with-event on a running instance: %v, want ErrInstanceExists", err)
	}
	s := e.wait(id)
	if s.Status != history.StatusCompleted || string(s.Output) != `"denied"` || string(s.Input) != `"first"` || s.Generation != 1 {
		t.Fatalf("status %s output %s input %s generation %d, want the first generation denied", s.Status, s.Output, s.Input, s.Generation)
	}

	// Ended: a new generation starts with the event.
	if _, err := e.client.StartWithEvent(ctx, "Approval", engine.Event{Name: "Approval", Data: true}, engine.WithInstanceID(id), engine.WithInput("third")); err != nil {
		t.Fatal(err)
	}
	s = e.waitFor(id, "the second generation ended", func(s *engine.Status) bool { return s.Generation == 2 && s.Status.IsTerminal() })
	if s.Status != history.StatusCompleted || string(s.Output) != `"approved"` || string(s.Input) != `"third"` {
		t.Fatalf("status %s output %s input %s", s.Status, s.Output, s.Input)
	}

	// Bad input is refused before anything is sent.
	for name, c := range map[string]struct {
		ev   engine.Event
		want error
	}{
		"empty event name": {engine.Event{Name: ""}, engine.ErrInvalidName},
		"bad raw JSON":     {engine.Event{Name: "E", Data: json.RawMessage("{")}, engine.ErrBadPayload},
		"oversize":         {engine.Event{Name: "E", Data: make([]int, 1<<19)}, engine.ErrPayloadTooLarge},
	} {
		_, err := e.client.StartWithEvent(ctx, "Approval", c.ev, engine.WithInstanceID("swe-bad"))
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := e.client.GetStatus(ctx, "swe-bad"); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Errorf("a refused start-with-event created the instance: %v", err)
	}
}

// TestStartWithEventRaces sends bursts of start-with-event to one ID while generations start,
// run and end, and races start-with-event against plain starts of fresh IDs: every event must
// reach a generation.
func TestStartWithEventRaces(t *testing.T) {
	e := newEnv(t)
	rec := newRecorder()
	e.startWorker(drainRegistry(t, rec))
	ctx := context.Background()

	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for burst := range 4 {
		for i := range 10 {
			v := fmt.Sprintf("burst%d-%d", burst, i)
			want = append(want, v)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.client.StartWithEvent(ctx, "Drain", engine.Event{Name: "E", Data: v}, engine.WithInstanceID("swe-race")); err != nil && !errors.Is(err, engine.ErrInstanceExists) {
					errs <- err
				}
			}()
		}
		wg.Wait()
		if burst%2 == 1 {
			e.waitFor("swe-race", "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
		}
	}
	for i := range 10 {
		id := fmt.Sprintf("swe-vs-start-%d", i)
		v := "plain-race-" + id
		want = append(want, v)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := e.client.ScheduleNew(ctx, "Drain", engine.WithInstanceID(id)); err != nil && !errors.Is(err, engine.ErrInstanceExists) {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := e.client.StartWithEvent(ctx, "Drain", engine.Event{Name: "E", Data: v}, engine.WithInstanceID(id)); err != nil && !errors.Is(err, engine.ErrInstanceExists) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rec.waitAll(t, want)
}
