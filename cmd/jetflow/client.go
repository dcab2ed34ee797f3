package main

import (
	"context"
	"flag"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// clientFlags adds the flags every client command has: the connection and --log-level.
func (c *Config) clientFlags(fs *flag.FlagSet) {
	c.connFlags(fs)
	c.logFlags(fs)
}

// withClient validates cfg, connects, and runs fn with a client; timeout bounds the whole call
// unless it is 0.
func withClient(ctx context.Context, env *Env, cfg Config, timeout time.Duration, fn func(context.Context, *engine.Client) error) error {
	return withClientOptions(ctx, env, cfg, timeout, nil, fn)
}

// withClientOptions is withClient with a client made with opts.
func withClientOptions(ctx context.Context, env *Env, cfg Config, timeout time.Duration, opts []engine.ClientOption,
	fn func(context.Context, *engine.Client) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	log := newLogger(env.Stderr, cfg.logLevel())
	cc, err := openClient(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer cc.Close()
	return fn(ctx, cc.client)
}

// withBackend is withClient for the operator commands, which use the natsjs backend itself.
func withBackend(ctx context.Context, env *Env, cfg Config, fn func(context.Context, *natsjs.Backend) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cc, err := openClient(ctx, cfg, newLogger(env.Stderr, cfg.logLevel()))
	if err != nil {
		return err
	}
	defer cc.Close()
	return fn(ctx, cc.backend)
}

// checkID reports an instance ID that cannot be used, before connecting (exit code 2).
func checkID(id string) error {
	if _, err := natsjs.EncodeInstanceID(id); err != nil {
		return withCode(exitUsage, err)
	}
	return nil
}

// checkEventName reports an event name that cannot be used, before connecting (exit code 2).
func checkEventName(name string) error {
	if _, err := natsjs.EncodeEventName(name); err != nil {
		return withCode(exitUsage, err)
	}
	return nil
}
