package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const startAbout = `
Starts a new instance of an orchestrator and prints its instance ID. Without --id the ID is a
random UUID. Starting an ID whose instance has ended replaces it; one that is still pending,
running or suspended is an error.

With --event, the start also delivers that event (Temporal's signal-with-start), atomically: if
the instance is pending, running or suspended, it is not started again and the event is raised
on it instead; otherwise it starts and the event is the first thing it receives. --event-data
is the event's JSON data (default null), --event-id deduplicates it.

With --at (an RFC 3339 time, e.g. 2026-01-02T15:04:05Z), the instance is Pending, with its
scheduled start time in its status, until then; a time that has passed starts it now. Events
raised to it before it starts are discarded. --version starts it on that version of the
orchestrator (default: the newest the worker that takes the start has).
An orchestrator that no live worker serves is refused (exit code 7; see 'jetflow workers'),
unless --allow-unknown-names (the start is then accepted, and a worker that does not serve the
orchestrator fails the instance: NotRegistered).
`

func runStart(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "start", "<orchestrator> [--id ID] [--input JSON] [--at TIME] [--version V] [--event NAME [--event-data JSON] [--event-id ID]]", startAbout)
	cfg.clientFlags(fs)
	id := fs.String("id", "", "instance `ID` (default: a random UUID)")
	input := fs.String("input", "", "orchestrator input as `JSON`, e.g. '{\"amountCents\": 5000}'")
	event := fs.String("event", "", "also deliver the event `NAME` (start if absent, else raise)")
	eventData := fs.String("event-data", "", "the event's data as `JSON` (default null)")
	eventID := fs.String("event-id", "", "deduplication `ID` of the event")
	at := fs.String("at", "", "start at this RFC 3339 `time` (default: now)")
	version := fs.String("version", "", "orchestrator `version` to start (default: the newest)")
	allowDefault, err := envBool(env.Getenv, setAllowUnknown)
	if err != nil {
		return configErr(setAllowUnknown, "%v", err)
	}
	allowUnknown := fs.Bool(setAllowUnknown.flag, allowDefault, usageFor(setAllowUnknown, "start even if no live worker serves the orchestrator"))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1, "an orchestrator name"); err != nil {
		return err
	}
	opts, err := startOptions(*id, *input)
	if err != nil {
		return err
	}
	more, err := scheduleOptions(*at, *version)
	if err != nil {
		return err
	}
	opts = append(opts, more...)
	ev, err := startEvent(*event, *eventData, *eventID)
	if err != nil {
		return err
	}
	start := func(ctx context.Context, c *engine.Client) error {
		var got string
		var err error
		if ev != nil {
			got, err = c.StartWithEvent(ctx, pos[0], *ev, opts...)
		} else {
			got, err = c.ScheduleNew(ctx, pos[0], opts...)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, got)
		return nil
	}
	return withClientOptions(ctx, env, cfg, clientTimeout, nameCheck(*allowUnknown), start)
}

// startOptions are the start options for the --id and --input flags.
func startOptions(id, input string) ([]engine.StartOption, error) {
	opts := []engine.StartOption{}
	if id != "" {
		if err := checkID(id); err != nil {
			return nil, err
		}
		opts = append(opts, engine.WithInstanceID(id))
	}
	if input != "" {
		raw, err := parseJSON("--input", input)
		if err != nil {
			return nil, err
		}
		opts = append(opts, engine.WithInput(raw))
	}
	return opts, nil
}

// startEvent is the event the --event, --event-data and --event-id flags ask the start to
// deliver, or nil for none.
func startEvent(name, data, id string) (*engine.Event, error) {
	if name == "" {
		if data != "" || id != "" {
			return nil, usageErrorf("start: --event-data and --event-id need --event")
		}
		return nil, nil
	}
	if err := checkEventName(name); err != nil {
		return nil, err
	}
	ev := &engine.Event{Name: name, Data: json.RawMessage("null"), ID: id}
	if data != "" {
		raw, err := parseJSON("--event-data", data)
		if err != nil {
			return nil, err
		}
		ev.Data = raw
	}
	return ev, nil
}

// scheduleOptions are the start options for the --at and --version flags.
func scheduleOptions(at, version string) ([]engine.StartOption, error) {
	var opts []engine.StartOption
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, usageErrorf("start: --at %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z (with a zone: Z or +01:00)", at)
		}
		opts = append(opts, engine.WithStartTime(t))
	}
	if version != "" {
		if err := durable.ValidateVersion(version); err != nil {
			return nil, usageErrorf("start: --version: %v", err)
		}
		opts = append(opts, engine.WithVersion(version))
	}
	return opts, nil
}
