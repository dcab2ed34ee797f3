package engine

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// Rewind brings a failed instance back to Running: the failures of the activities and
// sub-orchestrations that made its orchestrator fail no longer count, those tasks run again (as
// does every task whose result the failed instance discarded), and the orchestrator carries on
// from where it was blocked, with the rest of its history kept. A failure of the orchestrator's
// own (an error it returned, a panic) replays as it was and fails the instance again, unless
// the orchestrator's code has been fixed meanwhile. See durable.PrepareRewind.
//
// It returns ErrInstanceNotFound, ErrInstanceEnded for an instance that completed or was
// terminated, and ErrInstanceNotFailed for one that is pending, running or suspended. The
// rewind is queued: the instance is Running once a worker has applied it.
//
// A failed sub-orchestration of the rewound instance is started again from scratch under its
// instance ID, which fails (as "already exists") if it is still running. Rewinding a
// sub-orchestration itself does not report to its parent again: rewind the parent instead.
// Timers that should have fired meanwhile fire at once.
func (c *Client) Rewind(ctx context.Context, id, reason string) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanRewind, id)
	defer func() { tracing.End(span, err) }()
	s, err := c.b.GetInstance(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case s.Status == history.StatusFailed:
	case s.Status.IsTerminal():
		return &statusError{id: id, op: "rewinding", status: s.Status, err: ErrInstanceEnded}
	default:
		return &statusError{id: id, op: "rewinding", status: s.Status, err: ErrInstanceNotFailed}
	}
	data, _ := json.Marshal(backend.TerminateRequest{Reason: reason})
	return c.b.Send(ctx, backend.Message{InstanceID: id, Kind: backend.KindRewind, Data: data})
}

// statusError reports an operation that the instance's status does not allow.
type statusError struct {
	id     string
	op     string
	status history.RuntimeStatus
	err    error
}

func (e *statusError) Error() string {
	return e.op + " " + strconv.Quote(e.id) + ": " + e.err.Error() + " (status " + string(e.status) + ")"
}

func (e *statusError) Unwrap() error { return e.err }

// addRewind takes a rewind message into the turn. A rewind applies to a failed instance only,
// in a turn of its own making: the generation's history is read and replayed without the
// failures the rewind disregards, and the rewind event goes first into the turn. A rewind for an
// instance that is not failed (a second rewind, one that raced a restart) is discarded.
func (b *turnBuilder) addRewind(ctx context.Context, m backend.WorkMessage) bool {
	w := b.w
	log := w.log.With().Str(fieldInstance, b.id).Logger()
	s := b.state
	if b.start != nil || b.exec != nil || s == nil || s.Status != history.StatusFailed {
		status := "does not exist"
		switch {
		case b.start != nil:
			status = "is starting"
		case s != nil:
			status = "is " + string(s.Status)
		}
		log.Info().Msg("rewind discarded: the instance " + status)
		w.stats.discarded.Add(1)
		b.applied++
		return true
	}
	past, err := w.b.OrchestrationHistory(ctx, b.item)
	if err != nil {
		b.err = err
		return false
	}
	if len(past) == 0 {
		log.Warn().Msg("rewind discarded: the failed instance has no history")
		w.stats.discarded.Add(1)
		b.applied++
		return true
	}
	exec, ev, err := durable.PrepareRewind(w.reg, b.id, log, past, b.now, requestReason(m.Data))
	if err != nil {
		log.Error().Err(err).Msg("replay for the rewind failed; the instance fails again")
	}
	b.exec = exec
	b.events = append(b.events, ev)
	b.applied++
	log.Info().Ints("tasks", ev.TaskIDs).Msg("rewinding")
	return true
}
