package timeline

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// WriteText writes the timeline for a terminal: every event a line (its time, its offset from
// the first event, its type and summary), then the activities with their attempts, the
// timers, the raised events and the sub-orchestrations. now words times as "ago" / "in".
func (tl *Timeline) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "history (%d events, %d turns)\n", len(tl.Entries), len(tl.Turns))
	for _, e := range tl.Entries {
		fmt.Fprintf(tw, "  %s\t+%s\t%s\t%s\n", e.Time.UTC().Format("15:04:05.000"),
			RoundDuration(time.Duration(e.Offset)), e.Type, e.Summary)
	}
	if len(tl.Activities) > 0 {
		fmt.Fprintf(tw, "\nactivities (%d)\n", len(tl.Activities))
		for _, a := range tl.Activities {
			for n, at := range a.Attempts {
				fmt.Fprintf(tw, "  #%d\t%s\tattempt %d\t%s\n", at.TaskID, a.Name, n+1, describeAttempt(at))
			}
		}
	}
	if len(tl.Timers) > 0 {
		fmt.Fprintf(tw, "\ntimers (%d)\n", len(tl.Timers))
		for _, t := range tl.Timers {
			fmt.Fprintf(tw, "  #%d\tturn %d\t%s\n", t.TaskID, t.Turn, describeTimer(t, now))
		}
	}
	if len(tl.Events) > 0 {
		fmt.Fprintf(tw, "\nevents raised (%d)\n", len(tl.Events))
		for _, e := range tl.Events {
			consumed := "not consumed yet"
			if e.ConsumedTurn > 0 {
				consumed = fmt.Sprintf("consumed in turn %d", e.ConsumedTurn)
			}
			fmt.Fprintf(tw, "  %s\tarrived %s (turn %d)\t%s\n", e.Name, e.ArrivedAt.UTC().Format("15:04:05.000"), e.Turn, consumed)
		}
	}
	if len(tl.SubOrchestrations) > 0 {
		fmt.Fprintf(tw, "\nsub-orchestrations (%d)\n", len(tl.SubOrchestrations))
		for _, s := range tl.SubOrchestrations {
			fmt.Fprintf(tw, "  #%d\t%s\tinstance %s\t%s\n", s.TaskID, s.Name, s.InstanceID,
				describeEnd(s.Outcome, s.Duration, s.Failure))
		}
	}
	return tw.Flush()
}

// describeAttempt is an attempt's outcome, duration and how it came about.
func describeAttempt(at Attempt) string {
	parts := []string{describeEnd(at.Outcome, at.Duration, at.Failure)}
	if at.RetryTimer != 0 {
		parts = append(parts, fmt.Sprintf("retried after timer #%d", at.RetryTimer))
	}
	if at.Rewound {
		parts = append(parts, "rewound")
	}
	return strings.Join(parts, ", ")
}

// describeEnd is an outcome with its duration and failure, if any.
func describeEnd(o Outcome, d Duration, failure *history.Failure) string {
	s := string(o)
	if o != Pending {
		s += " in " + RoundDuration(time.Duration(d)).String()
	}
	if failure != nil {
		s += ": " + Shorten(failure.Error(), maxShownInSummary)
	}
	return s
}

// describeTimer is when a timer fires or fired, and what it was for when known.
func describeTimer(t Timer, now time.Time) string {
	s := "fires " + FormatTime(t.FireAt, now)
	if t.Outcome == Fired {
		s = fmt.Sprintf("fired %s (turn %d)", t.FiredAt.UTC().Format("15:04:05.000"), t.FiredTurn)
	}
	if t.RetryOf != 0 {
		s += fmt.Sprintf(", delayed the retry of #%d", t.RetryOf)
	}
	return s
}
