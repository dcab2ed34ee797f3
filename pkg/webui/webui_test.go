package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/webui"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestHandler_EveryPagePathGetsTheShell(t *testing.T) {
	h := webui.Handler()
	for _, path := range []string{"/ui/", "/ui/instances/order-42", "/ui/instances/a%2Fb", "/ui/dead-letters"} {
		rec := get(t, h, path)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK || !strings.Contains(string(body), `<script src="/ui/static/app.js" defer></script>`) {
			t.Errorf("GET %s: %d %.80q, want 200 and the page shell", path, rec.Code, body)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self'", path, csp)
		}
	}
}

func TestHandler_Assets(t *testing.T) {
	h := webui.Handler()
	for path, ctype := range map[string]string{
		"/ui/static/app.js":  "text/javascript",
		"/ui/static/app.css": "text/css",
	} {
		rec := get(t, h, path)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), ctype)
		}
	}
	if rec := get(t, h, "/ui/static/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET a missing asset: %d, want 404", rec.Code)
	}
	if rec := get(t, h, "/ui"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want a redirect to /ui/", rec.Code, rec.Header().Get("Location"))
	}
}

func TestHandler_OnlyReads(t *testing.T) {
	rec := httptest.NewRecorder()
	webui.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/ui/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d, want 405", rec.Code)
	}
}
