package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// This file is the one place where natsjs is plugged into engine, for `worker` and `dev`.
// Users build their own worker binaries the same way, with their own orchestrators and
// activities in place of the examples.

// exampleWorker is a worker running the example orchestrators and activities.
type exampleWorker struct {
	backend   *natsjs.Backend
	worker    *engine.Worker
	client    *engine.Client
	inventory jetstream.KeyValue
}

// newExampleWorker creates jetflow's streams and buckets (idempotently) and the examples' inventory
// bucket on js, and returns a worker with orchestration.Register and activities.Register. The
// backend and the worker record their metrics in m (nil: none); the worker and its client trace
// with tp (nil: none).
func newExampleWorker(ctx context.Context, c Config, js jetstream.JetStream, log zerolog.Logger, m *metrics.Metrics, tp trace.TracerProvider) (*exampleWorker, error) {
	b, err := natsjs.New(ctx, js, append(options(c.backendOptions()),
		natsjs.WithLogger(log.With().Str("component", "natsjs").Logger()), natsjs.WithMetrics(m))...)
	if err != nil {
		return nil, fmt.Errorf("creating jetflow's streams and buckets: %w", err)
	}
	kv, err := activities.InventoryBucket(ctx, js, c.Replicas)
	if err != nil {
		return nil, fmt.Errorf("creating the inventory bucket: %w", err)
	}
	reg := durable.NewRegistry()
	if err := orchestration.Register(reg); err != nil {
		return nil, fmt.Errorf("registering the example orchestrators: %w", err)
	}
	actLog := log.With().Str("component", "activities").Logger()
	deps := activities.Deps{
		Inventory: kv,
		SMS:       &activities.LogSMS{Log: actLog},
		Log:       actLog,
	}
	if err := activities.Register(reg, deps); err != nil {
		return nil, fmt.Errorf("registering the example activities: %w", err)
	}
	w, err := engine.NewWorker(b, reg, append(options(c.workerOptions()),
		engine.WithLogger(log.With().Str("component", "worker").Logger()), engine.WithMetrics(m), engine.WithTracerProvider(tp))...)
	if err != nil {
		return nil, err
	}
	return &exampleWorker{backend: b, worker: w, client: engine.NewClient(b, engine.WithClientTracerProvider(tp)), inventory: kv}, nil
}

// logStats logs what the worker did; called when it stops.
func (w *exampleWorker) logStats(log zerolog.Logger) {
	s := w.worker.Stats()
	log.Info().
		Uint64("turns", s.Turns).
		Uint64("conflicts", s.Conflicts).
		Uint64("activities", s.Activities).
		Uint64("discarded", s.Discarded).
		Uint64("dead_lettered", s.DeadLettered).
		Msg("worker stopped")
}
