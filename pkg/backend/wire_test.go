package backend_test

import (
	"net/http"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

func TestEventID(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"none", nil, ""},
		{"event ID only", map[string]string{"Jetflow-Event-Id": "e-1"}, "e-1"},
		{"message ID only", map[string]string{"Nats-Msg-Id": "m-1"}, "m-1"},
		{"both: the event ID wins", map[string]string{"Nats-Msg-Id": "m-1", "Jetflow-Event-Id": "e-1"}, "e-1"},
		{"empty event ID: the message ID", map[string]string{"Nats-Msg-Id": "m-1", "Jetflow-Event-Id": ""}, "m-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			get := func(k string) string { return tt.headers[k] }
			if got := backend.EventID(get); got != tt.want {
				t.Errorf("EventID(%v) = %q, want %q", tt.headers, got, tt.want)
			}
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if got := backend.EventID(h.Get); got != tt.want {
				t.Errorf("EventID(http.Header %v) = %q, want %q", h, got, tt.want)
			}
		})
	}
}

func TestTraceContextHeaders(t *testing.T) {
	h := map[string]string{backend.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", backend.HeaderTracestate: "k=v", backend.HeaderMsgID: "m"}
	tc := backend.TraceFrom(func(k string) string { return h[k] })
	if len(tc) != 2 || tc[backend.HeaderTraceparent] != h[backend.HeaderTraceparent] || tc[backend.HeaderTracestate] != "k=v" {
		t.Fatalf("backend.TraceFrom = %v, want traceparent and tracestate only", tc)
	}
	if tc := backend.TraceFrom(func(k string) string { return map[string]string{backend.HeaderTracestate: "k=v"}[k] }); tc != nil {
		t.Fatalf("backend.TraceFrom without traceparent = %v, want nil", tc)
	}
	set := map[string]string{}
	backend.TraceContext{backend.HeaderTraceparent: "p", "Nats-Msg-Id": "not a trace header"}.SetOn(func(k, v string) { set[k] = v })
	if len(set) != 1 || set[backend.HeaderTraceparent] != "p" {
		t.Fatalf("SetOn wrote %v, want the traceparent only", set)
	}
}
