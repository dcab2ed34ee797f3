// Package examplestack is the one harness for tests that need a running jetflow: it starts what
// `jetflow dev` runs, in-process, on a real embedded JetStream (natstest.RunServer: file storage
// in t.TempDir()). A Stack is that server, the natsjs backend, a worker with the example
// orchestrations and activities, and a client; ServeAPI and StartRaiser add the HTTP API and the
// queue raiser. The Wait functions wait for an instance's state through the client's watch,
// never by sleeping. Everything stops when the test ends.
//
// A typical test:
//
//	st := examplestack.Start(t)
//	examplestack.StartWaiting(t, st.Client, "BudgetApproval", "b-1", input, orchestration.EventApproval)
//	... raise the event over whatever interface is under test ...
//	s := examplestack.WaitEnded(t, st.Client, "b-1")
//
// Tests that need a server only (no worker) use natstest directly.
package examplestack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

// WaitTimeout bounds every wait of this package.
const WaitTimeout = 30 * time.Second

// Stack is a running example deployment; everything stops when the test ends.
type Stack struct {
	Server    *server.Server // the embedded NATS server with JetStream
	NC        *nats.Conn     // the connection of the worker and the client
	JS        jetstream.JetStream
	Client    *engine.Client
	Inventory jetstream.KeyValue // the example activities' inventory bucket, empty
	SMS       *activities.LogSMS // the SMS sender of the example activities
}

// Options are extra options of Start's backend and worker.
type Options struct {
	Backend []natsjs.Option
	Worker  []engine.WorkerOption
}

// Start starts a stack for t: an embedded JetStream server, jetflow's streams and buckets
// (natsjs), the inventory bucket, and a worker with orchestration.Register and
// activities.Register (with WorkerOptions) that runs until the test ends. Extra options, if
// given, are added to the backend's and the worker's.
func Start(t testing.TB, extra ...Options) *Stack {
	t.Helper()
	ctx := context.Background()
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	var o Options
	for _, e := range extra {
		o.Backend = append(o.Backend, e.Backend...)
		o.Worker = append(o.Worker, e.Worker...)
	}
	b, err := natsjs.New(ctx, js, o.Backend...)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := activities.InventoryBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Server: srv, NC: nc, JS: js, Client: engine.NewClient(b), Inventory: kv, SMS: &activities.LogSMS{}}
	reg := durable.NewRegistry()
	if err := orchestration.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := activities.Register(reg, activities.Deps{Inventory: kv, SMS: s.SMS, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, reg, append(WorkerOptions(t), o.Worker...)...)
	if err != nil {
		t.Fatal(err)
	}
	RunInBackground(t, "worker", w.Run)
	return s
}

// ServeAPI serves the HTTP API over the stack's client with opts on a loopback port until the
// test ends.
func (s *Stack) ServeAPI(t testing.TB, opts httpapi.Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(s.Client, opts))
	t.Cleanup(srv.Close)
	return srv
}

// DevRaiserConfig returns the queues `jetflow dev` consumes: approval-queue (the body is an
// instance ID to raise Approval with data true on) and event-queue (the body is a notification
// naming the instance, the event and its data).
func DevRaiserConfig() raiser.Config {
	return raiser.Config{Queues: []raiser.Queue{
		{Name: "approval-queue", Event: orchestration.EventApproval, Data: json.RawMessage("true")},
		{Name: "event-queue"},
	}}
}

// StartRaiser creates a raiser over the stack with cfg, logging warnings to t (opts are applied
// after that), sets up its streams and consumers, and runs it until the test ends. Messages
// published to its queues once it returns are consumed.
func (s *Stack) StartRaiser(t testing.TB, cfg raiser.Config, opts ...raiser.Option) *raiser.Raiser {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	r, err := raiser.New(s.JS, s.Client, cfg, append([]raiser.Option{raiser.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := r.Setup(ctx); err != nil {
		t.Fatalf("setting up the raiser's queues: %v", err)
	}
	RunInBackground(t, "raiser", r.Run)
	return r
}

// WaitFor waits until the state of instance id satisfies ok and returns it; it fails the test if
// that takes longer than WaitTimeout, saying the instance is not what. The instance must exist
// (ScheduleNew has returned): see WaitCreated.
func WaitFor(t testing.TB, c *engine.Client, id, what string, ok func(*engine.Status) bool) *engine.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	s, err := c.WaitFor(ctx, id, ok)
	if err != nil {
		t.Fatalf("waiting for %s to be %s: %v (last status %+v)", id, what, err, s)
	}
	return s
}

// WaitEnded waits until instance id has ended (completed, failed, terminated...).
func WaitEnded(t testing.TB, c *engine.Client, id string) *engine.Status {
	t.Helper()
	return WaitFor(t, c, id, "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
}

// WaitingFor is a condition for WaitFor: the instance waits for every one of events.
func WaitingFor(events ...string) func(*engine.Status) bool {
	return func(s *engine.Status) bool {
		if s.Waiting == nil {
			return false
		}
		for _, name := range events {
			if !slices.Contains(s.Waiting.Events, name) {
				return false
			}
		}
		return true
	}
}

// StartWaiting starts orchestrator name with input as instance id and waits until it waits for
// event.
func StartWaiting(t testing.TB, c *engine.Client, name, id string, input any, event string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if _, err := c.ScheduleNew(ctx, name, engine.WithInstanceID(id), engine.WithInput(input)); err != nil {
		t.Fatalf("starting %s as %s: %v", name, id, err)
	}
	WaitFor(t, c, id, "waiting for "+event, WaitingFor(event))
}

// WaitCreated waits until instance id exists, for a test whose start runs concurrently (an HTTP
// start that waits for the output). A watch needs an existing instance, so this polls.
func WaitCreated(t testing.TB, c *engine.Client, id string) {
	t.Helper()
	natstest.CheckFor(t, WaitTimeout, 10*time.Millisecond, func() error {
		_, err := c.GetStatus(context.Background(), id)
		if err != nil && !errors.Is(err, engine.ErrInstanceNotFound) {
			t.Fatal(err)
		}
		return err
	})
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
