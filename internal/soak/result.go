package soak

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Result is what a soak run found.
type Result struct {
	N            int
	Verdicts     []*verdict
	StillRunning int // instances not ended when the settle period ran out
	Activities   activityCounts
	DeadLetters  deadLetterCheck
	BadSent      int
	BadHTTP      []string // bad HTTP requests not answered 400
	SendErrors   []string
	Sent         [channels]int64
	Retries      int64
	Resent       int64
	ResentDup    int64 // resends the stream dropped: it had the first publish
	Gone         int64
	Chaos        *chaos
	Crashes      []string // runs of processes that exited on their own (each restarted)
	Duration     time.Duration
}

// counts returns the instances completed as planned, lost and double-applied.
func (r *Result) counts() (completed, lost, double int) {
	for _, v := range r.Verdicts {
		if v.Completed {
			completed++
		}
		if len(v.Lost) > 0 {
			lost++
		}
		if len(v.Double) > 0 {
			double++
		}
	}
	return completed, lost, double
}

// DupRate is the activity duplicates as a percentage of the activity tasks.
func (r *Result) DupRate() float64 {
	if r.Activities.Tasks == 0 {
		return 0
	}
	return 100 * float64(r.Activities.Duplicates) / float64(r.Activities.Tasks)
}

// LastLine is the run's verdict in one line.
func (r *Result) LastLine() string {
	completed, lost, double := r.counts()
	return fmt.Sprintf("soak: %d/%d completed, %d lost, %d double-applied, activity duplicates %d (%.1f%%), dead letters %d",
		completed, r.N, lost, double, r.Activities.Duplicates, r.DupRate(), r.DeadLetters.Count())
}

// OK reports whether the run passed: everything completed once, no unexpected dead letter, no
// bad HTTP request accepted and no process exited on its own.
func (r *Result) OK() bool {
	completed, lost, double := r.counts()
	return completed == r.N && lost == 0 && double == 0 && r.DeadLetters.Count() == 0 &&
		len(r.BadHTTP) == 0 && len(r.Crashes) == 0
}

// maxListed bounds the instances and dead letters listed in the report.
const maxListed = 10

// Report writes the details: faults, traffic, activity counts, and what went wrong.
func (r *Result) Report(w io.Writer) {
	x := r.Chaos
	fmt.Fprintf(w, "soak: faults: %d worker SIGKILLs, %d NATS server restarts, %d SIGSTOPs past the lease; %d partitions taken over from silent workers\n",
		x.kills, x.restarts, x.stops, r.Activities.Takeovers)
	for _, e := range x.errs {
		fmt.Fprintf(w, "soak: fault injection error: %s\n", e)
	}
	var via []string
	for ch := range channels {
		via = append(via, fmt.Sprintf("%s %d", ch, r.Sent[ch]))
	}
	fmt.Fprintf(w, "soak: events sent: %s; confirmed sends retried %d, HTTP retries answered 410 %d, core publishes resent %d (%d of them still in the stream)\n",
		strings.Join(via, ", "), r.Retries, r.Gone, r.Resent, r.ResentDup)
	a := r.Activities
	fmt.Fprintf(w, "soak: activities: %d tasks in the histories, %d executions logged by the workers, %d duplicates, %d tasks without a logged execution, %d executions of unknown tasks, %d torn log lines\n",
		a.Tasks, a.Executions, a.Duplicates, a.Unlogged, a.Stray, a.Torn)
	dl := r.DeadLetters
	fmt.Fprintf(w, "soak: dead letters: %d, %d from the %d deliberate bad inputs, %d unexpected, %d deliberate ones missing\n",
		dl.Total, dl.Deliberate, r.BadSent, len(dl.Unexpected), len(dl.Missing))
	list(w, "unexpected dead letter", dl.Unexpected)
	list(w, "deliberate bad input without its dead letter", dl.Missing)
	list(w, "bad HTTP request not answered 400", r.BadHTTP)
	list(w, "send failed", r.SendErrors)
	list(w, "FAIL: a process exited on its own (restarted a second later)", r.Crashes)
	if r.StillRunning > 0 {
		fmt.Fprintf(w, "soak: %d instances had not ended when the settle time ran out\n", r.StillRunning)
	}
	r.reportVerdicts(w)
	fmt.Fprintf(w, "soak: took %s\n", r.Duration.Round(time.Second))
}

// reportVerdicts lists the first instances lost or double-applied, with their histories.
func (r *Result) reportVerdicts(w io.Writer) {
	n := 0
	for _, v := range r.Verdicts {
		if len(v.Lost) == 0 && len(v.Double) == 0 {
			continue
		}
		if n++; n > maxListed {
			continue
		}
		fmt.Fprintf(w, "soak: instance %s: lost: %s; double: %s; history:\n%s", v.ID,
			strings.Join(v.Lost, "; "), strings.Join(v.Double, "; "), v.Excerpt)
	}
	if n > maxListed {
		fmt.Fprintf(w, "soak: ... and %d more instances with problems\n", n-maxListed)
	}
	if x := r.Chaos; n > 0 && x != nil {
		fmt.Fprintf(w, "soak: fault timeline:\n    %s\n", strings.Join(x.timeline, "\n    "))
	}
}

// list writes up to maxListed items under a label.
func list(w io.Writer, label string, items []string) {
	for i, it := range items {
		if i == maxListed {
			fmt.Fprintf(w, "soak: ... %d more\n", len(items)-maxListed)
			return
		}
		fmt.Fprintf(w, "soak: %s: %s\n", label, it)
	}
}
