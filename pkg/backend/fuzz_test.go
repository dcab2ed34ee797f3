package backend_test

import (
	"errors"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// FuzzEventID sets arbitrary Jetflow-Event-Id and Nats-Msg-Id values (each possibly absent or
// repeated) on NATS and HTTP headers and checks EventID's one rule on both: the event ID header
// if it is set and not empty, else the message ID header, else "".
func FuzzEventID(f *testing.F) {
	f.Add("e-1", "m-1", uint8(3))
	f.Add("", "m-1", uint8(3))
	f.Add("e-1", "", uint8(1))
	f.Add("", "", uint8(0))
	f.Add("a b\r\n", "\xff", uint8(15))
	f.Fuzz(func(t *testing.T, eventID, msgID string, flags uint8) {
		setEvent, setMsg, repeatEvent, repeatMsg := flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
		nh, hh := nats.Header{}, http.Header{}
		if setEvent {
			nh.Set(backend.HeaderEventID, eventID)
			hh.Set(backend.HeaderEventID, eventID)
			if repeatEvent {
				nh.Add(backend.HeaderEventID, "second")
				hh.Add(backend.HeaderEventID, "second")
			}
		}
		if setMsg {
			nh.Set(backend.HeaderMsgID, msgID)
			hh.Set(backend.HeaderMsgID, msgID)
			if repeatMsg {
				nh.Add(backend.HeaderMsgID, "second")
				hh.Add(backend.HeaderMsgID, "second")
			}
		}
		want := ""
		switch {
		case setEvent && eventID != "":
			want = eventID
		case setMsg:
			want = msgID
		}
		if got := backend.EventID(nh.Get); got != want {
			t.Fatalf("EventID(nats %v) = %q, want %q", nh, got, want)
		}
		if got := backend.EventID(hh.Get); got != want {
			t.Fatalf("EventID(http %v) = %q, want %q", hh, got, want)
		}
		// NATS header names are case-sensitive: other spellings are not read.
		other := nats.Header{"jetflow-event-id": {eventID}, "NATS-MSG-ID": {msgID}}
		if got := backend.EventID(other.Get); got != "" {
			t.Fatalf("EventID(%v) = %q, want \"\" (names spelled otherwise)", other, got)
		}
	})
}

// FuzzContinuation checks that every instance ID encodes to a continuation token that decodes
// back to it, and that an arbitrary token either decodes to a non-empty UTF-8 ID whose token it
// is, or is refused with ErrBadContinuationToken.
func FuzzContinuation(f *testing.F) {
	for _, s := range []string{"", "order-42", "a.b", "é", "\xff", "AA", "QQ", "QR", "=", "b3JkZXItNDI", "b3JkZXItNDI="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s != "" && utf8.ValidString(s) {
			tok := backend.EncodeContinuation(s)
			if got, err := backend.DecodeContinuation(tok); err != nil || got != s {
				t.Fatalf("DecodeContinuation(EncodeContinuation(%q) = %q) = %q, %v", s, tok, got, err)
			}
		}
		id, err := backend.DecodeContinuation(s)
		switch {
		case err != nil:
			if !errors.Is(err, backend.ErrBadContinuationToken) || id != "" {
				t.Fatalf("DecodeContinuation(%q) = %q, %v; want ErrBadContinuationToken", s, id, err)
			}
		case s == "":
			if id != "" {
				t.Fatalf(`DecodeContinuation("") = %q`, id)
			}
		case id == "" || !utf8.ValidString(id) || backend.EncodeContinuation(id) != s:
			t.Fatalf("DecodeContinuation(%q) = %q, whose token is %q", s, id, backend.EncodeContinuation(id))
		}
	})
}
