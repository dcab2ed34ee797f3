package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

const testKey = "s3cret-key"

// env is an example stack (a real embedded JetStream and a worker with the examples) and three
// API servers over its client: open, keyed, and with a 64-byte body limit.
type env struct {
	client *engine.Client
	open   *httptest.Server
	keyed  *httptest.Server
	small  *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := examplestack.Start(t)
	return &env{
		client: st.Client,
		open:   st.ServeAPI(t, httpapi.Options{}),
		keyed:  st.ServeAPI(t, httpapi.Options{Keys: []string{"other", testKey}}),
		small:  st.ServeAPI(t, httpapi.Options{MaxBodyBytes: 64}),
	}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request; a body is sent as application/json unless headers say otherwise.
func do(t *testing.T, method, u, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func expectCode(t *testing.T, r response, want int, what string) {
	t.Helper()
	if r.code != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.code, want, r.body)
	}
}

func api(srv *httptest.Server, path string) string {
	return srv.URL + httpapi.BasePath + "/" + path
}

func inst(srv *httptest.Server, id, rest string) string {
	return api(srv, "instances/"+url.PathEscape(id)+rest)
}

func hasStatus(st history.RuntimeStatus) func(*engine.Status) bool {
	return func(s *engine.Status) bool { return s.Status == st }
}

// startBudget starts BudgetApproval as id over HTTP and waits until it waits for Approval.
func (e *env) startBudget(t *testing.T, srv *httptest.Server, id string) response {
	t.Helper()
	r := do(t, "POST", api(srv, "orchestrators/BudgetApproval/"+url.PathEscape(id)), `{"amountCents": 500000, "requester": "ana"}`)
	expectCode(t, r, http.StatusAccepted, "start "+id)
	examplestack.WaitFor(t, e.client, id, "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))
	return r
}

// completeBudget starts BudgetApproval as id on the open server and approves it over HTTP with
// event ID approval-1, then waits for it to end.
func (e *env) completeBudget(t *testing.T, id string) {
	t.Helper()
	e.startBudget(t, e.open, id)
	r := do(t, "POST", inst(e.open, id, "/raiseEvent/Approval"), "true", httpapi.EventIDHeader, "approval-1")
	expectCode(t, r, http.StatusAccepted, "raise Approval on "+id)
	examplestack.WaitEnded(t, e.client, id)
}

// startFailed starts the unregistered orchestrator NoSuchOrchestrator as id and waits (in the
// start request) for it to fail.
func (e *env) startFailed(t *testing.T, id string) response {
	t.Helper()
	r := do(t, "POST", api(e.open, "orchestrators/NoSuchOrchestrator/"+id+"?timeout=20&pollingInterval=1"), `{"x":1}`)
	expectCode(t, r, http.StatusOK, "start of an unknown orchestrator, waiting")
	return r
}

// codeCase is a request and the status code it must get.
type codeCase struct {
	name, method, url, body string
	headers                 []string
	want                    int
	message                 string // the error message, unless ""
}

// checkCodes sends each request and checks its status code; an error status must come with an
// {error, message} body.
func checkCodes(t *testing.T, cases []codeCase) {
	t.Helper()
	for _, c := range cases {
		r := do(t, c.method, c.url, c.body, c.headers...)
		if r.code != c.want {
			t.Errorf("%s: status %d, want %d; body %s", c.name, r.code, c.want, r.body)
			continue
		}
		if c.want >= 400 {
			var eb struct{ Error, Message string }
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == "" || eb.Message == "" {
				t.Errorf("%s: error body %q is not {error, message}", c.name, r.body)
			}
			if c.message != "" && eb.Message != c.message {
				t.Errorf("%s: message %q, want %q", c.name, eb.Message, c.message)
			}
		}
	}
}

// oversize is a JSON body over the small server's 64-byte limit.
var oversize = `"` + strings.Repeat("x", 100) + `"`

func TestStartOrchestration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("answers 202 with the check-status payload", func(t *testing.T) {
		t.Parallel()
		srv, id := e.open, "budget-1"
		r := e.startBudget(t, srv, id)
		p := r.json(t)
		base := srv.URL + httpapi.BasePath + "/instances/" + id
		want := map[string]string{
			"id":                    id,
			"statusQueryGetUri":     base,
			"sendEventPostUri":      base + "/raiseEvent/{eventName}",
			"terminatePostUri":      base + "/terminate?reason={text}",
			"purgeHistoryDeleteUri": base,
			"restartPostUri":        base + "/restart",
			"suspendPostUri":        base + "/suspend?reason={text}",
			"resumePostUri":         base + "/resume?reason={text}",
			"rewindPostUri":         base + "/rewind?reason={text}",
		}
		if len(p) != len(want) {
			t.Errorf("check-status payload has %d fields, want %d: %v", len(p), len(want), p)
		}
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%s = %v, want %q", k, p[k], v)
			}
		}
		if got := r.header.Get("Location"); got != base {
			t.Errorf("Location = %q, want %q", got, base)
		}
		if got := r.header.Get("Retry-After"); got != "10" {
			t.Errorf("Retry-After = %q, want 10", got)
		}
	})

	t.Run("with a timeout answers the output once an event over HTTP ends it", func(t *testing.T) {
		t.Parallel()
		id := "select-1"
		got := make(chan response, 1)
		go func() {
			got <- do(t, "POST", api(e.open, "orchestrators/Select/"+id+"?timeout=20&pollingInterval=1"), "")
		}()
		examplestack.WaitCreated(t, e.client, id)
		examplestack.WaitFor(t, e.client, id, "waiting for Event2", examplestack.WaitingFor(orchestration.Event2))
		expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Event2"), "true"), http.StatusAccepted, "raise Event2")
		r := <-got
		expectCode(t, r, http.StatusOK, "start with timeout")
		var out orchestration.SelectResult
		if err := json.Unmarshal(r.body, &out); err != nil || out.Winner != "Event2" || out.Value != true {
			t.Errorf("output %s (%v), want winner Event2 value true", r.body, err)
		}
	})

	t.Run("with a timeout that passes answers 202", func(t *testing.T) {
		t.Parallel()
		id := "budget-timeout"
		r := do(t, "POST", api(e.open, "orchestrators/BudgetApproval/"+id+"?timeout=0.2&pollingInterval=0.1"), "")
		expectCode(t, r, http.StatusAccepted, "start with a short timeout")
		if r.json(t)["statusQueryGetUri"] == nil || r.header.Get("Location") == "" {
			t.Errorf("no check-status payload: %s", r.body)
		}
	})

	t.Run("of an unknown orchestrator is accepted and the instance fails", func(t *testing.T) {
		t.Parallel()
		st := e.startFailed(t, "no-such-orchestrator").json(t)
		if st["runtimeStatus"] != "Failed" {
			t.Fatalf("status = %v, want Failed", st)
		}
		if out, _ := st["output"].(map[string]any); out == nil || !strings.Contains(out["message"].(string), "not registered") {
			t.Errorf("output = %v, want the failure", st["output"])
		}
	})

	t.Run("without an ID", func(t *testing.T) {
		t.Parallel()
		r := do(t, "POST", api(e.open, "orchestrators/Select"), "")
		expectCode(t, r, http.StatusAccepted, "start without ID")
		id, _ := r.json(t)["id"].(string)
		if id == "" {
			t.Fatalf("no id in %s", r.body)
		}
		expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Event3"), "7"), http.StatusAccepted, "raise Event3")
		if s := examplestack.WaitEnded(t, e.client, id); string(s.Output) != `{"winner":"Event3","value":7}` {
			t.Errorf("output %s", s.Output)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		id := "codes-1"
		e.startBudget(t, e.open, id)
		checkCodes(t, []codeCase{
			{"start bad JSON", "POST", api(e.open, "orchestrators/BudgetApproval/codes-bad"), "{nope", nil, 400, "Invalid JSON content"},
			{"start existing running instance", "POST", api(e.open, "orchestrators/BudgetApproval/"+id), "", nil, 500, ""},
			{"start oversize input", "POST", api(e.small, "orchestrators/BudgetApproval/codes-big"), oversize, nil, 413, ""},
			{"start with a control character in the ID", "POST", api(e.open, "orchestrators/BudgetApproval/a%0Ab"), "", nil, 400, ""},
			{"start a 257-character orchestrator name", "POST", api(e.open, "orchestrators/"+strings.Repeat("o", 257)), "", nil, 400, ""},
			{"wrong verb on start", "GET", api(e.open, "orchestrators/BudgetApproval"), "", nil, 404, ""},
		})
		if _, err := e.client.GetStatus(context.Background(), "codes-bad"); err == nil {
			t.Error("a start with bad JSON created an instance")
		}
		if _, err := e.client.GetStatus(context.Background(), "codes-big"); err == nil {
			t.Error("a start with an oversize body created an instance")
		}
	})
}

func TestGetStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("running answers 202", func(t *testing.T) {
		t.Parallel()
		id := "budget-1"
		e.startBudget(t, e.open, id)
		base := inst(e.open, id, "")
		statusURL := base + "?showInput=true"
		r := do(t, "GET", statusURL, "")
		expectCode(t, r, http.StatusAccepted, "status while running")
		if got := r.header.Get("Location"); got != statusURL {
			t.Errorf("Location = %q, want %q", got, statusURL)
		}
		if got := r.header.Get("Retry-After"); got != "5" {
			t.Errorf("Retry-After = %q, want 5", got)
		}
		st := r.json(t)
		if st["runtimeStatus"] != "Running" || st["name"] != "BudgetApproval" || st["instanceId"] != id || st["output"] != nil {
			t.Errorf("running status = %v", st)
		}
		if wf, _ := st["waitingFor"].(map[string]any); wf == nil || !slices.Contains(wf["events"].([]any), any("Approval")) {
			t.Errorf("waitingFor = %v, want events [Approval]", st["waitingFor"])
		}
		if in, _ := st["input"].(map[string]any); in == nil || in["requester"] != "ana" {
			t.Errorf("input = %v", st["input"])
		}
		for _, k := range []string{"createdTime", "lastUpdatedTime"} {
			if _, err := time.Parse("2006-01-02T15:04:05Z", st[k].(string)); err != nil {
				t.Errorf("%s = %v: %v", k, st[k], err)
			}
		}
		r = do(t, "GET", base+"?showInput=false", "")
		if st := r.json(t); st["input"] != nil {
			t.Errorf("showInput=false: input = %v", st["input"])
		}
	})

	t.Run("completed answers 200, with the history on request", func(t *testing.T) {
		t.Parallel()
		id := "budget-2"
		e.completeBudget(t, id)
		base := inst(e.open, id, "")
		r := do(t, "GET", base, "")
		expectCode(t, r, http.StatusOK, "status when completed")
		st := r.json(t)
		if st["runtimeStatus"] != "Completed" || st["output"] != "approved" || st["historyEvents"] != nil {
			t.Errorf("completed status = %v", st)
		}
		if r.header.Get("Location") != "" {
			t.Errorf("completed status has Location %q", r.header.Get("Location"))
		}
		checkHistory(t, base, false)
		checkHistory(t, base, true)
	})

	t.Run("failed answers 200, or 500 on request", func(t *testing.T) {
		t.Parallel()
		id := "failed-1"
		e.startFailed(t, id)
		expectCode(t, do(t, "GET", inst(e.open, id, ""), ""), http.StatusOK, "status of failed")
		expectCode(t, do(t, "GET", inst(e.open, id, "?returnInternalServerErrorOnFailure=true"), ""), http.StatusInternalServerError, "status of failed with returnInternalServerErrorOnFailure")
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		id := "codes-1"
		e.startBudget(t, e.open, id)
		checkCodes(t, []codeCase{
			{"status with a control character in the ID", "GET", inst(e.open, "a\x00b", ""), "", nil, 400, ""},
			{"status unknown", "GET", inst(e.open, "codes-nope", ""), "", nil, 404, ""},
			{"wrong verb on status", "PUT", inst(e.open, id, ""), "", nil, 404, ""},
		})
	})
}

// checkHistory checks the history (in the Durable Functions shape) that the status of a
// BudgetApproval approved by completeBudget shows, with or without the results.
func checkHistory(t *testing.T, statusURL string, withOutput bool) {
	t.Helper()
	q := "?showHistory=true"
	if withOutput {
		q += "&showHistoryOutput=true"
	}
	r := do(t, "GET", statusURL+q, "")
	expectCode(t, r, http.StatusOK, "status with history")
	var body struct {
		HistoryEvents []map[string]any `json:"historyEvents"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var types []string
	byType := map[string]map[string]any{}
	for _, ev := range body.HistoryEvents {
		typ, _ := ev["EventType"].(string)
		types = append(types, typ)
		byType[typ] = ev
		if _, err := time.Parse(time.RFC3339Nano, ev["Timestamp"].(string)); err != nil {
			t.Errorf("%s Timestamp: %v", typ, err)
		}
	}
	wantTypes := []string{"ExecutionStarted", "EventRaised", "TaskCompleted", "ExecutionCompleted"}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("history types = %v, want %v", types, wantTypes)
	}
	if ev := byType["ExecutionStarted"]; ev["FunctionName"] != "BudgetApproval" || ev["Input"] == nil {
		t.Errorf("ExecutionStarted = %v", ev)
	}
	if ev := byType["EventRaised"]; ev["Name"] != "Approval" || ev["Input"] != true || ev["EventId"] != "approval-1" {
		t.Errorf("EventRaised = %v", ev)
	}
	tc := byType["TaskCompleted"]
	if tc["FunctionName"] != activities.ApproveBudget || tc["ScheduledTime"] == nil || tc["TaskScheduledId"] != nil {
		t.Errorf("TaskCompleted = %v", tc)
	}
	ec := byType["ExecutionCompleted"]
	if ec["OrchestrationStatus"] != "Completed" {
		t.Errorf("ExecutionCompleted = %v", ec)
	}
	if withOutput {
		if res, _ := tc["Result"].(map[string]any); res == nil || res["approved"] != true {
			t.Errorf("TaskCompleted Result = %v", tc["Result"])
		}
		if ec["Result"] != "approved" {
			t.Errorf("ExecutionCompleted Result = %v", ec["Result"])
		}
	} else if tc["Result"] != nil || ec["Result"] != nil {
		t.Errorf("results shown without showHistoryOutput: %v, %v", tc, ec)
	}
}

func TestRaiseEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("through sendEventPostUri answers 202; ended answers 410", func(t *testing.T) {
		t.Parallel()
		id := "budget-1"
		p := e.startBudget(t, e.open, id).json(t)
		base := inst(e.open, id, "")
		r := do(t, "POST", p["sendEventPostUri"].(string)[:len(base)]+"/raiseEvent/Approval", "true", httpapi.EventIDHeader, "approval-1")
		expectCode(t, r, http.StatusAccepted, "raise Approval")
		if len(r.body) != 0 {
			t.Errorf("raise answered with a body: %q", r.body)
		}
		examplestack.WaitEnded(t, e.client, id)
		expectCode(t, do(t, "POST", base+"/raiseEvent/Approval", "true"), http.StatusGone, "raise on ended")
	})

	t.Run("refused requests raise nothing", func(t *testing.T) {
		t.Parallel()
		id := "codes-1"
		e.startBudget(t, e.open, id)
		small := "codes-small"
		e.startBudget(t, e.small, small)
		checkCodes(t, []codeCase{
			{"raise unknown instance", "POST", inst(e.open, "codes-nope", "/raiseEvent/Approval"), "true", nil, 404, ""},
			{"raise a 257-character event name", "POST", inst(e.open, id, "/raiseEvent/"+strings.Repeat("e", 257)), "true", nil, 400, ""},
			{"raise wrong content type", "POST", inst(e.open, id, "/raiseEvent/Approval"), "true", []string{"Content-Type", "text/plain"}, 400, "Only application/json request content is supported"},
			{"raise no content type", "POST", inst(e.open, id, "/raiseEvent/Approval"), "true", []string{"Content-Type", ""}, 400, "Only application/json request content is supported"},
			{"raise bad JSON", "POST", inst(e.open, id, "/raiseEvent/Approval"), "yes", nil, 400, "Invalid JSON content"},
			{"raise empty body", "POST", inst(e.open, id, "/raiseEvent/Approval"), "", nil, 400, "Invalid JSON content"},
			{"raise oversize", "POST", inst(e.small, small, "/raiseEvent/Approval"), oversize, nil, 413, ""},
			{"wrong verb on raise", "GET", inst(e.open, id, "/raiseEvent/Approval"), "", nil, 404, ""},
		})
		// None of the bad raises reached the instance: approve it now.
		expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Approval"), "true"), http.StatusAccepted, "raise")
		if s := examplestack.WaitEnded(t, e.client, id); s.Status != history.StatusCompleted || string(s.Output) != `"approved"` {
			t.Errorf("after the good raise: %s %s", s.Status, s.Output)
		}
		expectCode(t, do(t, "POST", inst(e.small, small, "/terminate"), ""), http.StatusAccepted, "terminate")
	})
}

func TestTerminate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("running answers 202; the reason is the output", func(t *testing.T) {
		t.Parallel()
		id := "budget-1"
		e.startBudget(t, e.open, id)
		expectCode(t, do(t, "POST", inst(e.open, id, "/terminate?reason=done"), ""), http.StatusAccepted, "terminate")
		s := examplestack.WaitEnded(t, e.client, id)
		if s.Status != history.StatusTerminated {
			t.Errorf("status %s, want Terminated", s.Status)
		}
		r := do(t, "GET", inst(e.open, id, ""), "")
		expectCode(t, r, http.StatusOK, "status of terminated")
		if st := r.json(t); st["runtimeStatus"] != "Terminated" || st["output"] != "done" {
			t.Errorf("terminated status = %v, want output the reason", st)
		}
	})

	t.Run("ended answers 410", func(t *testing.T) {
		t.Parallel()
		id := "budget-2"
		e.completeBudget(t, id)
		expectCode(t, do(t, "POST", inst(e.open, id, "/terminate?reason=x"), ""), http.StatusGone, "terminate on ended")
	})

	t.Run("unknown answers 404", func(t *testing.T) {
		t.Parallel()
		checkCodes(t, []codeCase{
			{"terminate unknown", "POST", inst(e.open, "codes-nope", "/terminate"), "", nil, 404, ""},
		})
	})
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("suspended instances keep events until resumed", func(t *testing.T) {
		t.Parallel()
		id := "suspend-1"
		e.startBudget(t, e.open, id)
		expectCode(t, do(t, "POST", inst(e.open, id, "/suspend?reason=hold"), ""), http.StatusAccepted, "suspend")
		examplestack.WaitFor(t, e.client, id, "Suspended", hasStatus(history.StatusSuspended))
		r := do(t, "GET", inst(e.open, id, ""), "")
		expectCode(t, r, http.StatusAccepted, "status of suspended")
		if st := r.json(t); st["runtimeStatus"] != "Suspended" {
			t.Errorf("status = %v", st)
		}
		// Suspended instances take events (buffered).
		expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Approval"), "false"), http.StatusAccepted, "raise while suspended")
		expectCode(t, do(t, "POST", inst(e.open, id, "/resume?reason=go"), ""), http.StatusAccepted, "resume")
		if s := examplestack.WaitEnded(t, e.client, id); s.Status != history.StatusCompleted || string(s.Output) != `"denied"` {
			t.Errorf("after resume: %s %s", s.Status, s.Output)
		}
	})

	t.Run("ended answers 410", func(t *testing.T) {
		t.Parallel()
		id := "budget-2"
		e.completeBudget(t, id)
		for _, op := range []string{"suspend", "resume"} {
			expectCode(t, do(t, "POST", inst(e.open, id, "/"+op+"?reason=x"), ""), http.StatusGone, op+" on ended")
		}
	})

	t.Run("unknown answers 404", func(t *testing.T) {
		t.Parallel()
		checkCodes(t, []codeCase{
			{"suspend unknown", "POST", inst(e.open, "codes-nope", "/suspend"), "", nil, 404, ""},
			{"resume unknown", "POST", inst(e.open, "codes-nope", "/resume"), "", nil, 404, ""},
		})
	})
}

func TestRewind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("failed answers 202 and the instance runs again", func(t *testing.T) {
		t.Parallel()
		// The orchestrator is still not registered after the rewind, so it fails again, with the
		// rewind in its history.
		id := "no-such-orchestrator"
		e.startFailed(t, id)
		before, err := e.client.GetStatus(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		expectCode(t, do(t, "POST", inst(e.open, id, "/rewind?reason=retry"), ""), http.StatusAccepted, "rewind of failed")
		examplestack.WaitFor(t, e.client, id, "failed again", func(s *engine.Status) bool { return s.Version > before.Version && s.Status.IsTerminal() })
		r := do(t, "GET", inst(e.open, id, "?showHistory=true"), "")
		expectCode(t, r, http.StatusOK, "status after rewind")
		if !bytes.Contains(r.body, []byte(`{"EventType":"ExecutionRewound","Reason":"retry"`)) {
			t.Errorf("history has no ExecutionRewound with the reason: %s", r.body)
		}
	})

	t.Run("completed answers 410", func(t *testing.T) {
		t.Parallel()
		id := "budget-2"
		e.completeBudget(t, id)
		expectCode(t, do(t, "POST", inst(e.open, id, "/rewind?reason=x"), ""), http.StatusGone, "rewind on ended")
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		id := "codes-1"
		e.startBudget(t, e.open, id)
		checkCodes(t, []codeCase{
			{"rewind running", "POST", inst(e.open, id, "/rewind"), "", nil, 400, ""},
			{"rewind unknown", "POST", inst(e.open, "codes-nope", "/rewind"), "", nil, 404, ""},
		})
	})
}

// TestRestart checks what the restart endpoint refuses; TestListPurgeRestart restarts instances.
func TestRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	checkCodes(t, []codeCase{
		{"restart unknown", "POST", inst(e.open, "codes-nope", "/restart"), "", nil, 400, "InstanceId does not match a valid orchestration instance."},
	})
}

func TestPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("ended answers 200, then 404", func(t *testing.T) {
		t.Parallel()
		id := "budget-1"
		e.completeBudget(t, id)
		base := inst(e.open, id, "")
		r := do(t, "DELETE", base, "")
		expectCode(t, r, http.StatusOK, "purge")
		if string(bytes.TrimSpace(r.body)) != `{"instancesDeleted":1}` {
			t.Errorf("purge body = %s", r.body)
		}
		expectCode(t, do(t, "DELETE", base, ""), http.StatusNotFound, "purge again")
		expectCode(t, do(t, "GET", base, ""), http.StatusNotFound, "status after purge")
	})

	t.Run("running deletes nothing", func(t *testing.T) {
		t.Parallel()
		id := "codes-1"
		e.startBudget(t, e.open, id)
		checkCodes(t, []codeCase{
			{"purge running", "DELETE", inst(e.open, id, ""), "", nil, 200, ""},
		})
		// Purging a running instance deletes nothing; the instance is untouched.
		r := do(t, "DELETE", inst(e.open, id, ""), "")
		if string(bytes.TrimSpace(r.body)) != `{"instancesDeleted":0}` {
			t.Errorf("purge of a running instance: %s", r.body)
		}
		expectCode(t, do(t, "POST", inst(e.open, id, "/raiseEvent/Approval"), "true"), http.StatusAccepted, "raise")
		if s := examplestack.WaitEnded(t, e.client, id); s.Status != history.StatusCompleted || string(s.Output) != `"approved"` {
			t.Errorf("after the purge and a raise: %s %s", s.Status, s.Output)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		checkCodes(t, []codeCase{
			{"purge unknown", "DELETE", inst(e.open, "codes-nope", ""), "", nil, 404, ""},
			{"purge many without from", "DELETE", api(e.open, "instances"), "", nil, 400, "Please provide value for 'createdTimeFrom' parameter."},
			{"purge many none", "DELETE", api(e.open, "instances?createdTimeFrom=2999-01-01T00:00:00Z"), "", nil, 404, "No instances were found that match the filter expression"},
			{"purge many bad from", "DELETE", api(e.open, "instances?createdTimeFrom=yesterday"), "", nil, 400, ""},
		})
	})
}

// TestList checks the answers of the list endpoint to good and bad queries; TestListPurgeRestart
// checks what it lists.
func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	checkCodes(t, []codeCase{
		{"list instances", "GET", api(e.open, "instances"), "", nil, 200, ""},
		{"list instances slash", "GET", api(e.open, "instances/"), "", nil, 200, ""},
		{"list bad time", "GET", api(e.open, "instances?createdTimeFrom=yesterday"), "", nil, 400, ""},
		{"list bad token", "GET", api(e.open, "instances"), "", []string{"x-ms-continuation-token", "!"}, 400, ""},
	})
}

// TestRouting checks requests that match no endpoint.
func TestRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := "codes-1"
	e.startBudget(t, e.open, id)
	checkCodes(t, []codeCase{
		{"unknown operation", "POST", inst(e.open, id, "/explode"), "", nil, 404, ""},
		{"unknown path", "GET", api(e.open, "nothing/here"), "", nil, 404, ""},
		{"outside the base path", "GET", e.open.URL + "/", "", nil, 404, ""},
		{"entities", "GET", api(e.open, "entities/counter/a"), "", nil, 501, ""},
	})
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := "keyed-1"
	start := api(e.keyed, "orchestrators/BudgetApproval/"+id)
	for _, c := range []struct {
		name    string
		url     string
		headers []string
	}{
		{"no key", start, nil},
		{"wrong code", start + "?code=nope", nil},
		{"wrong header", start, []string{"x-functions-key", "nope"}},
		{"empty code", start + "?code=", nil},
	} {
		r := do(t, "POST", c.url, "", c.headers...)
		expectCode(t, r, http.StatusUnauthorized, c.name)
	}
	if _, err := e.client.GetStatus(context.Background(), id); err == nil {
		t.Fatal("an unauthorized start created the instance")
	}
	expectCode(t, do(t, "GET", inst(e.keyed, "anything", ""), ""), http.StatusUnauthorized, "status without key")

	r := do(t, "POST", start+"?code="+testKey, "")
	expectCode(t, r, http.StatusAccepted, "start with code")
	p := r.json(t)
	for _, k := range []string{"statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri", "rewindPostUri"} {
		if !strings.Contains(p[k].(string), "code="+testKey) {
			t.Errorf("%s = %v has no code", k, p[k])
		}
	}
	if bytes.Contains(r.body, []byte(`\u0026`)) {
		t.Errorf("'&' is escaped in the payload: %s", r.body)
	}
	if !strings.HasSuffix(p["terminatePostUri"].(string), "/terminate?reason={text}&code="+testKey) {
		t.Errorf("terminatePostUri = %v", p["terminatePostUri"])
	}
	examplestack.WaitFor(t, e.client, id, "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))

	// Raises without a valid key are not delivered: "false" would make the output "denied".
	raise := inst(e.keyed, id, "/raiseEvent/Approval")
	expectCode(t, do(t, "POST", raise, "false"), http.StatusUnauthorized, "raise without key")
	expectCode(t, do(t, "POST", raise+"?code=nope", "false", "x-functions-key", "nope"), http.StatusUnauthorized, "raise with wrong keys")
	expectCode(t, do(t, "POST", inst(e.keyed, id, "/terminate"), ""), http.StatusUnauthorized, "terminate without key")
	r = do(t, "GET", p["statusQueryGetUri"].(string), "")
	expectCode(t, r, http.StatusAccepted, "status via statusQueryGetUri")
	expectCode(t, do(t, "POST", raise, "true", "x-functions-key", testKey), http.StatusAccepted, "raise with header key")
	if s := examplestack.WaitEnded(t, e.client, id); string(s.Output) != `"approved"` {
		t.Errorf("output %s, want \"approved\" (an unauthorized raise got through?)", s.Output)
	}
}

// TestInstanceIDs starts, queries and terminates instances whose IDs need escaping, and checks
// the length limit on IDs.
func TestInstanceIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, id := range []string{"order 42", "v1.2.3", "a*b", "a>b", "café ☕ 注文", "%41 & +?#x", "a/b", "..."} {
		r := do(t, "POST", api(e.open, "orchestrators/BudgetApproval/"+url.PathEscape(id)), "")
		expectCode(t, r, http.StatusAccepted, "start "+id)
		p := r.json(t)
		if p["id"] != id {
			t.Errorf("id = %v, want %q", p["id"], id)
		}
		if want := e.open.URL + httpapi.BasePath + "/instances/" + url.PathEscape(id); p["statusQueryGetUri"] != want {
			t.Errorf("statusQueryGetUri = %v, want %q", p["statusQueryGetUri"], want)
		}
		r = do(t, "GET", p["statusQueryGetUri"].(string), "")
		if r.code != http.StatusAccepted && r.code != http.StatusOK {
			t.Fatalf("status of %q: %d %s", id, r.code, r.body)
		}
		if st := r.json(t); st["instanceId"] != id {
			t.Errorf("instanceId = %v, want %q", st["instanceId"], id)
		}
		examplestack.WaitFor(t, e.client, id, "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))
		term := strings.Replace(p["terminatePostUri"].(string), "{text}", "bye", 1)
		expectCode(t, do(t, "POST", term, ""), http.StatusAccepted, "terminate "+id)
		if s := examplestack.WaitEnded(t, e.client, id); s.Status != history.StatusTerminated {
			t.Errorf("%q: status %s, want Terminated", id, s.Status)
		}
	}
	long := strings.Repeat("x", history.MaxNameLength+1)
	expectCode(t, do(t, "POST", api(e.open, "orchestrators/BudgetApproval/"+long), ""), http.StatusBadRequest, "start with a 257-character ID")
	expectCode(t, do(t, "GET", inst(e.open, long, ""), ""), http.StatusBadRequest, "status with a 257-character ID")
	if _, err := e.client.GetStatus(context.Background(), long); err == nil {
		t.Error("the 257-character ID was created")
	}
	ok := strings.Repeat("y", history.MaxNameLength)
	expectCode(t, do(t, "POST", api(e.open, "orchestrators/BudgetApproval/"+ok), ""), http.StatusAccepted, "start with a 256-character ID")
	expectCode(t, do(t, "POST", inst(e.open, ok, "/terminate"), ""), http.StatusAccepted, "terminate the 256-character ID")
}

func TestStartWithEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	swe := func(srv *httptest.Server, id, event, query string) string {
		return api(srv, "orchestrators/BudgetApproval/"+url.PathEscape(id)+"/raiseEvent/"+event+query)
	}

	t.Run("absent: started with the event", func(t *testing.T) {
		t.Parallel()
		r := do(t, "POST", swe(e.open, "swe-new", "Approval", "?timeout=20&pollingInterval=1"),
			`{"input": {"amountCents": 100, "requester": "bo"}, "eventData": true}`, httpapi.EventIDHeader, "swe-ev-1")
		expectCode(t, r, http.StatusOK, "start with event, waiting")
		if string(bytes.TrimSpace(r.body)) != `"approved"` {
			t.Errorf("output %s, want \"approved\"", r.body)
		}
		events, err := e.client.GetHistory(context.Background(), "swe-new")
		if err != nil {
			t.Fatal(err)
		}
		if len(events) < 3 || events[2].Type != history.EventRaised || events[2].EventID != "swe-ev-1" {
			t.Errorf("history begins %+v, want the event right after the start", events[:min(3, len(events))])
		}
	})

	t.Run("running: the event goes to the instance; ended: a new generation", func(t *testing.T) {
		t.Parallel()
		id := "swe-running"
		e.startBudget(t, e.open, id)
		r := do(t, "POST", swe(e.open, id, "Approval", ""), `{"input": "ignored", "eventData": false}`)
		expectCode(t, r, http.StatusConflict, "start with event on a running instance")
		if p := r.json(t); p["error"] != "InstanceExists" {
			t.Errorf("payload %v, want error InstanceExists", p)
		}
		s := examplestack.WaitEnded(t, e.client, id)
		if string(s.Output) != `"denied"` || s.Generation != 1 || !bytes.Contains(s.Input, []byte("ana")) {
			t.Errorf("status %s output %s input %s generation %d", s.Status, s.Output, s.Input, s.Generation)
		}

		// An empty body raises null, which BudgetApproval reads as false.
		expectCode(t, do(t, "POST", swe(e.open, id, "Approval", ""), ""), http.StatusAccepted, "start with event, empty body")
		s = examplestack.WaitFor(t, e.client, id, "second generation ended", func(s *engine.Status) bool { return s.Generation == 2 && s.Status.IsTerminal() })
		if s.Status != history.StatusCompleted || string(s.Output) != `"denied"` {
			t.Errorf("second generation: %s %s %v", s.Status, s.Output, s.Failure)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		big := `{"eventData": "` + strings.Repeat("x", 100) + `"}`
		for _, c := range []struct {
			name, url, body string
			headers         []string
			want            int
		}{
			{"wrong content type", swe(e.open, "swe-bad", "Approval", ""), `{"eventData": true}`, []string{"Content-Type", "text/plain"}, 400},
			{"malformed JSON", swe(e.open, "swe-bad", "Approval", ""), `{"eventData": tru`, nil, 400},
			{"not an object", swe(e.open, "swe-bad", "Approval", ""), `[true]`, nil, 400},
			{"unknown field", swe(e.open, "swe-bad", "Approval", ""), `{"data": true}`, nil, 400},
			{"two values", swe(e.open, "swe-bad", "Approval", ""), `{} {}`, nil, 400},
			{"oversize", swe(e.small, "swe-bad", "Approval", ""), big, nil, 413},
			{"long event name", swe(e.open, "swe-bad", strings.Repeat("e", 257), ""), `{}`, nil, 400},
			{"long instance ID", swe(e.open, strings.Repeat("i", 257), "Approval", ""), `{}`, nil, 400},
			{"wrong verb", swe(e.open, "swe-bad", "Approval", ""), "", nil, 404},
		} {
			method := "POST"
			if c.name == "wrong verb" {
				method = "GET"
			}
			expectCode(t, do(t, method, c.url, c.body, c.headers...), c.want, c.name)
		}
		if _, err := e.client.GetStatus(context.Background(), "swe-bad"); !errors.Is(err, engine.ErrInstanceNotFound) {
			t.Errorf("a refused start with event created the instance: %v", err)
		}
	})
}
