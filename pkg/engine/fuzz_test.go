package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// FuzzMessageEvent feeds arbitrary instance messages (kind, event name, body, event ID, the
// running generation) to messageEvent, the message → history event rule of docs/wire.md
// section 6, and to the start message's event (validStartEvent, startEvent). It checks the rule
// for each kind, that a malformed message gets a reason (it is dead-lettered) and no event, and
// that every event it makes can be stored: it encodes to JSON and decodes to the same event.
func FuzzMessageEvent(f *testing.F) {
	add := func(kind backend.MessageKind, name string, body any, id string, gen uint64) {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(string(kind), name, b, id, gen)
	}
	add(backend.KindEvent, "Approval", []byte(`true`), "manager-1", 1)
	add(backend.KindEvent, "Approval", []byte(``), "", 1)
	add(backend.KindEvent, "Approval", []byte(`{"a":`), "", 1)
	add(backend.KindEvent, "x", []byte(`"<\xff>"`), "", 1)
	add(backend.KindResult, "", backend.TaskResult{Generation: 2, TaskID: 3, Result: json.RawMessage(`"ok"`)}, "", 2)
	add(backend.KindResult, "", backend.TaskResult{Generation: 2, TaskID: 3, Failure: &history.Failure{Type: "E", Message: "m"}, SubOrchestration: true}, "", 2)
	add(backend.KindResult, "", backend.TaskResult{Generation: 1, TaskID: 3}, "", 2)
	add(backend.KindResult, "", []byte(`{"generation":2,"taskId":0}`), "", 2)
	add(backend.KindTimer, "", backend.TimerFired{Generation: 5, TaskID: 1}, "", 5)
	add(backend.KindTimer, "", []byte(`{"taskId":-4}`), "", 0)
	add(backend.KindTerminate, "", backend.TerminateRequest{Reason: "enough"}, "", 1)
	add(backend.KindSuspend, "", []byte(`plain text reason`), "", 1)
	add(backend.KindResume, "", []byte(`null`), "", 1)
	add(backend.KindResume, "", []byte(`{"reason":5}`), "", 1)
	add(backend.KindStart, "", backend.StartRequest{InstanceID: "i", Name: "O", StartID: "s", Event: &backend.StartEvent{Name: "Go", Data: json.RawMessage(`1`), ID: "e"}}, "", 1)
	add(backend.KindStart, "", []byte(`{"name":"O","event":{"name":"","data":1}}`), "", 1)
	add("bogus", "", []byte(`{}`), "", 1)

	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, kind, name string, data []byte, msgID string, gen uint64) {
		if kind == string(backend.KindEvent) && history.CheckName("event name", name) != nil {
			return // backends deliver events with valid names only (they parse or check them)
		}
		m := backend.WorkMessage{Message: backend.Message{InstanceID: "i", Kind: backend.MessageKind(kind), EventName: name, Data: data, MsgID: msgID}, Deliveries: 1}
		ev, reason := messageEvent(now, m, func() uint64 { return gen })
		if ev != nil && reason != "" {
			t.Fatalf("messageEvent(%q, %q) gives both an event and the reason %q", kind, data, reason)
		}
		if ev != nil {
			checkStorable(t, ev)
		}
		switch backend.MessageKind(kind) {
		case backend.KindEvent:
			checkEvent(t, name, data, msgID, ev, reason)
		case backend.KindResult:
			checkResult(t, now, data, gen, ev, reason)
		case backend.KindTimer:
			checkTimer(t, now, data, gen, ev, reason)
		case backend.KindTerminate, backend.KindSuspend, backend.KindResume:
			checkControl(t, now, kind, data, ev, reason)
		case backend.KindStart:
			checkStartEvent(t, now, data)
			fallthrough // handled by the turn, not messageEvent
		default:
			if ev != nil || reason == "" {
				t.Fatalf("messageEvent of kind %q: event %+v, reason %q; want a reason and no event", kind, ev, reason)
			}
		}
	})
}

func checkEvent(t *testing.T, name string, data []byte, msgID string, ev *history.Event, reason string) {
	t.Helper()
	if len(data) > 0 && !json.Valid(data) {
		if reason == "" {
			t.Fatalf("event with data %q that is not JSON: no reason", data)
		}
		return
	}
	if ev == nil {
		t.Fatalf("event with data %q: no event (reason %q)", data, reason)
	}
	want := data
	if len(want) == 0 {
		want = []byte("null")
	}
	if ev.Type != history.EventRaised || ev.Name != name || ev.EventID != storedString(msgID) || !bytes.Equal(ev.Input, want) ||
		utf8.ValidString(msgID) && ev.EventID != msgID {
		t.Fatalf("event %q %q %q: got %+v", name, data, msgID, ev)
	}
}

func checkResult(t *testing.T, now time.Time, data []byte, gen uint64, ev *history.Event, reason string) {
	t.Helper()
	if ev == nil {
		return // malformed (with a reason) or stale (without); the encoding below checks both
	}
	r := backend.TaskResult{Generation: gen, TaskID: ev.TaskID, Result: ev.Result, Failure: ev.Failure}
	switch ev.Type {
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		if ev.Failure != nil {
			t.Fatalf("result %q: a completion with a failure: %+v", data, ev)
		}
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		if ev.Failure == nil {
			t.Fatalf("result %q: a failure without one: %+v", data, ev)
		}
	default:
		t.Fatalf("result %q: event type %q", data, ev.Type)
	}
	r.SubOrchestration = ev.Type == history.SubOrchestrationInstanceCompleted || ev.Type == history.SubOrchestrationInstanceFailed
	if ev.TaskID <= 0 {
		t.Fatalf("result %q: task ID %d", data, ev.TaskID)
	}
	// The result a sender would publish for this event gives the same event; of another
	// generation, none.
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	again, reason := resultEvent(now, body, func() uint64 { return gen })
	if again == nil || reason != "" {
		t.Fatalf("result %q re-encoded as %s: no event (reason %q)", data, body, reason)
	}
	sameEvent(t, ev, again)
	if stale, reason := resultEvent(now, body, func() uint64 { return gen + 1 }); stale != nil || reason != "" {
		t.Fatalf("result %s of generation %d applied to generation %d: %+v %q", body, gen, gen+1, stale, reason)
	}
}

func checkTimer(t *testing.T, now time.Time, data []byte, gen uint64, ev *history.Event, reason string) {
	t.Helper()
	var tf backend.TimerFired
	valid := json.Unmarshal(data, &tf) == nil && tf.TaskID > 0
	switch {
	case !valid && reason == "":
		t.Fatalf("timer %q is not a timer: no reason", data)
	case valid && tf.Generation != gen && (ev != nil || reason != ""):
		t.Fatalf("timer %q of generation %d applied to %d: %+v %q", data, tf.Generation, gen, ev, reason)
	case valid && tf.Generation == gen && (ev == nil || ev.Type != history.TimerFired || ev.TaskID != tf.TaskID || !ev.Timestamp.Equal(now)):
		t.Fatalf("timer %q: got %+v %q", data, ev, reason)
	}
}

// checkControl checks the reason of a terminate, suspend or resume: a TerminateRequest's, or
// the whole body if it is not such an object (docs/wire.md).
func checkControl(t *testing.T, now time.Time, kind string, data []byte, ev *history.Event, reason string) {
	t.Helper()
	want := map[string]history.EventType{"terminate": history.ExecutionTerminated, "suspend": history.ExecutionSuspended, "resume": history.ExecutionResumed}[kind]
	if ev == nil || ev.Type != want {
		t.Fatalf("%s %q: got %+v %q", kind, data, ev, reason)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var req backend.TerminateRequest
	if json.Valid(data) && len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(data, &req) == nil {
		if ev.Reason != req.Reason {
			t.Fatalf("%s %q: reason %q, want %q", kind, data, ev.Reason, req.Reason)
		}
	} else if ev.Reason != string(data) {
		t.Fatalf("%s %q is not a TerminateRequest object: reason %q, want the whole body", kind, data, ev.Reason)
	}
	// A TerminateRequest carrying this reason gives it back.
	body, err := json.Marshal(backend.TerminateRequest{Reason: ev.Reason})
	if err != nil {
		t.Fatal(err)
	}
	var back backend.TerminateRequest
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	if got := controlEvent(now, backend.MessageKind(kind), body); got.Reason != back.Reason {
		t.Fatalf("%s %s: reason %q, want %q", kind, body, got.Reason, back.Reason)
	}
}

// checkStartEvent decodes a start message and, if its event passes validStartEvent, checks the
// EventRaised made of it.
func checkStartEvent(t *testing.T, now time.Time, data []byte) {
	t.Helper()
	var req backend.StartRequest
	if json.Unmarshal(data, &req) != nil || req.Event == nil {
		return
	}
	if !validStartEvent(req.Event) {
		if history.CheckName("event name", req.Event.Name) == nil && json.Valid(req.Event.Data) {
			t.Fatalf("start %q: event refused with a valid name and JSON data", data)
		}
		return
	}
	ev := startEvent(now, req.Event)
	checkStorable(t, &ev)
	if ev.Type != history.EventRaised || ev.Name != req.Event.Name || ev.EventID != req.Event.ID || !json.Valid(ev.Input) {
		t.Fatalf("start %q: event %+v", data, ev)
	}
	if history.CheckName("event name", ev.Name) != nil {
		t.Fatalf("start %q: event name %q accepted", data, ev.Name)
	}
}

// checkStorable checks that ev encodes (as a turn record stores it) and decodes to the same
// event, its JSON values equal.
func checkStorable(t *testing.T, ev *history.Event) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("event %+v does not encode: %v", ev, err)
	}
	var back history.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("event %s does not decode: %v", b, err)
	}
	sameEvent(t, ev, &back)
}

func sameEvent(t *testing.T, a, b *history.Event) {
	t.Helper()
	if a.Type != b.Type || a.TaskID != b.TaskID || a.Name != b.Name || a.EventID != b.EventID ||
		!a.Timestamp.Equal(b.Timestamp) || !sameJSON(a.Input, b.Input) || !sameJSON(a.Result, b.Result) ||
		(a.Failure == nil) != (b.Failure == nil) {
		t.Fatalf("events differ:\n %+v\n %+v", a, b)
	}
}

// sameJSON reports whether a and b are the same JSON value (both absent counts).
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
