package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
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
func formatTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	rel := roundDuration(d).String() + " ago"
	if d < 0 {
		rel = "in " + roundDuration(-d).String()
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format("2006-01-02 15:04:05.000Z"), rel)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Hour:
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// shorten cuts s to at most n bytes (on a character boundary), saying how long it was.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes; --json shows all)", s[:cut], len(s))
}

// maxShownInTimeline is how much of a JSON value one history line shows.
const maxShownInTimeline = 120

// printHistory writes a history as a timeline, one event a line, with each event's time and
// offset from the first.
func printHistory(w io.Writer, events []history.Event, now time.Time) {
	fmt.Fprintf(w, "history (%d events)\n", len(events))
	if len(events) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	start := events[0].Timestamp
	for _, ev := range events {
		fmt.Fprintf(tw, "  %s\t+%s\t%s\t%s\n",
			ev.Timestamp.UTC().Format("15:04:05.000"),
			roundDuration(ev.Timestamp.Sub(start)),
			ev.Type, describeEvent(ev, now))
	}
	tw.Flush()
}

// describeEvent summarizes the fields that matter for each event type.
func describeEvent(ev history.Event, now time.Time) string {
	var parts []string
	switch ev.Type {
	case history.OrchestratorStarted:
		// Its timestamp is the orchestrator's CurrentTime for the turn.
		parts = []string{"(a turn begins)"}
	case history.ExecutionStarted:
		parts = []string{ev.Name, jsonPart("input", ev.Input)}
		if ev.Generation > 1 {
			parts = append(parts, fmt.Sprintf("generation %d", ev.Generation))
		}
		if ev.Parent != nil {
			parts = append(parts, fmt.Sprintf("parent %s #%d", ev.Parent.InstanceID, ev.Parent.TaskID))
		}
	case history.ExecutionCompleted:
		parts = []string{string(ev.Status), jsonPart("output", ev.Result), failurePart(ev)}
	case history.ExecutionTerminated, history.ExecutionSuspended, history.ExecutionResumed:
		parts = []string{reasonPart(ev)}
	case history.ContinuedAsNew:
		parts = []string{jsonPart("input", ev.Input)}
	case history.ExecutionRewound:
		parts = []string{reasonPart(ev)}
		for _, id := range ev.TaskIDs {
			parts = append(parts, fmt.Sprintf("reruns #%d", id))
		}
	case history.TaskScheduled:
		parts = []string{taskPart(ev), ev.Name, jsonPart("input", ev.Input)}
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		parts = []string{taskPart(ev), jsonPart("result", ev.Result)}
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		parts = []string{taskPart(ev), failurePart(ev)}
	case history.TimerCreated:
		parts = []string{taskPart(ev), "fires " + formatTime(ev.FireAt, now)}
	case history.TimerFired:
		parts = []string{taskPart(ev)}
	case history.SubOrchestrationInstanceCreated:
		parts = []string{taskPart(ev), ev.Name, "instance " + ev.InstanceID, jsonPart("input", ev.Input)}
	case history.EventSent:
		parts = []string{taskPart(ev), ev.Name, "to " + ev.InstanceID, jsonPart("data", ev.Input), "event ID " + ev.EventID}
	case history.EventRaised:
		parts = []string{ev.Name, jsonPart("data", ev.Input)}
		if ev.EventID != "" {
			parts = append(parts, "event ID "+ev.EventID)
		}
	default:
		parts = []string{taskPart(ev), ev.Name, jsonPart("input", ev.Input), jsonPart("result", ev.Result), failurePart(ev), reasonPart(ev)}
	}
	return joinParts(parts)
}

// jsonPart is label and the (shortened) JSON value raw, or "" without one.
func jsonPart(label string, raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	return label + " " + shorten(string(raw), maxShownInTimeline)
}

// taskPart is the event's task ID.
func taskPart(ev history.Event) string { return fmt.Sprintf("#%d", ev.TaskID) }

// failurePart is the event's (shortened) failure, or "" without one.
func failurePart(ev history.Event) string {
	if ev.Failure == nil {
		return ""
	}
	return "failure " + shorten(ev.Failure.Error(), maxShownInTimeline)
}

// reasonPart is the event's reason, or "" without one.
func reasonPart(ev history.Event) string {
	if ev.Reason == "" {
		return ""
	}
	return "reason " + ev.Reason
}

// joinParts joins the parts that are not "", two spaces apart.
func joinParts(parts []string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "  ")
}
