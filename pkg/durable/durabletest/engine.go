package durabletest

import (
	"context"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// Engine runs a real engine worker with reg's orchestrators and activities on an in-memory
// backend (no NATS server) until the test ends, and returns a client of it. Unlike Run, time is
// real and activities run: it tests an orchestration end to end, quickly.
func Engine(t testing.TB, reg *durable.Registry, opts ...engine.WorkerOption) *engine.Client {
	t.Helper()
	b := memory.New()
	w, err := engine.NewWorker(b, reg, opts...)
	if err != nil {
		t.Fatalf("durabletest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("durabletest: worker: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		b.Close()
	})
	return engine.NewClient(b)
}
