// Package examplestack starts, for tests, what `jetflow dev` runs: an embedded JetStream, a
// worker with the example orchestrations and activities, and a client. Tests that drive the
// examples through another interface (HTTP, queues) share it.
package examplestack

import (
	"context"
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
	w, err := engine.NewWorker(b, reg)
	if err != nil {
		t.Fatal(err)
	}
	RunInBackground(t, "worker", w.Run)
	return s
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
