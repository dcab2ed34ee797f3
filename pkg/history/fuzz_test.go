package history

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeEvent decodes arbitrary bytes as the JSON of a history event, a task (Action) and a
// Waiting, as the stores read them back. Whatever decodes must encode again (a record that was
// read can always be written), and encoding is a fixed point: decoding what was encoded and
// encoding it again gives the same bytes, with the same type, task and times.
func FuzzDecodeEvent(f *testing.F) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	seeds := []any{
		NewExecutionStarted(now, "Approval", json.RawMessage(`{"amountCents":500}`), 3, &ParentRef{InstanceID: "p", Generation: 1, TaskID: 2, Rewind: 1}),
		NewTaskScheduled(now, 1, "Reserve", json.RawMessage(`"x"`)),
		NewTaskFailed(now, 2, &Failure{Type: "ValueError", Message: "no", Stack: "at x"}),
		NewTimerCreated(now, 3, now.Add(time.Hour)),
		NewExecutionRewound(now, "fixed", []int{1, 2}),
		NewEventRaised(now, "Approval", json.RawMessage(`true`), "manager-1"),
		NewExecutionCompleted(now, StatusFailed, nil, &Failure{Message: "boom"}),
		Action{Kind: ActionTimer, TaskID: 4, FireAt: now, Rewind: 2},
		Action{Kind: ActionSubOrchestration, TaskID: 5, Name: "Child", InstanceID: "c 1", Input: json.RawMessage(`[1,2]`)},
		Waiting{Events: []string{"Approval"}, Timers: []time.Time{now}, Activities: []string{"Pay"}},
	}
	for _, s := range seeds {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"type":"TaskCompleted","ts":"2026-01-02T03:04:05+23:59","taskId":-1}`,
		`{"ts":"0000-01-01T00:00:00-01:00"}`, `{"input":  [ 1 , 2 ] ,"result":"\u003c\ud800"}`,
		`{"failure":null,"parent":{},"taskIds":[1e2]}`, `{"fireAt":"9999-12-31T23:59:59.999999999Z"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip[Event](t, data, func(a, b *Event) bool {
			return a.Type == b.Type && a.TaskID == b.TaskID && a.Timestamp.Equal(b.Timestamp) && a.FireAt.Equal(b.FireAt)
		})
		roundTrip[Action](t, data, func(a, b *Action) bool {
			return a.Kind == b.Kind && a.TaskID == b.TaskID && a.FireAt.Equal(b.FireAt) && a.Rewind == b.Rewind
		})
		roundTrip[Waiting](t, data, func(a, b *Waiting) bool {
			return a.IsEmpty() == b.IsEmpty() && len(a.Timers) == len(b.Timers)
		})
		var e Event
		if json.Unmarshal(data, &e) == nil && e.Failure != nil {
			if msg := e.Failure.Error(); e.Failure.Type == "" && msg != e.Failure.Message {
				t.Fatalf("Failure.Error() = %q, want the message %q", msg, e.Failure.Message)
			}
		}
	})
}

// roundTrip checks that a T decoded from data encodes, decodes again to the same (same says
// how, besides the bytes), and encodes to the same bytes.
func roundTrip[T any](t *testing.T, data []byte, same func(a, b *T) bool) {
	t.Helper()
	var v1 T
	if json.Unmarshal(data, &v1) != nil {
		return
	}
	b1, err := json.Marshal(&v1)
	if err != nil {
		t.Fatalf("%T decoded from %q does not encode: %v", v1, data, err)
	}
	var v2 T
	if err := json.Unmarshal(b1, &v2); err != nil {
		t.Fatalf("%T: its own encoding %q does not decode: %v", v1, b1, err)
	}
	b2, err := json.Marshal(&v2)
	if err != nil {
		t.Fatalf("%T: %q decoded and does not encode again: %v", v1, b1, err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("%T is not stable through a round trip:\n input  %q\n first  %s\n second %s", v1, data, b1, b2)
	}
	if !same(&v1, &v2) {
		t.Fatalf("%T changed through a round trip of %q: %+v became %+v", v1, data, v1, v2)
	}
}
