package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

const workerAbout = `
Runs a worker with the example orchestrators and activities against an external NATS server
(or cluster) with JetStream. Run as many as you like: instances are spread over them. It creates
jetflow's streams and buckets if they are missing (retrying for up to 2 minutes while JetStream
is not ready, e.g. a cluster still electing its leader), and stops cleanly on SIGINT or SIGTERM.
`

func runWorker(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "worker", "[flags]", workerAbout)
	cfg.connFlags(fs)
	cfg.workerFlags(fs, true)
	cfg.healthFlags(fs)
	cfg.logFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(env.Stderr, cfg.logLevel())

	reg, m, err := newMetrics()
	if err != nil {
		return err
	}
	traces, err := startTraces(ctx, "worker", log) // traces.go
	if err != nil {
		return err
	}
	defer traces.Stop()
	nc, js, err := connectService(cfg, "worker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := retrySetup(ctx, log, func(ctx context.Context) (*exampleWorker, error) {
		return newExampleWorker(ctx, cfg, js, log, m, traces.Provider())
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	health, err := serveHealth(cfg.HealthAddr, w.backend.Ready, reg, log)
	if err != nil {
		return err
	}
	defer health.Stop()
	log.Info().
		Int("replicas", cfg.Replicas).
		Int("concurrency", cfg.Concurrency).
		Int("activity_concurrency", cfg.ActivityConcurrency).
		Int("cache_size", cfg.CacheSize).
		Msg("worker running the example orchestrations and activities")
	err = w.worker.Run(ctx)
	w.logStats(log)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}

// setupWait bounds how long a worker retries creating jetflow's streams and buckets at start-up.
// A JetStream cluster that is starting cannot create replicated streams until it has elected a
// meta leader and its peers have joined (a few seconds), and in Kubernetes the workers may start
// before the servers.
const setupWait = 2 * time.Minute

// retrySetup calls setup until it succeeds, ctx ends or setupWait has passed, logging each
// failure; it returns the last error. Each call bounds its own requests (natsjs applies a
// default timeout).
func retrySetup[T any](ctx context.Context, log zerolog.Logger, setup func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(setupWait)
	delay := 250 * time.Millisecond
	for {
		v, err := setup(ctx)
		if err == nil || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return v, err
		}
		log.Warn().Err(err).Str("retry_in", delay.String()).Msg("setting up jetflow's streams and buckets failed; retrying (is JetStream ready?)")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
