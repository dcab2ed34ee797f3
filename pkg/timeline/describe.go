package timeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// timeLayout is how times are written: UTC, to the millisecond.
const timeLayout = "2006-01-02 15:04:05.000Z"

// maxShownInSummary is how much of a JSON value an entry's summary shows.
const maxShownInSummary = 120

// describeEvent summarizes the fields that matter for each event type; turn is the number of
// the turn the event belongs to.
func describeEvent(ev history.Event, turn int) string {
	var parts []string
	switch ev.Type {
	case history.OrchestratorStarted:
		// Its timestamp is the orchestrator's CurrentTime for the turn.
		parts = []string{fmt.Sprintf("(turn %d begins)", turn)}
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
	default:
		parts = describeTaskEvent(ev)
	}
	return joinParts(parts)
}

// describeTaskEvent summarizes the events of tasks and raised events.
func describeTaskEvent(ev history.Event) []string {
	switch ev.Type {
	case history.TaskScheduled:
		return []string{taskPart(ev), ev.Name, jsonPart("input", ev.Input)}
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		return []string{taskPart(ev), jsonPart("result", ev.Result)}
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		return []string{taskPart(ev), failurePart(ev)}
	case history.TimerCreated:
		return []string{taskPart(ev), "fires " + ev.FireAt.UTC().Format(timeLayout)}
	case history.TimerFired:
		return []string{taskPart(ev)}
	case history.SubOrchestrationInstanceCreated:
		return []string{taskPart(ev), ev.Name, "instance " + ev.InstanceID, jsonPart("input", ev.Input)}
	case history.EventSent:
		return []string{taskPart(ev), ev.Name, "to " + ev.InstanceID, jsonPart("data", ev.Input), "event ID " + ev.EventID}
	case history.PatchMarker:
		return []string{"patch " + ev.Name}
	case history.EventRaised:
		parts := []string{ev.Name, jsonPart("data", ev.Input)}
		if ev.EventID != "" {
			parts = append(parts, "event ID "+ev.EventID)
		}
		return parts
	}
	return []string{taskPart(ev), ev.Name, jsonPart("input", ev.Input), jsonPart("result", ev.Result), failurePart(ev), reasonPart(ev)}
}

// jsonPart is label and the (shortened) JSON value raw, or "" without one.
func jsonPart(label string, raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	return label + " " + Shorten(string(raw), maxShownInSummary)
}

// taskPart is the event's task ID.
func taskPart(ev history.Event) string {
	if ev.TaskID == 0 {
		return ""
	}
	return fmt.Sprintf("#%d", ev.TaskID)
}

// failurePart is the event's (shortened) failure, or "" without one.
func failurePart(ev history.Event) string {
	if ev.Failure == nil {
		return ""
	}
	return "failure " + Shorten(ev.Failure.Error(), maxShownInSummary)
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

// FormatTime writes t in UTC with how long ago (or how far ahead) it is; "-" for the zero time.
func FormatTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	rel := RoundDuration(d).String() + " ago"
	if d < 0 {
		rel = "in " + RoundDuration(-d).String()
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(timeLayout), rel)
}

// RoundDuration rounds d for people: to milliseconds below a second, seconds below an hour,
// else minutes.
func RoundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Hour:
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// Shorten cuts s to at most n bytes (on a character boundary), saying how long it was.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}
