package engine_test

// Network faults between a worker and NATS: a TCP proxy delays, drops and cuts the worker's
// connection while instances run; every instance completes with its exact output and every
// history holds each step once.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

func TestNetworkFaults(t *testing.T) {
	const n = 40
	e := newEnv(t)
	proxy := natstest.StartProxy(t, e.srv.Addr().String())
	startProxiedWorker(t, proxy.URL())
	ctx := context.Background()

	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("net-%02d", i)
	}
	// The faults run for a few seconds while the instances start, run their activities and
	// get their events; then the network heals and everything must complete.
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); injectFaults(proxy, 5) }()
	for _, id := range ids {
		if _, err := e.client.ScheduleNew(ctx, "Chain", engine.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		e.faultWait(id, "waiting for Go", waitingForEvent("Go"))
		if err := e.client.RaiseEvent(ctx, id, "Go", "go-"+id); err != nil {
			t.Fatal(err)
		}
	}
	<-faultsDone
	for _, id := range ids {
		s := e.faultWait(id, "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
		faultWantOutput(t, s, crashWant(id))
		faultCheckOnce(e, id)
	}
}

// injectFaults runs rounds of a delay, dropped bytes and two cuts (about a second each), then
// heals the network.
func injectFaults(p *natstest.Proxy, rounds int) {
	defer func() { p.SetDelay(0); p.SetDrop(false) }()
	for range rounds {
		p.SetDelay(20 * time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		p.SetDelay(0)
		p.SetDrop(true)
		time.Sleep(100 * time.Millisecond)
		p.SetDrop(false)
		p.Cut()
		time.Sleep(300 * time.Millisecond)
		p.Cut()
		time.Sleep(300 * time.Millisecond)
	}
}

// startProxiedWorker runs a worker with the crash registry whose connection goes through url,
// reconnecting for ever, until the test ends.
func startProxiedWorker(t *testing.T, url string) {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	opts := []natsjs.Option{natsjs.WithActivityAckWait(time.Second)}
	if os.Getenv("JETFLOW_TEST_LOG") != "" {
		opts = append(opts, natsjs.WithLogger(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()))
	}
	b, err := natsjs.New(context.Background(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, crashRegistry(t), append(examplestack.WorkerOptions(t), faultLog("proxied"))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}
