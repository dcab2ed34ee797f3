package main

import (
	"context"
	"fmt"
)

const workerAbout = `
Runs a worker with the example orchestrators and activities against an external NATS server
(or cluster) with JetStream. Run as many as you like: instances are spread over them. It creates
jetflow's streams and buckets if they are missing, and stops cleanly on SIGINT or SIGTERM.
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

	nc, js, err := connectService(cfg, "worker", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := newExampleWorker(ctx, cfg, js, log)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.HealthAddr != "" {
		stop, err := serveHealth(ctx, cfg.HealthAddr, nc, log)
		if err != nil {
			return err
		}
		defer stop()
	}
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
