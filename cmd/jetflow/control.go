package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// runControl is terminate, suspend and resume: one instance ID and an optional --reason.
func runControl(ctx context.Context, env *Env, args []string, name, about, done string,
	op func(c *engine.Client, ctx context.Context, id, reason string) error) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, name, "<id> [--reason TEXT]", about)
	cfg.clientFlags(fs)
	reason := fs.String("reason", "", "why, recorded in the history")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		if err := op(c, ctx, id, *reason); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "%s %q\n", done, id)
		return nil
	})
}
