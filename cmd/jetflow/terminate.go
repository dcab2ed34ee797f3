package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const terminateAbout = `
Ends a pending, running or suspended instance with status Terminated; its output is the reason.
Its running sub-orchestrations are terminated too, recursively, unless --recursive=false; its
pending timers are cancelled. The request is queued: use 'jetflow wait' to see it take effect.
`

func runTerminate(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "terminate", "<id> [--reason TEXT] [--recursive=false]", terminateAbout)
	cfg.clientFlags(fs)
	reason := fs.String("reason", "", "why, recorded in the history")
	recursive := fs.Bool("recursive", true, "terminate the running sub-orchestrations too, recursively")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		if err := c.Terminate(ctx, id, *reason, engine.WithRecursiveTerminate(*recursive)); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "termination requested for %q\n", id)
		return nil
	})
}
