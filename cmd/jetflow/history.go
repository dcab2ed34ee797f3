package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const historyAbout = `
Prints the history of an instance's current generation as a timeline: one event a line, with
its time, its offset from the first event, its type and what matters about it (task numbers,
names, inputs and results shortened); then each activity call with its attempts and their
durations, the timers, the raised events with the turn that consumed each, and the
sub-orchestrations (the model the web UI shows, package timeline). --json prints the events
as JSON, in full. Exit code 3 if there is no such instance.
`

func runHistory(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "history", "<id> [--json]", historyAbout)
	cfg.clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		events, err := c.GetHistory(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			if events == nil {
				return enc.Encode([]any{})
			}
			return enc.Encode(events)
		}
		printHistory(env.Stdout, events, time.Now())
		return nil
	})
}
