package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const purgeAbout = `
Deletes an ended (completed, failed or terminated) instance's state and history, and those of its
sub-orchestrations, recursively (those still running are terminated), unless --recursive=false.
Exit code 3 if there is no such instance, 1 if it has not ended.
`

func runPurge(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "purge", "<id>", purgeAbout)
	cfg.clientFlags(fs)
	recursive := fs.Bool("recursive", true, "purge the sub-orchestrations too, recursively")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		n, err := c.PurgeInstance(ctx, id, engine.WithRecursivePurge(*recursive))
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "purged %q (%d instances)\n", id, n)
		return nil
	})
}
