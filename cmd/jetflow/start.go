package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const startAbout = `
Starts a new instance of an orchestrator and prints its instance ID. Without --id the ID is a
random UUID. Starting an ID whose instance has ended replaces it; one that is still pending,
running or suspended is an error.
`

func runStart(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "start", "<orchestrator> [--id ID] [--input JSON]", startAbout)
	cfg.clientFlags(fs)
	id := fs.String("id", "", "instance `ID` (default: a random UUID)")
	input := fs.String("input", "", "orchestrator input as `JSON`, e.g. '{\"amountCents\": 5000}'")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1, "an orchestrator name"); err != nil {
		return err
	}
	opts := []engine.StartOption{}
	if *id != "" {
		if err := checkID(*id); err != nil {
			return err
		}
		opts = append(opts, engine.WithInstanceID(*id))
	}
	if *input != "" {
		raw, err := parseJSON("--input", *input)
		if err != nil {
			return err
		}
		opts = append(opts, engine.WithInput(raw))
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		got, err := c.ScheduleNew(ctx, pos[0], opts...)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, got)
		return nil
	})
}
