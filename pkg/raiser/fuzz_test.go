package raiser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// fakeMsg is a queue message: what parse reads of a jetstream.Msg.
type fakeMsg struct {
	jetstream.Msg // nil: parse must not settle the message
	data          []byte
	headers       nats.Header
}

func (m *fakeMsg) Data() []byte         { return m.data }
func (m *fakeMsg) Headers() nats.Header { return m.headers }
func (m *fakeMsg) Subject() string      { return "q" }

// pendingID is the instance the fuzzed messages can raise on.
const pendingID = "pending-1"

// FuzzParse parses arbitrary queue messages (body, Jetflow-Event-Id and Nats-Msg-Id headers) of
// a queue with an arbitrary event and data (instance-ID bodies) or none (notification bodies),
// then raises what parses through a real engine client on the in-memory backend, as the raiser
// does. A queue configuration that Validate accepts has an event name that can be raised. A
// message parses to exactly what it says (the trimmed instance ID, or the notification's fields
// with eventData defaulting to null; the event ID from the headers, else <stream>:<seq>), or is
// refused as unraisable; and whatever the message, the outcome is never "try again": a message
// that cannot be raised is dead-lettered, not redelivered for ever. One naming the pending
// instance and a valid event name is raised, with its data.
func FuzzParse(f *testing.F) {
	f.Add([]byte(pendingID), "", "", "Approval", []byte(`true`))
	f.Add([]byte("  "+pendingID+"\n"), "e-1", "m-1", "Approval", []byte(``))
	f.Add([]byte(``), "", "", "Approval", []byte(`true`))
	f.Add([]byte("\xff"), "", "", "Approval", []byte(`1`))
	f.Add([]byte(`{"instanceId": "pending-1", "eventName": "Event2", "eventData": {"a": [1]}}`), "", "m-1", "", []byte(nil))
	f.Add([]byte(`{"instanceId": "pending-1", "eventName": "Event2"}`), "", "", "", []byte(nil))
	f.Add([]byte(`{"instanceId": "missing", "eventName": "E", "eventData": null}`), "", "", "", []byte(nil))
	f.Add([]byte(`{"instanceId": "pending-1", "eventName": "a\u0000b"}`), "", "", "", []byte(nil))
	f.Add([]byte(`{"instanceId": 1}`), "", "", "", []byte(nil))
	f.Add([]byte(`[]`), "", "", "", []byte(nil))
	f.Add([]byte(pendingID), "", "", strings.Repeat("e", 257), []byte(nil))
	f.Add([]byte(pendingID), "", "", "Approval", []byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte, eventHdr, msgIDHdr, queueEvent string, queueData []byte) {
		cfg, err := Config{Queues: []Queue{{Name: "q", Event: queueEvent, Data: queueData}}}.withDefaults()
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("config error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		q := cfg.Queues[0]
		if q.Event != "" {
			if err := history.CheckName("event name", q.Event); err != nil {
				t.Fatalf("Validate accepts queue event %q, which can never be raised: %v", q.Event, err)
			}
			if !json.Valid(q.Data) {
				t.Fatalf("Validate accepts queue data %q", q.Data)
			}
		}
		h := nats.Header{}
		if eventHdr != "" {
			h.Set(backend.HeaderEventID, eventHdr)
		}
		if msgIDHdr != "" {
			h.Set(backend.HeaderMsgID, msgIDHdr)
		}
		meta := &jetstream.MsgMetadata{Stream: "QUEUES", Sequence: jetstream.SequencePair{Stream: 7}}
		ev, err := parse(q, &fakeMsg{data: body, headers: h}, meta)
		if err != nil {
			var perm *permanentError
			if !errors.As(err, &perm) || perm.reason == "" || outcomeOf(err) != unraisable {
				t.Fatalf("parse(%q): error %v is not a permanent one with a reason", body, err)
			}
		} else {
			checkParsed(t, q, body, eventHdr, msgIDHdr, ev)
		}
		if !utf8.Valid(body) && err == nil {
			t.Fatalf("parse(%q): body that is not UTF-8 accepted", body)
		}
		if err != nil {
			return
		}

		b := memory.New()
		defer b.Close()
		client := engine.NewClient(b)
		ctx := context.Background()
		if _, err := client.ScheduleNew(ctx, "Orch", engine.WithInstanceID(pendingID)); err != nil {
			t.Fatal(err)
		}
		err = client.RaiseEvent(ctx, ev.instanceID, ev.name, ev.data, engine.WithEventID(ev.id))
		if o := outcomeOf(err); o == transient {
			t.Fatalf("raising %+v: %v would be retried for ever", ev, err)
		}
		if ev.instanceID == pendingID && history.CheckName("event name", ev.name) == nil {
			if err != nil {
				t.Fatalf("raising %+v on the pending instance: %v", ev, err)
			}
			m := lastEvent(t, b)
			if m.EventName != ev.name || m.MsgID != ev.id || !sameJSON(m.Data, ev.data) {
				t.Fatalf("raising %+v: queued %+v", ev, m)
			}
		}
	})
}

// checkParsed checks what parse made of body against what the queue and the body say.
func checkParsed(t *testing.T, q Queue, body []byte, eventHdr, msgIDHdr string, ev event) {
	t.Helper()
	wantID := eventHdr
	if wantID == "" {
		wantID = msgIDHdr
	}
	if wantID == "" {
		wantID = "QUEUES:7"
	}
	if ev.id != wantID {
		t.Fatalf("parse(%q): event ID %q, want %q", body, ev.id, wantID)
	}
	if !json.Valid(ev.data) {
		t.Fatalf("parse(%q): data %q is not JSON", body, ev.data)
	}
	if q.Event != "" {
		if ev.instanceID != strings.TrimSpace(string(body)) || ev.instanceID == "" || ev.name != q.Event || !bytes.Equal(ev.data, q.Data) {
			t.Fatalf("parse(%q) on queue %+v: %+v", body, q, ev)
		}
		return
	}
	var n map[string]any
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatalf("parse(%q): accepted a notification that is not a JSON object: %v", body, err)
	}
	// Field names match case-insensitively; the checks below use the parsed values.
	var fields struct {
		InstanceID string          `json:"instanceId"`
		EventName  string          `json:"eventName"`
		EventData  json.RawMessage `json:"eventData"`
	}
	_ = json.Unmarshal(body, &fields)
	wantData := fields.EventData
	if len(wantData) == 0 {
		wantData = json.RawMessage("null")
	}
	if ev.instanceID == "" || ev.name == "" || ev.instanceID != fields.InstanceID || ev.name != fields.EventName || !sameJSON(ev.data, wantData) {
		t.Fatalf("parse(%q): %+v", body, ev)
	}
}

// lastEvent returns the last message queued for the pending instance.
func lastEvent(t *testing.T, b *memory.Backend) backend.WorkMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	item, err := b.NextOrchestrationWorkItem(ctx)
	if err != nil || item.InstanceID != pendingID || len(item.Messages) < 2 {
		t.Fatalf("work item %+v, %v; want the pending instance's start and event", item, err)
	}
	return item.Messages[len(item.Messages)-1]
}

func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
