package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

// fakeClient is an httpapi.Client whose methods are funcs; a nil func fails the test.
type fakeClient struct {
	t            *testing.T
	GetStatusFn  func(ctx context.Context, id string) (*engine.Status, error)
	ScheduleNewF func(ctx context.Context, name string, opts ...engine.StartOption) (string, error)
	RaiseEventFn func(ctx context.Context, id, event string, data any, opts ...engine.RaiseOption) error
}

var _ httpapi.Client = (*fakeClient)(nil)

func (f *fakeClient) unexpected(what string) error {
	f.t.Errorf("unexpected call to %s", what)
	return errors.New("unexpected")
}

func (f *fakeClient) ScheduleNew(ctx context.Context, name string, opts ...engine.StartOption) (string, error) {
	if f.ScheduleNewF == nil {
		return "", f.unexpected("ScheduleNew")
	}
	return f.ScheduleNewF(ctx, name, opts...)
}

func (f *fakeClient) RaiseEvent(ctx context.Context, id, event string, data any, opts ...engine.RaiseOption) error {
	if f.RaiseEventFn == nil {
		return f.unexpected("RaiseEvent")
	}
	return f.RaiseEventFn(ctx, id, event, data, opts...)
}

func (f *fakeClient) GetStatus(ctx context.Context, id string) (*engine.Status, error) {
	if f.GetStatusFn == nil {
		return nil, f.unexpected("GetStatus")
	}
	return f.GetStatusFn(ctx, id)
}

func (f *fakeClient) GetHistory(context.Context, string) ([]history.Event, error) {
	return nil, f.unexpected("GetHistory")
}

func (f *fakeClient) WaitFor(context.Context, string, func(*engine.Status) bool) (*engine.Status, error) {
	return nil, f.unexpected("WaitFor")
}

func (f *fakeClient) Terminate(context.Context, string, string, ...engine.TerminateOption) error {
	return f.unexpected("Terminate")
}
func (f *fakeClient) Suspend(context.Context, string, string) error { return f.unexpected("Suspend") }
func (f *fakeClient) Resume(context.Context, string, string) error  { return f.unexpected("Resume") }
func (f *fakeClient) PurgeInstance(context.Context, string, ...engine.PurgeOption) (int, error) {
	return 0, f.unexpected("PurgeInstance")
}

func TestFakeClient(t *testing.T) {
	t.Run("unauthorized requests never reach the client", func(t *testing.T) {
		h := httpapi.New(&fakeClient{t: t}, httpapi.Options{Keys: []string{"k"}})
		for _, target := range []string{
			"/runtime/webhooks/durabletask/orchestrators/X/y",
			"/runtime/webhooks/durabletask/instances/y/terminate",
			"/runtime/webhooks/durabletask/instances/y/raiseEvent/E?code=K",
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", target, strings.NewReader("true")))
			if got, want := rec.Code, http.StatusUnauthorized; got != want {
				t.Errorf("%s: got %d, want %d", target, got, want)
			}
		}
	})

	t.Run("unexpected errors are 500 and reported", func(t *testing.T) {
		var reported error
		boom := errors.New("boom")
		h := httpapi.New(&fakeClient{t: t, GetStatusFn: func(context.Context, string) (*engine.Status, error) { return nil, boom }},
			httpapi.Options{OnError: func(_ *http.Request, err error) { reported = err }})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/runtime/webhooks/durabletask/instances/x", nil))
		if got, want := rec.Code, http.StatusInternalServerError; got != want {
			t.Errorf("got %d, want %d", got, want)
		}
		if !errors.Is(reported, boom) {
			t.Errorf("reported %v, want %v", reported, boom)
		}
		if strings.Contains(rec.Body.String(), "boom") {
			t.Errorf("internal error leaked: %s", rec.Body)
		}
	})

	t.Run("CreateCheckStatusResponse over TLS", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "https://example.com/my/start?code=a%2Bb", nil)
		httpapi.CreateCheckStatusResponse(rec, r, "id/1")
		want := "https://example.com/runtime/webhooks/durabletask/instances/id%2F1?code=a%2Bb"
		if got := rec.Header().Get("Location"); got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		if got := rec.Code; got != http.StatusAccepted {
			t.Errorf("code %d, want 202", got)
		}
	})
}

func (f *fakeClient) ListInstances(context.Context, engine.Query) (engine.Page, error) {
	return engine.Page{}, f.unexpected("ListInstances")
}

func (f *fakeClient) PurgeInstances(context.Context, engine.Query) (int, error) {
	return 0, f.unexpected("PurgeInstances")
}

func (f *fakeClient) Restart(context.Context, string, bool) (string, error) {
	return "", f.unexpected("Restart")
}

func (f *fakeClient) Rewind(context.Context, string, string) error { return f.unexpected("Rewind") }

func (f *fakeClient) StartWithEvent(context.Context, string, engine.Event, ...engine.StartOption) (string, error) {
	return "", f.unexpected("StartWithEvent")
}

// The event ID of a raise comes from header Jetflow-Event-Id, else header Nats-Msg-Id (the rule
// of every path, backend.EventID), else query parameter eventId.
func TestRaiseEventID(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		headers map[string]string
		want    string
	}{
		{"none", "", nil, ""},
		{"query", "?eventId=q-1", nil, "q-1"},
		{"Nats-Msg-Id", "?eventId=q-1", map[string]string{"Nats-Msg-Id": "m-1"}, "m-1"},
		{"Jetflow-Event-Id", "?eventId=q-1", map[string]string{"Jetflow-Event-Id": "e-1"}, "e-1"},
		{"both headers", "", map[string]string{"Nats-Msg-Id": "m-1", "Jetflow-Event-Id": "e-1"}, "e-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *string
			h := httpapi.New(&fakeClient{t: t,
				GetStatusFn: func(context.Context, string) (*engine.Status, error) {
					return &engine.Status{Status: history.StatusRunning}, nil
				},
				RaiseEventFn: func(_ context.Context, _, _ string, _ any, opts ...engine.RaiseOption) error {
					var m backend.Message
					for _, opt := range opts {
						opt(&m)
					}
					got = &m.MsgID
					return nil
				},
			}, httpapi.Options{})
			r := httptest.NewRequest("POST", "/runtime/webhooks/durabletask/instances/x/raiseEvent/E"+tt.query, strings.NewReader("true"))
			r.Header.Set("Content-Type", "application/json")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusAccepted || got == nil {
				t.Fatalf("got %d %s, want 202 and a raise", rec.Code, rec.Body)
			}
			if *got != tt.want {
				t.Errorf("event ID %q, want %q", *got, tt.want)
			}
		})
	}
}
