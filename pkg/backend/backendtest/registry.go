package backendtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// testWorkerRegistry: registered workers are listed and watched until their registration ends.
func testWorkerRegistry(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	watch, err := b.WatchWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC().Truncate(time.Second)
	infoA := backend.WorkerInfo{ID: "wa", Host: "h", PID: 1, Started: started,
		Orchestrators: []backend.ServedName{{Name: "Flow"}}, Activities: []backend.ServedName{{Name: "Step", Version: ""}}}
	infoB := backend.WorkerInfo{ID: "wb", Host: "h", PID: 2, Started: started, Activities: []backend.ServedName{{Name: "Other"}}}
	ctxA, stopA := context.WithCancel(ctx)
	defer stopA()
	if _, err := b.RegisterWorker(ctxA, infoA); err != nil {
		t.Fatal(err)
	}
	ctxB, stopB := context.WithCancel(ctx)
	doneB, err := b.RegisterWorker(ctxB, infoB)
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.Workers(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "wa" || list[1].ID != "wb" || !list[0].Serves("Flow") || list[1].Serves("Flow") ||
		!list[0].Started.Equal(started) || list[0].Activities[0].Name != "Step" {
		t.Fatalf("workers %+v (%v), want wa serving Flow and wb", list, err)
	}
	waitWorkers(t, ctx, watch, "wa", "wb")
	stopB()
	select {
	case <-doneB:
	case <-ctx.Done():
		t.Fatal("the registration of wb never ended")
	}
	if list, err := b.Workers(ctx); err != nil || len(list) != 1 || list[0].ID != "wa" {
		t.Fatalf("workers after wb stopped: %+v (%v), want wa", list, err)
	}
	waitWorkers(t, ctx, watch, "wa")
}

// waitWorkers waits until the watch reports exactly the workers ids, in order.
func waitWorkers(t *testing.T, ctx context.Context, watch <-chan []backend.WorkerInfo, ids ...string) {
	t.Helper()
	var last []backend.WorkerInfo
	for {
		select {
		case list, ok := <-watch:
			if !ok {
				t.Fatalf("the watch ended; last %+v, want %v", last, ids)
			}
			last = list
			if len(list) == len(ids) {
				same := true
				for i := range ids {
					same = same && list[i].ID == ids[i]
				}
				if same {
					return
				}
			}
		case <-ctx.Done():
			t.Fatalf("the watch reported %+v, want %v", last, ids)
		}
	}
}

// testCancelledTimerNeverFires: a timer cancelled by a later completion does not fire.
func testCancelledTimerNeverFires(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	fireAt := time.Now().Add(500 * time.Millisecond).UTC()
	run(t, b, "tc", history.Action{Kind: history.ActionTimer, TaskID: 1, FireAt: fireAt})
	send(t, b, backend.Message{InstanceID: "tc", Kind: backend.KindEvent, EventName: "cancel", Data: []byte("1")})
	item := next(t, b, "tc")
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{
		Applied: 1, Events: []history.Event{history.NewEventRaised(time.Now().UTC(), "cancel", []byte("1"), "")},
		Actions: []history.Action{{Kind: history.ActionCancelTimer, TaskID: 1}}, State: *item.State,
	}); err != nil {
		t.Fatal(err)
	}
	// Nothing can be awaited to show that a timer does not fire: wait past its time (and the
	// one-second resolution of JetStream schedules), then see that the next message is ours.
	time.Sleep(time.Until(fireAt.Add(1500 * time.Millisecond)))
	send(t, b, backend.Message{InstanceID: "tc", Kind: backend.KindEvent, EventName: "after", Data: []byte("2")})
	// A backend may replace the schedule with a firing that no generation takes (generation 0,
	// dropped as stale), but the timer itself must not fire.
	for {
		for _, m := range collect(t, b, "tc", 1) {
			if m.Kind == backend.KindEvent && m.EventName == "after" {
				return
			}
			var f backend.TimerFired
			if m.Kind != backend.KindTimer || json.Unmarshal(m.Data, &f) != nil || f.Generation != 0 {
				t.Fatalf("message after the cancel: %s %q %s, want event \"after\"", m.Kind, m.EventName, m.Data)
			}
		}
	}
}
