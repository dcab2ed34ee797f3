package httpapi_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// TestConcurrentStarts: of 30 concurrent starts of one instance ID over HTTP, exactly one is
// accepted (202) and the others are told the instance exists (500 InstanceExists, as Durable
// Functions answers; 409 for a start with an event, whose event was raised on it), on a new ID
// and on one whose instance ended.
func TestConcurrentStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 30
	race := func(what, u, body string, exists int) {
		t.Helper()
		codes := make([]int, n)
		bodies := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				req, err := http.NewRequest("POST", u, strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				codes[i], bodies[i] = resp.StatusCode, string(b)
			})
		}
		wg.Wait()
		accepted := 0
		for i, code := range codes {
			switch code {
			case http.StatusAccepted:
				accepted++
			case exists:
			default:
				t.Fatalf("%s: start %d answered %d %s, want 202 or %d", what, i, code, bodies[i], exists)
			}
		}
		if accepted != 1 {
			t.Fatalf("%s: %d starts accepted, want exactly 1", what, accepted)
		}
	}
	start := func(id string) string { return api(e.open, "orchestrators/BudgetApproval/"+url.PathEscape(id)) }
	input := `{"amountCents": 500000, "requester": "ana"}`

	race("new ID", start("http-race"), input, http.StatusInternalServerError)
	examplestack.WaitFor(t, e.client, "http-race", "waiting for Approval", examplestack.WaitingFor("Approval"))
	expectCode(t, do(t, "POST", inst(e.open, "http-race", "/terminate"), ""), http.StatusAccepted, "terminate")
	examplestack.WaitEnded(t, e.client, "http-race")
	race("ended ID", start("http-race"), input, http.StatusInternalServerError)
	s := examplestack.WaitFor(t, e.client, "http-race", "running again", func(s *engine.Status) bool { return s.Generation == 2 })
	if s.Status.IsTerminal() {
		t.Errorf("second generation: %s", s.Status)
	}

	withEvent := start("http-race-event") + "/raiseEvent/Approval"
	race("start with event", withEvent, `{"input": `+input+`, "eventData": true}`, http.StatusConflict)
	if s := examplestack.WaitEnded(t, e.client, "http-race-event"); s.Generation != 1 || string(s.Output) != `"approved"` {
		t.Errorf("start with event: generation %d output %s", s.Generation, s.Output)
	}
}
