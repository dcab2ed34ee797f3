package engine

// Message → history event: what a worker makes of each instance message (docs/wire.md, "message
// to event").

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// messageEvent converts an event, result, timer, terminate, suspend or resume message into the
// history event it adds at time now. It returns a reason when the message is malformed (it is
// dead-lettered), and neither event nor reason for a result or timer of another generation
// than generation() (stale: dropped).
func messageEvent(now time.Time, m backend.WorkMessage, generation func() uint64) (*history.Event, string) {
	switch m.Kind {
	case backend.KindEvent:
		data := m.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		if !json.Valid(data) {
			return nil, fmt.Sprintf("data of event %q is not valid JSON", m.EventName)
		}
		ev := history.NewEventRaised(now, m.EventName, data, storedString(m.MsgID))
		return &ev, ""
	case backend.KindResult:
		return resultEvent(now, m.Data, generation)
	case backend.KindTimer:
		var t backend.TimerFired
		if err := json.Unmarshal(m.Data, &t); err != nil || t.TaskID <= 0 {
			return nil, "timer message is not a valid timer"
		}
		if t.Generation != generation() {
			return nil, ""
		}
		ev := history.NewTimerFired(now, t.TaskID)
		return &ev, ""
	case backend.KindTerminate, backend.KindSuspend, backend.KindResume:
		ev := controlEvent(now, m.Kind, m.Data)
		return &ev, ""
	}
	return nil, fmt.Sprintf("unknown message kind %q", m.Kind)
}

// resultEvent decodes a TaskResult into the completion or failure of an activity or a
// sub-orchestration.
func resultEvent(now time.Time, data []byte, generation func() uint64) (*history.Event, string) {
	var r backend.TaskResult
	if err := json.Unmarshal(data, &r); err != nil || r.TaskID <= 0 {
		return nil, "result message is not a valid task result"
	}
	if r.Generation != generation() {
		return nil, ""
	}
	var ev history.Event
	switch {
	case r.SubOrchestration && r.Failure != nil:
		ev = history.NewSubOrchestrationFailed(now, r.TaskID, r.Failure)
	case r.SubOrchestration:
		ev = history.NewSubOrchestrationCompleted(now, r.TaskID, r.Result)
	case r.Failure != nil:
		ev = history.NewTaskFailed(now, r.TaskID, r.Failure)
	default:
		ev = history.NewTaskCompleted(now, r.TaskID, r.Result)
	}
	return &ev, ""
}

// requestReason is the reason carried by the body of a terminate, suspend, resume or rewind
// message: a TerminateRequest object's, or else the whole body as plain text. Only a JSON object
// is read as a TerminateRequest: a body such as `null` is a reason of its own.
func requestReason(data []byte) string {
	var req backend.TerminateRequest
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' && json.Unmarshal(data, &req) == nil {
		return req.Reason
	}
	return string(data)
}

// controlEvent is the event of a terminate, suspend or resume message; its body is a
// TerminateRequest, or else the reason as plain text.
func controlEvent(now time.Time, kind backend.MessageKind, data []byte) history.Event {
	reason := requestReason(data)
	switch kind {
	case backend.KindTerminate:
		return history.NewExecutionTerminated(now, reason)
	case backend.KindSuspend:
		return history.NewExecutionSuspended(now, reason)
	}
	return history.NewExecutionResumed(now, reason)
}

// storedString returns s as it reads back from a stored history: JSON encoding writes each byte
// of s that is not valid UTF-8 as U+FFFD. An event ID comes from a header, which may hold any
// bytes; the executor deduplicates by the IDs of the events it applies, so an ID must be the
// same in the event applied now and in the one replayed from storage later (else a worker that
// replays the history could apply a repeated event again, or drop an event it applied before).
func storedString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:]) // (RuneError, 1) for each invalid byte
		b.WriteRune(r)
		i += size
	}
	return b.String()
}
