package engine

// What a turn sends to other instances on its orchestrator's behalf: the events it sent
// (OrchestrationContext.SendEvent) and, when it was terminated, the terminate of its running
// sub-orchestrations (recursive terminate, the default).

import (
	"bytes"
	"encoding/json"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// sentEvents takes the events the orchestrator sent out of actions: each becomes an event
// message to its instance, carrying the send's deterministic event ID (so a turn published again
// delivers it once). The other actions are returned for the backend. A sent event over the
// payload limit is dropped and logged: it could never be published.
func (b *turnBuilder) sentEvents(actions []history.Action) ([]history.Action, []backend.Message) {
	var msgs []backend.Message
	kept := actions[:0:0]
	for _, a := range actions {
		if a.Kind != history.ActionSendEvent {
			kept = append(kept, a)
			continue
		}
		if len(a.Input) > b.w.opts.maxPayload {
			b.w.log.Warn().Str(fieldInstance, b.id).Str(fieldEvent, a.Name).Str("target", a.InstanceID).
				Int("bytes", len(a.Input)).Msg("sent event dropped: its data is over the payload limit")
			continue
		}
		msgs = append(msgs, backend.Message{InstanceID: a.InstanceID, Kind: backend.KindEvent, EventName: a.Name, Data: a.Input, MsgID: a.EventID})
	}
	return kept, msgs
}

// noteTerminate records the terminate request m carries, for terminateChildren.
func (b *turnBuilder) noteTerminate(m backend.WorkMessage) {
	if m.Kind != backend.KindTerminate || b.terminate != nil {
		return
	}
	req := backend.TerminateRequest{Reason: requestReason(m.Data)}
	if t := bytes.TrimLeft(m.Data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var body backend.TerminateRequest
		if json.Unmarshal(m.Data, &body) == nil {
			req.Recursive = body.Recursive
		}
	}
	b.terminate = &req
}

// terminateChildren returns the terminate messages for the running sub-orchestrations of an
// instance that this turn terminated, unless the terminate asked not to recurse. Each child does
// the same with its own children.
func (b *turnBuilder) terminateChildren(x execution) []backend.Message {
	if b.terminate == nil || !b.terminate.IsRecursive() || x.res.Status != history.StatusTerminated {
		return nil
	}
	children := x.exec.RunningSubOrchestrations()
	if len(children) == 0 {
		return nil
	}
	data, _ := json.Marshal(backend.TerminateRequest{Reason: b.terminate.Reason})
	msgs := make([]backend.Message, len(children))
	for i, child := range children {
		msgs[i] = backend.Message{InstanceID: child, Kind: backend.KindTerminate, Data: data}
	}
	return msgs
}
