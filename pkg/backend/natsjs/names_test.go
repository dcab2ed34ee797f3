package natsjs

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// tokenRe matches what EncodeToken may produce.
var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

// kvKeyRe is the KV key syntax enforced by nats.go.
var kvKeyRe = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

// checkToken fails the test unless tok is usable as one NATS subject token
// and as (part of) a KV key.
func checkToken(t *testing.T, tok string) {
	t.Helper()
	if !tokenRe.MatchString(tok) {
		t.Errorf("token %q has characters outside [A-Za-z0-9_=-]", tok)
	}
	if strings.ContainsAny(tok, ".*> \t\r\n") {
		t.Errorf("token %q is not a valid NATS subject token", tok)
	}
	if !kvKeyRe.MatchString(tok) {
		t.Errorf("token %q is not a valid KV key", tok)
	}
}

func TestEncodeTokenSafeUnchanged(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"uuid", "0b6a3c1e-9f3e-4c8a-a2b7-5d3f6e7a8b9c"},
		{"order-42", "order-42"},
		{"underscore", "a_b"},
		{"single letter", "A"},
		{"single dash", "-"},
		{"digits", "0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeToken(tt.in)
			if err != nil {
				t.Fatalf("EncodeToken(%q): unexpected error: %v", tt.in, err)
			}
			if got != tt.in {
				t.Errorf("EncodeToken(%q): got %q, want %q", tt.in, got, tt.in)
			}
			back, err := DecodeToken(got)
			if err != nil {
				t.Fatalf("DecodeToken(%q): unexpected error: %v", got, err)
			}
			if back != tt.in {
				t.Errorf("DecodeToken(%q): got %q, want %q", got, back, tt.in)
			}
		})
	}
}

func TestEncodeTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means: only check the round trip
	}{
		{"space", "order 42", "order=2042"},
		{"dot", "a.b", "a=2Eb"},
		{"star", "*", "=2A"},
		{"gt", ">", "=3E"},
		{"equals", "=", "=3D"},
		{"escape lookalike", "=41", "=3D41"},
		{"slash", "a/b", "a=2Fb"},
		{"e acute", "é", "=C3=A9"},
		{"emoji", "🚀", "=F0=9F=9A=80"},
		{"tab-free punctuation", `!"#$%&'()+,:;<?@[\]^{|}~`, ""},
		{"cjk", "注文-42", ""},
		{"leading and trailing space", " x ", "=20x=20"},
		{"dots only", "...", "=2E=2E=2E"},
		{"256 ascii", strings.Repeat("a", 256), strings.Repeat("a", 256)},
		{"256 two-byte runes", strings.Repeat("é", 256), strings.Repeat("=C3=A9", 256)},
		{"256 emoji", strings.Repeat("🚀", 256), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeToken(tt.in)
			if err != nil {
				t.Fatalf("EncodeToken(%q): unexpected error: %v", tt.in, err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("EncodeToken(%q): got %q, want %q", tt.in, got, tt.want)
			}
			checkToken(t, got)
			back, err := DecodeToken(got)
			if err != nil {
				t.Fatalf("DecodeToken(%q): unexpected error: %v", got, err)
			}
			if back != tt.in {
				t.Errorf("DecodeToken(EncodeToken(%q)): got %q", tt.in, back)
			}
		})
	}
}

func TestEncodeTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string // substring of the error message
	}{
		{"empty", "", "must not be empty"},
		{"257 runes", strings.Repeat("a", 257), "longer than 256 characters"},
		{"257 two-byte runes", strings.Repeat("é", 257), "longer than 256 characters"},
		{"nul", "\x00", "contains a control character"},
		{"newline", "\n", "contains a control character"},
		{"embedded tab", "a\tb", "contains a control character"},
		{"del", "a\x7f", "contains a control character"},
		{"c1 control", "a\u0085", "contains a control character"},
		{"invalid utf-8 byte", "\xff", "is not valid UTF-8"},
		{"truncated utf-8", "a\xc3", "is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeToken(tt.in)
			if err == nil {
				t.Fatalf("EncodeToken(%q): got %q, want error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("EncodeToken(%q): error %v does not wrap ErrInvalidName", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("EncodeToken(%q): error %q, want it to contain %q", tt.in, err, tt.wantMsg)
			}
		})
	}
}

func TestEncodeInstanceIDAndEventNameMessages(t *testing.T) {
	tests := []struct {
		name   string
		encode func(string) (string, error)
		in     string
		want   string
	}{
		{"empty ID", EncodeInstanceID, "", `instance ID "": must not be empty`},
		{"control in ID", EncodeInstanceID, "a\nb", `instance ID "a\nb": contains a control character`},
		{"long ID", EncodeInstanceID, strings.Repeat("x", 257),
			`instance ID "` + strings.Repeat("x", 64) + `"... (257 characters): longer than 256 characters`},
		{"empty event", EncodeEventName, "", `event name "": must not be empty`},
		{"bad utf-8 event", EncodeEventName, "\xff", `event name "\xff": is not valid UTF-8`},
		{"empty token", EncodeToken, "", `name "": must not be empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.encode(tt.in)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error: got %q, want %q", got, tt.want)
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}

	for _, f := range []func(string) (string, error){EncodeInstanceID, EncodeEventName} {
		got, err := f("order 42")
		if err != nil || got != "order=2042" {
			t.Errorf(`encode("order 42"): got %q, %v; want "order=2042", nil`, got, err)
		}
	}
}

func TestDecodeTokenErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"lone equals", "="},
		{"truncated escape", "=4"},
		{"truncated escape mid token", "ab=4"},
		{"non-hex escape", "=ZZ"},
		{"half hex escape", "=4Z"},
		{"lower-case hex", "=2e"},
		{"escaped safe char", "=41"},
		{"escaped dash", "=2D"},
		{"dot", "a.b"},
		{"space", "a b"},
		{"star", "*"},
		{"gt", ">"},
		{"slash", "a/b"},
		{"raw unicode", "é"},
		{"escaped control", "=00"},
		{"escaped newline", "a=0Ab"},
		{"escaped invalid utf-8", "=FF"},
		{"escaped truncated utf-8", "=C3"},
		{"257 runes", strings.Repeat("a", 257)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeToken(tt.in)
			if err == nil {
				t.Fatalf("DecodeToken(%q): got %q, want error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("DecodeToken(%q): error %v does not wrap ErrInvalidName", tt.in, err)
			}
			if !strings.Contains(err.Error(), `token "`) {
				t.Errorf("DecodeToken(%q): error %q does not quote the input", tt.in, err)
			}
		})
	}
}

func TestNewNames(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		want    string
		wantErr bool
	}{
		{"default", "", "jetflow", false},
		{"custom", "acme_x-1", "acme_x-1", false},
		{"dot", "a.b", "", true},
		{"space", "a b", "", true},
		{"star", "a*", "", true},
		{"gt", ">", "", true},
		{"unicode", "é", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := NewNames(tt.prefix)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewNames(%q): got prefix %q, want error", tt.prefix, n.Prefix())
				}
				if !errors.Is(err, ErrInvalidName) {
					t.Errorf("NewNames(%q): error %v does not wrap ErrInvalidName", tt.prefix, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewNames(%q): unexpected error: %v", tt.prefix, err)
			}
			if got := n.Prefix(); got != tt.want {
				t.Errorf("Prefix(): got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNamesBuilders(t *testing.T) {
	def, err := NewNames("")
	if err != nil {
		t.Fatal(err)
	}
	custom, err := NewNames("acme_x")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"InstanceStream", def.InstanceStream(), "JETFLOW_INST"},
		{"ActivityStream", def.ActivityStream(), "JETFLOW_ACT"},
		{"DeadLetterStream", def.DeadLetterStream(), "JETFLOW_DLQ"},
		{"HistoryStream", def.HistoryStream(), "JETFLOW_HIST"},
		{"HistorySubjects", def.HistorySubjects(), "jetflow.hist.>"},
		{"InstanceSubjects", def.InstanceSubjects(), "jetflow.inst.>"},
		{"ScheduleSubjects", def.ScheduleSubjects(), "jetflow.sched.>"},
		{"InstanceSubject", def.InstanceSubject("order=2042", "start"), "jetflow.inst.order=2042.start"},
		{"EventSubject", def.EventSubject("order-42", "approved=21"), "jetflow.inst.order-42.event.approved=21"},
		{"InstanceFilter", def.InstanceFilter("order-42"), "jetflow.inst.order-42.>"},
		{"ScheduleSubject", def.ScheduleSubject("order-42", 3, 7), "jetflow.sched.order-42.3.7"},
		{"ScheduleSubject max gen", def.ScheduleSubject("x", 18446744073709551615, 0), "jetflow.sched.x.18446744073709551615.0"},
		{"ActivitySubject", def.ActivitySubject("charge-card"), "jetflow.activity.charge-card"},
		{"ActivitySubjects", def.ActivitySubjects(), "jetflow.activity.>"},
		{"ScheduledStartSubject", def.ScheduledStartSubject("order-42", "5f0c"), "jetflow.sched.order-42.start.5f0c"},
		{"RouteSubject", def.RouteSubject("Approval", "v1=2E2"), "jetflow.route.Approval.v1=2E2"},
		{"DeadLetterSubject", def.DeadLetterSubject("malformed"), "jetflow.dlq.malformed"},
		{"DeadLetterSubject unsafe reason", def.DeadLetterSubject("bad.reason"), "jetflow.dlq.bad=2Ereason"},
		{"DeadLetterSubject empty reason", def.DeadLetterSubject(""), "jetflow.dlq.invalid"},
		{"DeadLetterSubjects", def.DeadLetterSubjects(), "jetflow.dlq.>"},
		{"PartitionFilter", def.PartitionFilter(3), "jetflow.part.3.>"},
		{"StoredInstanceFilter", def.StoredInstanceFilter("order-42"), "jetflow.part.*.order-42.>"},
		{"PartitionConsumer", def.PartitionConsumer(3, "m1", 7), "p3-m1-7"},
		{"LeaseBucket", def.LeaseBucket(), "jetflow-leases"},
		{"WorkerBucket", def.WorkerBucket(), "jetflow-workers"},
		{"ActivityConsumer", def.ActivityConsumer("charge-card"), "activity-charge-card"},
		{"HistorySubject", def.HistorySubject("order-42"), "jetflow.hist.order-42"},
		{"HistorySubject escaped", def.HistorySubject("order=2042"), "jetflow.hist.order=2042"},

		{"custom InstanceStream", custom.InstanceStream(), "ACME_X_INST"},
		{"custom ActivityStream", custom.ActivityStream(), "ACME_X_ACT"},
		{"custom DeadLetterStream", custom.DeadLetterStream(), "ACME_X_DLQ"},
		{"custom HistoryStream", custom.HistoryStream(), "ACME_X_HIST"},
		{"custom InstanceSubjects", custom.InstanceSubjects(), "acme_x.inst.>"},
		{"custom ScheduleSubjects", custom.ScheduleSubjects(), "acme_x.sched.>"},
		{"custom InstanceSubject", custom.InstanceSubject("i", "timer"), "acme_x.inst.i.timer"},
		{"custom EventSubject", custom.EventSubject("i", "e"), "acme_x.inst.i.event.e"},
		{"custom InstanceFilter", custom.InstanceFilter("i"), "acme_x.inst.i.>"},
		{"custom ScheduleSubject", custom.ScheduleSubject("i", 1, 2), "acme_x.sched.i.1.2"},
		{"custom ActivitySubject", custom.ActivitySubject("a"), "acme_x.activity.a"},
		{"custom ActivitySubjects", custom.ActivitySubjects(), "acme_x.activity.>"},
		{"custom DeadLetterSubject", custom.DeadLetterSubject("malformed"), "acme_x.dlq.malformed"},
		{"custom DeadLetterSubjects", custom.DeadLetterSubjects(), "acme_x.dlq.>"},
		{"custom PartitionFilter", custom.PartitionFilter(0), "acme_x.part.0.>"},
		{"custom ActivityConsumer", custom.ActivityConsumer("a"), "activity-a"},
		{"custom HistorySubject", custom.HistorySubject("i"), "acme_x.hist.i"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseInstanceSubjectRoundTrip(t *testing.T) {
	n, err := NewNames("")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"order-42", "order 42", "a.b", "*", ">", "=", "注文/🚀"}
	kinds := []string{"start", "result", "timer", "terminate", "suspend", "resume", "custom_kind"}
	for _, id := range ids {
		idTok, err := EncodeInstanceID(id)
		if err != nil {
			t.Fatalf("EncodeInstanceID(%q): %v", id, err)
		}
		for _, kind := range kinds {
			t.Run(id+"/"+kind, func(t *testing.T) {
				subject := n.InstanceSubject(idTok, kind)
				gotID, gotKind, gotName, err := n.ParseInstanceSubject(subject)
				if err != nil {
					t.Fatalf("ParseInstanceSubject(%q): unexpected error: %v", subject, err)
				}
				if gotID != id || gotKind != kind || gotName != "" {
					t.Errorf("ParseInstanceSubject(%q): got (%q, %q, %q), want (%q, %q, %q)",
						subject, gotID, gotKind, gotName, id, kind, "")
				}
			})
		}
		for _, name := range []string{"approved", "payment received", "v1.2", "é"} {
			t.Run(id+"/event/"+name, func(t *testing.T) {
				nameTok, err := EncodeEventName(name)
				if err != nil {
					t.Fatalf("EncodeEventName(%q): %v", name, err)
				}
				subject := n.EventSubject(idTok, nameTok)
				gotID, gotKind, gotName, err := n.ParseInstanceSubject(subject)
				if err != nil {
					t.Fatalf("ParseInstanceSubject(%q): unexpected error: %v", subject, err)
				}
				if gotID != id || gotKind != "event" || gotName != name {
					t.Errorf("ParseInstanceSubject(%q): got (%q, %q, %q), want (%q, %q, %q)",
						subject, gotID, gotKind, gotName, id, "event", name)
				}
			})
		}
	}
}

func TestParseInstanceSubjectErrors(t *testing.T) {
	n, err := NewNames("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		subject string
	}{
		{"empty", ""},
		{"other prefix", "other.inst.x.start"},
		{"prefix extension", "jetflowx.inst.x.start"},
		{"schedule subject", "jetflow.sched.x.1.2"},
		{"activity subject", "jetflow.activity.x"},
		{"no id", "jetflow.inst"},
		{"no id with dot", "jetflow.inst."},
		{"no kind", "jetflow.inst.x"},
		{"empty kind", "jetflow.inst.x."},
		{"empty id", "jetflow.inst..start"},
		{"undecodable id", "jetflow.inst.=ZZ.start"},
		{"non-canonical id", "jetflow.inst.=41.start"},
		{"wildcard id", "jetflow.inst.*.start"},
		{"wildcard kind", "jetflow.inst.x.*"},
		{"full wildcard", "jetflow.inst.x.>"},
		{"extra token", "jetflow.inst.x.start.extra"},
		{"event without name", "jetflow.inst.x.event"},
		{"event with empty name", "jetflow.inst.x.event."},
		{"event with undecodable name", "jetflow.inst.x.event.=4"},
		{"event with extra token", "jetflow.inst.x.event.a.b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, kind, name, err := n.ParseInstanceSubject(tt.subject)
			if err == nil {
				t.Fatalf("ParseInstanceSubject(%q): got (%q, %q, %q), want error", tt.subject, id, kind, name)
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("ParseInstanceSubject(%q): error %v does not wrap ErrInvalidName", tt.subject, err)
			}
			if !strings.Contains(err.Error(), "subject ") {
				t.Errorf("ParseInstanceSubject(%q): error %q does not name the subject", tt.subject, err)
			}
			if id != "" || kind != "" || name != "" {
				t.Errorf("ParseInstanceSubject(%q): got (%q, %q, %q) with error, want empty results", tt.subject, id, kind, name)
			}
		})
	}
}

func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{
		"", "order-42", "order 42", "a.b", "=", "=41", "=4", "=ZZ", "=2e", "é", "🚀",
		"\x00", "\n", "\xff", "a\xc3", "*", ">", "注文", strings.Repeat("a", 257),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Encoding: any accepted input round-trips to a valid token.
		tok, err := EncodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("EncodeToken(%q): error %v does not wrap ErrInvalidName", s, err)
			}
		} else {
			checkToken(t, tok)
			back, err := DecodeToken(tok)
			if err != nil {
				t.Fatalf("DecodeToken(EncodeToken(%q)) = DecodeToken(%q): %v", s, tok, err)
			}
			if back != s {
				t.Fatalf("DecodeToken(EncodeToken(%q)): got %q", s, back)
			}
		}

		// Decoding: anything accepted is exactly what EncodeToken produces.
		dec, err := DecodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("DecodeToken(%q): error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		re, err := EncodeToken(dec)
		if err != nil {
			t.Fatalf("EncodeToken(DecodeToken(%q)) = EncodeToken(%q): %v", s, dec, err)
		}
		if re != s {
			t.Fatalf("EncodeToken(DecodeToken(%q)): got %q", s, re)
		}
	})
}

func TestParseStoredSubject(t *testing.T) {
	n, err := NewNames("")
	if err != nil {
		t.Fatal(err)
	}
	p, id, kind, name, err := n.ParseStoredSubject("jetflow.part.12.a=2Eb.event.Approval")
	if err != nil || p != 12 || id != "a.b" || kind != "event" || name != "Approval" {
		t.Fatalf("got %d %q %q %q %v", p, id, kind, name, err)
	}
	for _, bad := range []string{"jetflow.inst.a.start", "jetflow.part.x.a.start", "jetflow.part.-1.a.start", "jetflow.part.3"} {
		if _, _, _, _, err := n.ParseStoredSubject(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseStoredSubject(%q): error %v, want ErrInvalidName", bad, err)
		}
	}
	// The server's {{partition(16,1)}} of "a" is 12 (FNV-1a), as the stream stores it.
	if got := PartitionOf("a", 16); got != 12 {
		t.Errorf("PartitionOf(a, 16) = %d, want 12", got)
	}
}
