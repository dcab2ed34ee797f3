package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWithWebUI: the API server serves the UI under /ui/, redirects / to it, and hands every
// other request to the API.
func TestWithWebUI(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot) // stands for the API
	})
	h := withWebUI(api)
	for _, c := range []struct {
		method, path string
		want         int
		location     string
	}{
		{"GET", "/ui/", http.StatusOK, ""},
		{"GET", "/ui/instances/order-42", http.StatusOK, ""},
		{"GET", "/ui/static/app.js", http.StatusOK, ""},
		{"GET", "/ui", http.StatusMovedPermanently, "/ui/"},
		{"GET", "/", http.StatusFound, "/ui/"},
		{"POST", "/", http.StatusTeapot, ""},
		{"GET", "/runtime/webhooks/durabletask/instances", http.StatusTeapot, ""},
		{"GET", "/livez", http.StatusTeapot, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want || !strings.HasSuffix(rec.Header().Get("Location"), c.location) {
			t.Errorf("%s %s: %d to %q, want %d to %q", c.method, c.path, rec.Code, rec.Header().Get("Location"), c.want, c.location)
		}
	}
}
