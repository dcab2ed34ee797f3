package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

// fakeClient is an httpapi.Client whose methods are funcs; a nil func fails the test.
type fakeClient struct {
	t            *testing.T
	GetStatusFn  func(ctx context.Context, id string) (*engine.Status, error)
	ScheduleNewF func(ctx context.Context, name string, opts ...engine.StartOption) (string, error)
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

func (f *fakeClient) RaiseEvent(context.Context, string, string, any, ...engine.RaiseOption) error {
	return f.unexpected("RaiseEvent")
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

func (f *fakeClient) Terminate(context.Context, string, string) error {
	return f.unexpected("Terminate")
}
func (f *fakeClient) Suspend(context.Context, string, string) error { return f.unexpected("Suspend") }
func (f *fakeClient) Resume(context.Context, string, string) error  { return f.unexpected("Resume") }
func (f *fakeClient) Purge(context.Context, string) error           { return f.unexpected("Purge") }

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
