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
