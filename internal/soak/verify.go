package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// verdict is what the checks found for one instance.
type verdict struct {
	ID        string
	Completed bool     // Completed with the expected output
	Lost      []string // why it did not complete as it should
	Double    []string // what its history holds more than once
	Excerpt   string   // its history in short, when something is wrong
	// Tasks are its activity tasks: task ID -> activity name.
	Tasks map[int]string
}

// verifyAll checks every instance with `workers` concurrent readers.
func verifyAll(ctx context.Context, client *engine.Client, plans []*plan, workers int) []*verdict {
	out := make([]*verdict, len(plans))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = verify(ctx, client, plans[i])
			}
		}()
	}
	for i := range plans {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// verify reads one instance's status and history and checks them against its plan.
func verify(ctx context.Context, client *engine.Client, p *plan) *verdict {
	v := &verdict{ID: p.ID, Tasks: map[int]string{}}
	s, err := client.GetStatus(ctx, p.ID)
	if err != nil {
		v.Lost = append(v.Lost, fmt.Sprintf("reading its status: %v", err))
		return v
	}
	switch {
	case s.Status != history.StatusCompleted:
		why := fmt.Sprintf("status %s", s.Status)
		if s.Failure != nil {
			why += ": " + s.Failure.Error()
		}
		v.Lost = append(v.Lost, why)
	case !p.outputMatches(s.Output):
		v.Lost = append(v.Lost, fmt.Sprintf("output %s, want %s", s.Output, p.Want))
	}
	h, err := client.GetHistory(ctx, p.ID)
	if err != nil {
		v.Lost = append(v.Lost, fmt.Sprintf("reading its history: %v", err))
		return v
	}
	checkHistory(v, p, h)
	v.Completed = len(v.Lost) == 0
	if len(v.Lost) > 0 || len(v.Double) > 0 {
		v.Excerpt = excerpt(h)
	}
	return v
}

// checkHistory finds what a history holds twice and which expected events it lacks.
func checkHistory(v *verdict, p *plan, h []history.Event) {
	counts := map[string]int{}
	for _, e := range h {
		var key string
		switch e.Type {
		case history.ExecutionStarted, history.ExecutionCompleted:
			key = string(e.Type)
		case history.TaskScheduled:
			v.Tasks[e.TaskID] = e.Name
			key = fmt.Sprintf("%s task %d", e.Type, e.TaskID)
		case history.TaskCompleted, history.TaskFailed, history.TimerFired:
			key = fmt.Sprintf("completion of task %d", e.TaskID)
		case history.TimerCreated:
			key = fmt.Sprintf("%s task %d", e.Type, e.TaskID)
		case history.EventRaised:
			key = fmt.Sprintf("%s %s id %q", e.Type, e.Name, e.EventID)
		default:
			continue
		}
		counts[key]++
		if counts[key] == 2 {
			v.Double = append(v.Double, key+" more than once")
		}
	}
	if counts[string(history.ExecutionStarted)] != 1 {
		v.Lost = append(v.Lost, fmt.Sprintf("%d ExecutionStarted", counts[string(history.ExecutionStarted)]))
	}
	want := map[string]bool{}
	for _, e := range p.Events {
		key := fmt.Sprintf("%s %s id %q", history.EventRaised, e.Name, e.ID)
		want[key] = true
		if counts[key] == 0 {
			v.Lost = append(v.Lost, fmt.Sprintf("event %s (%s, via %s) not in the history", e.ID, e.Name, e.Via))
		}
	}
	for key := range counts {
		if strings.HasPrefix(key, string(history.EventRaised)) && !want[key] {
			v.Double = append(v.Double, "an event never raised: "+key)
		}
	}
}

// excerpt renders a history on one line per event, without payloads over 60 bytes.
func excerpt(h []history.Event) string {
	var b strings.Builder
	for i, e := range h {
		fmt.Fprintf(&b, "    %2d %s %s", i, e.Timestamp.Format("15:04:05.000"), e.Type)
		if e.TaskID != 0 {
			fmt.Fprintf(&b, " task=%d", e.TaskID)
		}
		if e.Name != "" {
			fmt.Fprintf(&b, " name=%s", e.Name)
		}
		if e.EventID != "" {
			fmt.Fprintf(&b, " eventId=%s", e.EventID)
		}
		for _, raw := range [][]byte{e.Input, e.Result} {
			if len(raw) > 0 {
				fmt.Fprintf(&b, " %.60s", raw)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
