package engine

// Limits on what one instance may grow to: its history (per generation) and the tasks it waits
// for at once. Each is a worker option with its default in options.go; the limits on data
// (payload, custom status, names) are in pkg/backend/limits.go.

import (
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Failure types of instances failed for passing a limit.
const (
	FailureHistoryTooLong      = "HistoryTooLong"
	FailureTooManyPendingTasks = "TooManyPendingTasks"
)

// historyWarnPercent is the share of the history limit from which the instance is warned about.
const historyWarnPercent = 80

// historyWarning returns the warning for a history of n events under limit, "" below
// historyWarnPercent of it.
func historyWarning(n, limit int) string {
	if n*100 < limit*historyWarnPercent {
		return ""
	}
	return fmt.Sprintf("the history holds %d events, %d%% of the limit of %d: continue as new (ContinueAsNew) to start a fresh history before the instance fails",
		n, n*100/limit, limit)
}

// pendingTasks counts what w waits for: activities, timers and sub-orchestrations.
func pendingTasks(w history.Waiting) int {
	return len(w.Activities) + len(w.Timers) + len(w.SubOrchestrations)
}

// checkLimits returns the failure of a turn whose instance would pass a limit with events
// events in its history and pending tasks waited for, nil if it passes none.
func (b *turnBuilder) checkLimits(events, pending int) *failure {
	o := b.w.opts
	if events > o.maxHistory {
		return &failure{kind: FailureHistoryTooLong, reason: fmt.Sprintf(
			"the history would hold %d events, more than the limit of %d: continue as new (ContinueAsNew) before it grows this long", events, o.maxHistory)}
	}
	if pending > o.maxPending {
		return &failure{kind: FailureTooManyPendingTasks, reason: fmt.Sprintf(
			"the instance would wait for %d tasks at once, more than the limit of %d", pending, o.maxPending)}
	}
	return nil
}

// warn sets the warning of the instance's next state s and logs it when it is new.
func (b *turnBuilder) warn(s *backend.Instance) {
	s.Warning = ""
	if !s.Status.IsTerminal() {
		s.Warning = historyWarning(s.HistoryEvents, b.w.opts.maxHistory)
	}
	if s.Warning != "" && (b.state == nil || b.state.Warning == "") {
		b.w.log.Warn().Str(fieldInstance, b.id).Int("events", s.HistoryEvents).Msg(s.Warning)
	}
}
