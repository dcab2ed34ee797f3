package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const raiseAbout = `
Raises an external event on a running instance. The data is JSON and defaults to null; quote
strings ('"yes"'). Event names are case-sensitive. With --event-id, raising the same event ID
again is applied once. Fails with exit code 3 if the instance does not exist, and 1 if it has
ended.
`

func runRaise(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "raise", "<id> <event> [json-data] [--event-id ID]", raiseAbout)
	cfg.clientFlags(fs)
	eventID := fs.String("event-id", "", "deduplication `ID` of the event")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 2, 3, "an instance ID, an event name and optional JSON data"); err != nil {
		return err
	}
	id, name := pos[0], pos[1]
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkEventName(name); err != nil {
		return err
	}
	data := json.RawMessage("null")
	if len(pos) == 3 {
		if data, err = parseJSON("event data", pos[2]); err != nil {
			return err
		}
	}
	var opts []engine.RaiseOption
	if *eventID != "" {
		opts = append(opts, engine.WithEventID(*eventID))
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		if err := c.RaiseEvent(ctx, id, name, data, opts...); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "raised %q on %q\n", name, id)
		return nil
	})
}
