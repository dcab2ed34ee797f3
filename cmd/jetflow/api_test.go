package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestDevAPI drives the HTTP API that `jetflow dev` serves (with a key, on a free loopback
// port) together with the CLI and a plain NATS publish.
func TestDevAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apiCfg, err := loadAPIConfig(func(string) string { return "" }, "api-")
	if err != nil {
		t.Fatal(err)
	}
	apiCfg.Listen, apiCfg.Keys = "127.0.0.1:-1", "dev-key"
	d := startTestDev(t, zerolog.ErrorLevel, apiCfg)
	client := d.w.client
	base := d.api.URL()

	call := func(method, path, body string, want int, headers ...string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d; body %s", method, path, resp.StatusCode, want, b)
		}
		return strings.TrimSpace(string(b))
	}
	const budget = `{"amountCents": 500000, "requester": "ana"}`

	call("POST", "orchestrators/BudgetApproval/dev-api-1", budget, http.StatusUnauthorized)
	out := call("POST", "orchestrators/BudgetApproval/dev-api-1/raiseEvent/Approval?timeout=20&pollingInterval=1&code=dev-key",
		`{"input": `+budget+`, "eventData": true}`, http.StatusOK)
	if out != `"approved"` {
		t.Errorf("start with event answered %s, want \"approved\"", out)
	}

	// Started over HTTP, approved by a plain publish to the subject `jetflow subject` prints.
	id := "dev api 2"
	call("POST", "orchestrators/BudgetApproval/"+url.PathEscape(id), budget, http.StatusAccepted, "x-functions-key", "dev-key")
	examplestack.WaitFor(t, client, id, "waiting for Approval only", func(s *engine.Status) bool {
		return s.Waiting != nil && len(s.Waiting.Events) == 1 && s.Waiting.Events[0] == "Approval"
	})
	subject, _, code := runCmd(ctx, "subject", id, "Approval")
	if code != exitOK {
		t.Fatalf("jetflow subject: exit %d", code)
	}
	nc, _ := natstest.Connect(t, d.srv)
	if err := nc.Publish(strings.TrimSpace(subject), []byte("true")); err != nil {
		t.Fatal(err)
	}
	examplestack.WaitEnded(t, client, id)
	if st := call("GET", "instances/"+url.PathEscape(id)+"?code=dev-key", "", http.StatusOK); !strings.Contains(st, `"output":"approved"`) {
		t.Errorf("status %s", st)
	}

	// Rewind: not failed is 400, completed 410, unknown 404.
	call("POST", "orchestrators/BudgetApproval/dev-api-3?code=dev-key", budget, http.StatusAccepted)
	examplestack.WaitFor(t, client, "dev-api-3", "running", func(s *engine.Status) bool { return s.Status == history.StatusRunning })
	call("POST", "instances/dev-api-3/rewind?code=dev-key", "", http.StatusBadRequest)
	call("POST", "instances/dev-api-1/rewind?code=dev-key", "", http.StatusGone)
	call("POST", "instances/nobody/rewind?code=dev-key", "", http.StatusNotFound)
	call("POST", "instances/dev-api-3/terminate?code=dev-key", "", http.StatusAccepted)
}
