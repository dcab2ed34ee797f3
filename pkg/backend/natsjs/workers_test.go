package natsjs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestWorkerEntryExpires: the entry of a worker that stopped refreshing it (killed) expires
// after the registry's TTL, and watchers see it go; a client that watches before any worker
// created the registry sees no workers, then the first one.
func TestWorkerEntryExpires(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := natsjs.New(ctx, js, natsjs.WithWorkerTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	watch, err := b.WatchWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list := <-watch; len(list) != 0 {
		t.Fatalf("before any worker: %+v", list)
	}
	// A worker registers (creating the registry) and stops cleanly: its entry goes at once.
	rctx, stop := context.WithCancel(ctx)
	done, err := b.RegisterWorker(rctx, backend.WorkerInfo{ID: "clean"})
	if err != nil {
		t.Fatal(err)
	}
	waitList(t, watch, 1)
	stop()
	<-done
	waitList(t, watch, 0)
	// A killed worker: its entry is written once and never refreshed.
	kv, err := js.KeyValue(ctx, b.Names().WorkerBucket())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(backend.WorkerInfo{ID: "killed", Orchestrators: []backend.ServedName{{Name: "Flow"}}})
	if _, err := kv.Put(ctx, "killed", data); err != nil {
		t.Fatal(err)
	}
	put := time.Now()
	if list := waitList(t, watch, 1); !list[0].Serves("Flow") {
		t.Fatalf("watched %+v", list)
	}
	waitList(t, watch, 0)
	if gone := time.Since(put); gone < time.Second {
		t.Fatalf("the entry went after %s, before the TTL", gone)
	}
	if list, err := b.Workers(ctx); err != nil || len(list) != 0 {
		t.Fatalf("workers after the expiry: %+v (%v)", list, err)
	}
}

// waitList waits until the watch reports n workers and returns that list.
func waitList(t *testing.T, watch <-chan []backend.WorkerInfo, n int) []backend.WorkerInfo {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case list, ok := <-watch:
			if !ok {
				t.Fatal("the watch ended")
			}
			if len(list) == n {
				return list
			}
		case <-timeout:
			t.Fatalf("the watch never reported %d workers", n)
		}
	}
}
