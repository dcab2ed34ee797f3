package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const restartAbout = `
Starts an instance's orchestrator again with the instance's input and prints the ID of the
new instance: a random one, or the same ID with --same-id (which replaces the instance if it
has ended, and fails if it is still pending, running or suspended). Exit code 3 if there is
no such instance.
`

func runRestart(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "restart", "<id> [--same-id]", restartAbout)
	cfg.clientFlags(fs)
	sameID := fs.Bool("same-id", false, "restart under the same instance ID instead of a new random one")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		newID, err := c.Restart(ctx, id, !*sameID)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, newID)
		return nil
	})
}
