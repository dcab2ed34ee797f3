package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/timeline"
)

const statusAbout = `
Prints an instance's name, status, times, input, output, custom status and what it waits for.
--history adds the history of its current generation as a timeline; --json prints the same
as JSON (long values are shortened only in the human output).
`

func runStatus(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "status", "<id> [--history] [--json]", statusAbout)
	cfg.clientFlags(fs)
	withHistory := fs.Bool("history", false, "print the history too")
	asJSON := fs.Bool("json", false, "print JSON")
	id, err := parseInstanceArg(fs, args)
	if err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		s, err := c.GetStatus(ctx, id)
		if err != nil {
			return err
		}
		var events []history.Event
		if *withHistory {
			if events, err = c.GetHistory(ctx, id); err != nil {
				return err
			}
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			if *withHistory {
				return enc.Encode(struct {
					Status  *engine.Status  `json:"status"`
					History []history.Event `json:"history"`
				}{s, events})
			}
			return enc.Encode(s)
		}
		now := time.Now()
		printStatus(env.Stdout, s, now)
		if *withHistory {
			fmt.Fprintln(env.Stdout)
			printHistory(env.Stdout, events, now)
		}
		return nil
	})
}

// maxShown is how much of a JSON value the human output shows.
const maxShown = 1000

// printStatus writes s for people.
func printStatus(w io.Writer, s *engine.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("instance", s.ID)
	row("name", s.Name)
	row("status", string(s.Status))
	row("created", formatTime(s.CreatedAt, now))
	row("updated", formatTime(s.UpdatedAt, now))
	if len(s.Input) > 0 {
		row("input", shorten(string(s.Input), maxShown))
	}
	if len(s.Output) > 0 {
		row("output", shorten(string(s.Output), maxShown))
	}
	if len(s.CustomStatus) > 0 {
		row("custom status", shorten(string(s.CustomStatus), maxShown))
	}
	if s.Failure != nil {
		row("failure", s.Failure.Error())
	}
	if s.Waiting != nil && !s.Waiting.IsEmpty() {
		row("waiting for", describeWaiting(*s.Waiting, now))
	}
	if s.Parent != nil {
		row("parent", fmt.Sprintf("%s (task %d)", s.Parent.InstanceID, s.Parent.TaskID))
	}
	if s.ScheduledStartTime != nil {
		row("scheduled start", formatTime(*s.ScheduledStartTime, now))
	}
	if s.OrchestratorVersion != "" {
		row("version", s.OrchestratorVersion)
	}
	if s.Warning != "" {
		row("warning", s.Warning)
	}
	tw.Flush()
}

func describeWaiting(wt durable.Waiting, now time.Time) string {
	var parts []string
	for _, e := range wt.Events {
		parts = append(parts, "event "+e)
	}
	for _, t := range wt.Timers {
		parts = append(parts, "timer at "+formatTime(t, now))
	}
	for _, a := range wt.Activities {
		parts = append(parts, "activity "+a)
	}
	for _, o := range wt.SubOrchestrations {
		parts = append(parts, "sub-orchestration "+o)
	}
	return strings.Join(parts, ", ")
}

// formatTime writes t in UTC with how long ago (or how far ahead) it is.
func formatTime(t, now time.Time) string { return timeline.FormatTime(t, now) }

// shorten cuts s to at most n bytes (on a character boundary), saying how long it was.
func shorten(s string, n int) string { return timeline.Shorten(s, n) }

// printHistory writes a history as the timeline `jetflow history` prints.
func printHistory(w io.Writer, events []history.Event, now time.Time) {
	_ = timeline.Build(events).WriteText(w, now)
}
