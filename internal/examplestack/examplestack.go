// Package examplestack starts, for tests, what `jetflow dev` runs: an embedded JetStream, a
// worker with the example orchestrations and activities, and a client. Tests that drive the
// examples through another interface (HTTP, queues) share it.
package examplestack

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// Stack is a running example deployment; everything stops when the test ends.
type Stack struct {
	NC        *nats.Conn
	JS        jetstream.JetStream
	Client    *engine.Client
	Inventory jetstream.KeyValue
	SMS       *activities.LogSMS
}

// Start starts a stack for t.
func Start(t testing.TB) *Stack {
	t.Helper()
	ctx := context.Background()
	nc, js := natstest.Connect(t, natstest.RunServer(t))
	b, err := natsjs.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := activities.InventoryBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{NC: nc, JS: js, Client: engine.NewClient(b), Inventory: kv, SMS: &activities.LogSMS{}}
	reg := durable.NewRegistry()
	if err := orchestration.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := activities.Register(reg, activities.Deps{Inventory: kv, SMS: s.SMS, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, reg, WorkerOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	RunInBackground(t, "worker", w.Run)
	return s
}

// CacheSizeEnv names the environment variable that sets the executor cache size of the workers
// tests start (unset: the engine's default). `make test` runs the end-to-end suites once more
// with it at 0, so that every turn replays from storage.
const CacheSizeEnv = "JETFLOW_TEST_CACHE_SIZE"

// WorkerOptions returns the worker options the environment asks tests for (CacheSizeEnv).
func WorkerOptions(t testing.TB) []engine.WorkerOption {
	t.Helper()
	v := os.Getenv(CacheSizeEnv)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(fmt.Errorf("%s=%q: %w", CacheSizeEnv, v, err))
	}
	return []engine.WorkerOption{engine.WithCacheSize(n)}
}

// RunInBackground runs run until the test ends, then cancels it and waits for it to return.
func RunInBackground(t testing.TB, what string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}
