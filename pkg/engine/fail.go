package engine

// Failing an instance that passes a limit (limits.go), or on a message it cannot take: a start that cannot be applied (not a valid
// start request, or its input and event data over the payload limit) or a poison message (taken
// PoisonAfter times and never applied: likely what stops the workers that take it). The message
// is dead-lettered with its reason and the instance fails with the same reason, so that no
// instance is left Pending with a start no worker will take, nor stuck behind a message that
// stops every worker.

import (
	"context"
	"encoding/json"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Failure types of instances failed by the engine rather than by their orchestrator.
const (
	FailurePoisonMessage   = "PoisonMessage"
	FailureInvalidStart    = "InvalidStart"
	FailurePayloadTooLarge = "PayloadTooLarge"
)

// failure is an instance failed in this turn.
type failure struct {
	kind, reason string
	// start is the start whose generation fails at once; nil when the running generation fails.
	start *backend.StartRequest
}

// failOn dead-letters m with reason and fails the instance with it, in a turn of its own: if
// the turn holds messages already, m waits for the next one. Either way the turn ends (false).
// The instance fails if m is the start it waits for (or, for an instance that does not exist,
// a start that would create it), or if it runs and m is not a start; otherwise m is only
// dead-lettered.
func (b *turnBuilder) failOn(m backend.WorkMessage, kind, reason string) bool {
	if b.applied > 0 {
		return false
	}
	b.deadLetter(kind, reason)
	f := &failure{kind: kind, reason: reason}
	switch {
	case m.Kind == backend.KindStart:
		// Only the start a generation waits for fails it; a stray start is dead-lettered.
		f.start = b.failingStart(m.Data)
		if f.start == nil {
			return false
		}
	case b.exec == nil:
		return false // nothing runs that could fail
	}
	b.failure = f
	return false
}

// failingStart decodes a start message that fails, if it creates a generation: the start the
// pending instance waits for, or one for an instance that does not exist. It returns nil
// otherwise, and for a message that does not decode.
func (b *turnBuilder) failingStart(data []byte) *backend.StartRequest {
	var req backend.StartRequest
	if json.Unmarshal(data, &req) != nil || req.Name == "" || req.InstanceID != b.id {
		return nil
	}
	s := b.state
	if s == nil || (s.Status == history.StatusPending && s.StartID == req.StartID) {
		return &req
	}
	return nil
}

// finishFailed completes the work item of a turn that fails the instance.
func (b *turnBuilder) finishFailed(ctx context.Context) error {
	f := b.failure
	fail := &history.Failure{Type: f.kind, Message: f.reason}
	s := backend.Instance{}
	if b.state != nil {
		s = *b.state
	}
	events := []history.Event{history.NewOrchestratorStarted(b.now)}
	if req := f.start; req != nil {
		input := req.Input
		if len(input) == 0 || f.kind == FailurePayloadTooLarge {
			input = json.RawMessage("null") // an oversize input is not stored
		}
		s.Generation++
		events = append(events, history.NewExecutionStarted(b.now, req.Name, input, s.Generation, req.Parent))
		s.ID, s.Name, s.Input, s.Parent, s.StartID, s.CreatedAt = b.id, req.Name, input, req.Parent, req.StartID, req.Time
		if s.CreatedAt.IsZero() {
			s.CreatedAt = b.now
		}
	}
	events = append(events, history.NewExecutionCompleted(b.now, history.StatusFailed, nil, fail))
	if f.start != nil {
		s.HistoryEvents = 0
	}
	s.HistoryEvents += len(events)
	s.Status, s.Output, s.Failure, s.Waiting, s.Warning, s.UpdatedAt = history.StatusFailed, nil, fail, nil, "", b.now
	c := &backend.OrchestrationCompletion{
		Applied: b.applied, DeadLetters: b.dead, NewGeneration: f.start != nil,
		Events: events, Messages: b.messages, State: s,
	}
	if s.Parent != nil {
		c.Messages = append(c.Messages, parentResult(&s))
	}
	b.closeExec()
	if _, err := b.w.b.CompleteOrchestrationWorkItem(ctx, b.item, c); err != nil {
		return err
	}
	b.committed(c, nil)
	b.w.log.Warn().Str(fieldInstance, b.id).Str("failure", f.kind).Str("reason", f.reason).Msg("instance failed by the engine")
	return nil
}
