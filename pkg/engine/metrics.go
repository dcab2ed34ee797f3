package engine

// What a committed turn adds to the worker's counters and, with WithMetrics, to its metrics.

import (
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// committed records a turn that committed c; res is what the orchestrator did in it (nil when
// the engine failed the instance).
func (b *turnBuilder) committed(c *backend.OrchestrationCompletion, res *durable.TurnResult) {
	w := b.w
	w.stats.turns.Add(1)
	b.countDeadLetters()
	m := w.opts.metrics
	if m == nil {
		return
	}
	m.TurnCommitted(time.Since(b.began))
	started := b.start != nil || (b.failure != nil && b.failure.start != nil)
	if started {
		m.InstanceStarted()
	}
	if c.State.Status.IsTerminal() && (started || b.state == nil || !b.state.Status.IsTerminal()) {
		m.InstanceEnded(string(c.State.Status))
	}
	raised, fired := countEvents(c.Events)
	taken, _ := countEvents(b.events)
	buffered := 0
	if res != nil {
		buffered = res.Buffered
	}
	m.EventsRaised(raised, buffered)
	// An event the orchestrator left out of the history: an event ID it had seen, or one that
	// came after it ended in this turn.
	m.EventsDiscarded(metrics.DiscardIgnored, taken-raised)
	m.TimersFired(fired)
	timers := 0
	for _, a := range c.Actions {
		if a.Kind == history.ActionTimer {
			timers++
		}
	}
	m.TimersScheduled(timers)
}

// countEvents counts the raised events and the fired timers among evs.
func countEvents(evs []history.Event) (raised, fired int) {
	for _, ev := range evs {
		switch ev.Type {
		case history.EventRaised:
			raised++
		case history.TimerFired:
			fired++
		}
	}
	return raised, fired
}

// countDeadLetters records the turn's dead letters once they are committed.
func (b *turnBuilder) countDeadLetters() {
	b.w.stats.deadLettered.Add(uint64(len(b.dead)))
	for _, class := range b.deadClasses {
		b.w.opts.metrics.DeadLettered("inbox", class)
	}
}
