package natsjs

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// FuzzDecodeRecord decodes arbitrary bytes as an instance record of the history stream, with
// decodeRecord (the whole record) and decodeState (its state only, the fast path of state
// reads). They must agree: a record that decodes has a state that decodes to the same, with the
// revision, first sequence and update time the record gives it. A decoded record encodes again
// (a turn is stored with json.Marshal) and that encoding decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	pending := pendingRecord(nil, backend.StartRequest{InstanceID: "order 42", Name: "Approval", Input: json.RawMessage(`{"a":1}`), StartID: "s1", Time: now})
	turn := &turnRecord{
		Reset:        true,
		Events:       []history.Event{history.NewExecutionStarted(now, "Approval", json.RawMessage(`1`), 2, nil), history.NewTaskScheduled(now, 1, "Pay", nil)},
		Actions:      []history.Action{{Kind: history.ActionActivity, TaskID: 1, Name: "Pay"}, {Kind: history.ActionTimer, TaskID: 2, FireAt: now}},
		Messages:     []backend.Message{{InstanceID: "parent", Kind: backend.KindResult, Data: []byte(`{"generation":1,"taskId":3}`)}},
		PrevFirstSeq: 7,
		State: storedState{Instance: backend.Instance{ID: "order 42", Name: "Approval", Status: history.StatusRunning, CreatedAt: now, UpdatedAt: now.Add(time.Second),
			Waiting: &history.Waiting{Activities: []string{"Pay"}}, Generation: 2, StartID: "s2"}, FirstSeq: 9, Turn: 4, LastSeq: 30},
	}
	for _, r := range []*turnRecord{pending, turn} {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(12))
	}
	for _, s := range []string{`{}`, `null`, `{"state":null}`, `{"reset":true,"state":{"createdTime":"2026-01-01T00:00:00Z"}}`,
		`{"events":1,"state":{}}`, `{"state":{"lastUpdatedTime":"2026-01-01T00:00:00+01:00","firstSeq":-1}}`} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, seq uint64) {
		rec, rerr := decodeRecord(data, seq)
		st, serr := decodeState(data, seq)
		if serr != nil {
			if rerr == nil {
				t.Fatalf("decodeState(%q) fails (%v) where decodeRecord succeeds", data, serr)
			}
			return
		}
		checkFilled(t, "decodeState", data, st, seq)
		if rerr != nil {
			return // decodeState does not look at events and tasks
		}
		checkFilled(t, "decodeRecord", data, &rec.State, seq)
		if rec.InstanceID != rec.State.ID || rec.Number != rec.State.Turn || rec.LastSeq != rec.State.LastSeq || rec.Generation != rec.State.Generation {
			t.Fatalf("decodeRecord(%q): record fields %q %d %d %d differ from its state's", data, rec.InstanceID, rec.Number, rec.LastSeq, rec.Generation)
		}
		if a, b := mustMarshal(t, st), mustMarshal(t, &rec.State); !bytes.Equal(a, b) || st.Revision != rec.State.Revision || st.FirstSeq != rec.State.FirstSeq {
			t.Fatalf("decodeState and decodeRecord disagree on %q:\n %s (revision %d)\n %s (revision %d)", data, a, st.Revision, b, rec.State.Revision)
		}
		if got := st.instance(); got.Version != st.Turn {
			t.Fatalf("instance().Version = %d, want the turn %d", got.Version, st.Turn)
		}
		b1 := mustMarshal(t, rec)
		rec2, err := decodeRecord(b1, seq)
		if err != nil {
			t.Fatalf("a record decoded from %q encodes to %q, which does not decode: %v", data, b1, err)
		}
		if b2 := mustMarshal(t, rec2); !bytes.Equal(b1, b2) {
			t.Fatalf("record not stable through a round trip:\n input  %q\n first  %s\n second %s", data, b1, b2)
		}
		if len(rec2.Events) != len(rec.Events) || len(rec2.Actions) != len(rec.Actions) || len(rec2.Messages) != len(rec.Messages) || rec2.Pending != rec.Pending {
			t.Fatalf("record of %q changed through a round trip", data)
		}
	})
}

// checkFilled checks what decoding fills in that the record does not store.
func checkFilled(t *testing.T, what string, data []byte, s *storedState, seq uint64) {
	t.Helper()
	if s.Revision != seq {
		t.Fatalf("%s(%q, %d): revision %d", what, data, seq, s.Revision)
	}
	if s.UpdatedAt.IsZero() && !s.CreatedAt.IsZero() {
		t.Fatalf("%s(%q): no update time although created at %v", what, data, s.CreatedAt)
	}
	var reset struct {
		Reset bool `json:"reset"`
	}
	if json.Unmarshal(data, &reset) == nil && reset.Reset && s.FirstSeq != seq {
		t.Fatalf("%s(%q, %d): a reset record's first sequence is %d, want its own", what, data, seq, s.FirstSeq)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %+v: %v", v, err)
	}
	return b
}

// FuzzInstanceSubject builds every subject of an instance from an arbitrary instance ID, kind,
// event name and partition: an ID or name that EncodeInstanceID or EncodeEventName accepts gives
// tokens that are valid NATS subject tokens (non-empty; no '.', '*', '>' or white space; the
// whole subject is a valid literal subject to the server's own check), and the instance and
// stored subjects parse back to exactly the ID, kind and name. One they refuse is refused by
// history.CheckName too, with an error wrapping ErrInvalidName.
func FuzzInstanceSubject(f *testing.F) {
	for _, s := range [][3]string{
		{"order-42", "start", ""}, {"order 42", "event", "Manager Approval"}, {"a.b", "event", "v1.2"},
		{"*", "result", ""}, {">", "event", ">"}, {"=", "timer", ""}, {"注文/🚀", "event", "é"},
		{"=41", "custom_kind", ""}, {" x ", "event", "\t"}, {"", "start", ""}, {"a\x00", "event", "b"},
		{"\xff", "event", "x"}, {strings.Repeat("é", 256), "event", strings.Repeat("🚀", 256)},
		{"x", "a.b", ""}, {"x", "", ""}, {"x", "event", ""},
	} {
		f.Add(s[0], s[1], s[2], uint16(3))
	}
	n, err := NewNames("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, kind, event string, part uint16) {
		idTok, err := EncodeInstanceID(id)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) || history.CheckName("instance ID", id) == nil {
				t.Fatalf("EncodeInstanceID(%q): error %v, but CheckName accepts it or it does not wrap ErrInvalidName", id, err)
			}
			return
		}
		checkSubjectToken(t, idTok)
		for _, s := range []string{n.HistorySubject(idTok), n.ScheduleSubject(idTok, uint64(part), int(part)), n.ActivitySubject(idTok)} {
			checkLiteral(t, s)
		}
		for _, s := range []string{n.InstanceFilter(idTok), n.StoredInstanceFilter(idTok), n.ScheduleFilter(idTok)} {
			if !server.IsValidSubject(s) {
				t.Fatalf("filter %q is not a valid subject", s)
			}
		}
		partitions := int(part%64) + 1
		p := PartitionOf(idTok, partitions)
		if p < 0 || p >= partitions {
			t.Fatalf("PartitionOf(%q, %d) = %d", idTok, partitions, p)
		}

		var subject, wantName string
		switch {
		case kind == string(backend.KindEvent):
			nameTok, err := EncodeEventName(event)
			if err != nil {
				if !errors.Is(err, ErrInvalidName) || history.CheckName("event name", event) == nil {
					t.Fatalf("EncodeEventName(%q): error %v, but CheckName accepts it or it does not wrap ErrInvalidName", event, err)
				}
				return
			}
			checkSubjectToken(t, nameTok)
			subject, wantName = n.EventSubject(idTok, nameTok), event
		case isSafeString(kind):
			subject = n.InstanceSubject(idTok, kind)
		default:
			return // kinds are jetflow's own words, never user input
		}
		checkLiteral(t, subject)
		gotID, gotKind, gotName, err := n.ParseInstanceSubject(subject)
		if err != nil || gotID != id || gotKind != kind || gotName != wantName {
			t.Fatalf("ParseInstanceSubject(%q) = %q, %q, %q, %v; want %q, %q, %q", subject, gotID, gotKind, gotName, err, id, kind, wantName)
		}
		// As the stream's transform stores it.
		stored := n.prefix + ".part." + strconv.Itoa(p) + "." + strings.TrimPrefix(subject, n.prefix+".inst.")
		checkLiteral(t, stored)
		gotP, gotID, gotKind, gotName, err := n.ParseStoredSubject(stored)
		if err != nil || gotP != p || gotID != id || gotKind != kind || gotName != wantName {
			t.Fatalf("ParseStoredSubject(%q) = %d, %q, %q, %q, %v; want %d, %q, %q, %q", stored, gotP, gotID, gotKind, gotName, err, p, id, kind, wantName)
		}
		if got := n.PublishedSubject(stored); got != subject {
			t.Fatalf("PublishedSubject(%q) = %q, want %q", stored, got, subject)
		}
	})
}

// FuzzParseSubject parses arbitrary subjects as instance subjects and stored subjects: whatever
// parses is the one subject the builders make from what it parsed to (so no two subjects reach
// one instance's kind and name), and whatever does not gives an error wrapping ErrInvalidName
// and empty results.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"jetflow.inst.order-42.start", "jetflow.inst.order=2042.event.Manager=20Approval", "jetflow.inst.a=2Eb.event.v1=2E2",
		"jetflow.part.12.a=2Eb.event.Approval", "jetflow.part.03.a.start", "jetflow.part.+3.a.start", "jetflow.part.-0.a.start",
		"jetflow.part.99999999999999999999.a.start", "jetflow.inst.=41.start", "jetflow.inst.x.event", "jetflow.inst.x.start.extra",
		"jetflow.inst.=C3=A9.event.=F0=9F=9A=80", "jetflow.inst.=C3.start", "jetflow.inst..start", "jetflow.inst.x.*", "",
	} {
		f.Add(s)
	}
	n, err := NewNames("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		id, kind, name, err := n.ParseInstanceSubject(subject)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) || id != "" || kind != "" || name != "" {
				t.Fatalf("ParseInstanceSubject(%q) = %q, %q, %q, %v: want empty results and ErrInvalidName", subject, id, kind, name, err)
			}
		} else if got := rebuild(t, n, id, kind, name); got != subject {
			t.Fatalf("ParseInstanceSubject(%q) = %q, %q, %q, which is subject %q", subject, id, kind, name, got)
		}

		p, id, kind, name, err := n.ParseStoredSubject(subject)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseStoredSubject(%q): error %v does not wrap ErrInvalidName", subject, err)
			}
			return
		}
		published := rebuild(t, n, id, kind, name)
		if got := n.prefix + ".part." + strconv.Itoa(p) + "." + strings.TrimPrefix(published, n.prefix+".inst."); got != subject {
			t.Fatalf("ParseStoredSubject(%q) = %d, %q, %q, %q, which is stored subject %q", subject, p, id, kind, name, got)
		}
		if got := n.PublishedSubject(subject); got != published {
			t.Fatalf("PublishedSubject(%q) = %q, want %q", subject, got, published)
		}
	})
}

// rebuild makes the instance subject of what a parse returned.
func rebuild(t *testing.T, n Names, id, kind, name string) string {
	t.Helper()
	idTok, err := EncodeInstanceID(id)
	if err != nil {
		t.Fatalf("a parsed instance ID %q does not encode: %v", id, err)
	}
	if kind != string(backend.KindEvent) {
		if name != "" {
			t.Fatalf("kind %q parsed with an event name %q", kind, name)
		}
		return n.InstanceSubject(idTok, kind)
	}
	nameTok, err := EncodeEventName(name)
	if err != nil {
		t.Fatalf("a parsed event name %q does not encode: %v", name, err)
	}
	return n.EventSubject(idTok, nameTok)
}

// checkSubjectToken fails unless tok is one valid NATS subject token (and KV key token).
func checkSubjectToken(t *testing.T, tok string) {
	t.Helper()
	if tok == "" || strings.ContainsAny(tok, ".*>") || strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }) >= 0 {
		t.Fatalf("token %q is not a valid NATS subject token", tok)
	}
	checkToken(t, tok)
	if !server.IsValidLiteralSubject(tok) {
		t.Fatalf("token %q is not a valid literal subject to the server", tok)
	}
}

func checkLiteral(t *testing.T, subject string) {
	t.Helper()
	if !server.IsValidLiteralSubject(subject) || strings.ContainsAny(subject, " \t\r\n") {
		t.Fatalf("subject %q is not a valid literal NATS subject", subject)
	}
}
