package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

// fuzzMaxBody is the body limit of the fuzzed API, so that 413 is reached too.
const fuzzMaxBody = 256

// The operations FuzzHTTPRequest sends; op selects one (modulo their number).
var fuzzOps = []string{"start", "start-new-id", "raise", "start-with-event", "terminate", "suspend", "resume", "rewind", "restart", "purge", "status", "list", "purge-many"}

// existingID is the pending instance every fuzzed request finds in the store.
const existingID = "pending-1"

// FuzzHTTPRequest sends one request to the real Durable Functions API handler over the
// in-memory backend (no server: fast), with a fuzzed operation, instance ID, name (orchestrator
// or event), Content-Type, event ID header, reason/query text and body. Whatever the input, the
// handler does not panic and answers 2xx or 4xx with an {"error", "message"} body (the one 500
// it may give is InstanceExists, documented, for a start of the pending instance), and never
// reports an internal error. A 2xx means the input was acceptable (names valid, body valid JSON
// of the right shape, within the limit) and did exactly what was asked: the instance started
// with that input, the event queued with that data and event ID. The usual good requests must
// succeed.
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []struct {
		op                         int
		id, name, ct, evID, reason string
		body                       string
	}{
		{0, "order-42", "BudgetApproval", "application/json", "", "", `{"amountCents": 500}`},
		{0, "", "BudgetApproval", "", "", "", ``},
		{0, "order 42", "Budget Approval", "application/json", "", "", `[1, 2`},
		{1, "", "X", "text/plain", "", "", `"plain"`},
		{2, existingID, "Approval", "application/json", "manager-1", "", `true`},
		{2, existingID, "Approval", "Application/JSON; charset=utf-8", "", "", ` {"a": [1, null]} `},
		{2, existingID, "Approval", "text/plain", "", "", `true`},
		{2, existingID, "Approval", "application/json", "", "", `tru`},
		{2, "missing", "Approval", "application/json", "", "", `true`},
		{2, existingID, "a\x00b", "application/json", "", "", `1`},
		{3, "order-43", "Approval", "application/json", "e-1", "", `{"input": {"amountCents": 500}, "eventData": true}`},
		{3, "order-43", "Approval", "application/json", "", "", `{"input": 1, "other": 2}`},
		{3, "order-43", "Approval", "application/json", "", "", `{}}`},
		{3, "order-43", "Approval", "application/json", "", "", `null`},
		{3, existingID, "Approval", "", "", "", ``},
		{4, existingID, "", "", "", "enough", `ignored`},
		{5, existingID, "", "", "", "", ``},
		{6, existingID, "", "", "", "", ``},
		{7, existingID, "", "", "", "fixed", ``},
		{8, existingID, "", "", "", "", ``},
		{9, existingID, "", "", "", "", ``},
		{10, existingID, "", "", "", "", ``},
		{10, "a/b", "", "", "", "", ``},
		{10, ".", "", "", "", "", ``},
		{11, "", "", "", "", "createdTimeFrom=2020-01-01T00:00:00Z&runtimeStatus=Pending,bogus&top=5", ``},
		{11, "", "", "", "", "createdTimeFrom=yesterday", ``},
		{12, "", "", "", "", "createdTimeFrom=2020-01-01T00:00:00Z", ``},
		{12, "", "", "", "", "", ``},
		{0, "x", "Y", "application/json", "", "", `"` + strings.Repeat("x", fuzzMaxBody) + `"`},
	} {
		f.Add(uint8(s.op), s.id, s.name, s.ct, s.evID, s.reason, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, op uint8, id, name, ct, evID, reason string, body []byte) {
		b := memory.New()
		defer b.Close()
		client := engine.NewClient(b)
		ctx := context.Background()
		if _, err := client.ScheduleNew(ctx, "Orch", engine.WithInstanceID(existingID), engine.WithInput(json.RawMessage(`"in"`))); err != nil {
			t.Fatal(err)
		}
		var internal []error
		h := httpapi.New(client, httpapi.Options{MaxBodyBytes: fuzzMaxBody, OnError: func(_ *http.Request, err error) { internal = append(internal, err) }})

		kind := fuzzOps[int(op)%len(fuzzOps)]
		method, path, query := "POST", "", ""
		esc := url.PathEscape
		switch kind {
		case "start":
			path = "orchestrators/" + esc(name) + "/" + esc(id)
		case "start-new-id":
			path = "orchestrators/" + esc(name)
		case "raise":
			path = "instances/" + esc(id) + "/raiseEvent/" + esc(name)
		case "start-with-event":
			path = "orchestrators/Orch/" + esc(id) + "/raiseEvent/" + esc(name)
		case "terminate", "suspend", "resume", "rewind":
			path, query = "instances/"+esc(id)+"/"+kind, "reason="+url.QueryEscape(reason)
		case "restart":
			path = "instances/" + esc(id) + "/restart"
		case "purge":
			method, path = "DELETE", "instances/"+esc(id)
		case "status":
			method, path, query = "GET", "instances/"+esc(id), "showHistory=true&showHistoryOutput=true"
		case "list":
			method, path, query = "GET", "instances", reason
		case "purge-many":
			method, path, query = "DELETE", "instances", reason
		}
		u, err := url.Parse(httpapi.BasePath + "/" + path)
		if err != nil {
			t.Fatalf("path %q: %v", path, err)
		}
		if strings.Contains(query, "timeout") {
			query = "" // a start would wait for the instance to end, which needs a worker
		}
		u.RawQuery = query
		req := httptest.NewRequest(method, "/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, u.RequestURI()
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if evID != "" {
			req.Header.Set(httpapi.EventIDHeader, evID)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code := rec.Code

		if len(internal) > 0 {
			t.Fatalf("%s %s: internal errors %v", method, u, internal)
		}
		// Paths the ServeMux does not take as they are ("." and ".." segments, empty ones): it
		// redirects to the cleaned path, or, if that matches no endpoint, the API answers 404.
		// Instance IDs such as "." cannot be addressed over HTTP (a documented deviation).
		redirect := code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect
		if cleanable(u.EscapedPath()) {
			if !redirect && code != http.StatusNotFound {
				t.Fatalf("%s %s: %d for a path that is not clean, want a redirect or 404", method, u, code)
			}
			return
		}
		if redirect {
			t.Fatalf("%s %s: redirect %d of a clean path", method, u, code)
		}
		var eb struct{ Error, Message string }
		switch {
		case code >= 200 && code < 300:
		case code >= 400 && code < 500, code == http.StatusInternalServerError:
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Message == "" {
				t.Fatalf("%s %s: %d with body %q, want {error, message}", method, u, code, rec.Body)
			}
			if code == http.StatusInternalServerError && eb.Error != "InstanceExists" {
				t.Fatalf("%s %s: 500 %s", method, u, rec.Body)
			}
		default:
			t.Fatalf("%s %s: status %d %q", method, u, code, rec.Body)
		}

		validName := func(what, s string) bool { return history.CheckName(what, s) == nil }
		isJSONCT := func() bool {
			mt, _, _ := mime.ParseMediaType(ct)
			return strings.EqualFold(mt, "application/json")
		}
		plainJSONCT := ct == "application/json" || ct == "application/json; charset=utf-8"
		fits := len(body) <= fuzzMaxBody
		switch kind {
		case "start", "start-new-id":
			ok := validName("orchestrator name", name) && (kind == "start-new-id" || validName("instance ID", id)) &&
				(len(body) == 0 || json.Valid(body)) && fits
			if kind == "start" && id == existingID && ok {
				if code != http.StatusInternalServerError {
					t.Fatalf("start of the pending instance: %d %s, want 500 InstanceExists", code, rec.Body)
				}
				return
			}
			if ok != (code == http.StatusAccepted) {
				t.Fatalf("start %q/%q with body %q: %d %s (acceptable: %v)", name, id, body, code, rec.Body, ok)
			}
			if !ok {
				return
			}
			var cs httpapi.CheckStatus
			if err := json.Unmarshal(rec.Body.Bytes(), &cs); err != nil || (kind == "start" && cs.ID != id) {
				t.Fatalf("start %q: check-status %s", id, rec.Body)
			}
			inst, err := b.GetInstance(ctx, cs.ID)
			if err != nil || inst.Name != name || !bytes.Equal(inst.Input, body) && !(len(body) == 0 && len(inst.Input) == 0) {
				t.Fatalf("start %q %q with %q: stored %+v, %v", name, cs.ID, body, inst, err)
			}
		case "raise":
			ok := validName("instance ID", id) && validName("event name", name) && id == existingID && isJSONCT() && json.Valid(body) && fits
			if ok != (code == http.StatusAccepted) {
				t.Fatalf("raise %q on %q (Content-Type %q) with body %q: %d %s (acceptable: %v)", name, id, ct, body, code, rec.Body, ok)
			}
			if validName("instance ID", id) && validName("event name", name) && id != existingID && code != http.StatusNotFound {
				t.Fatalf("raise on missing instance %q: %d, want 404", id, code)
			}
			if ok {
				m := lastMessage(t, b)
				if m.Kind != backend.KindEvent || m.EventName != name || m.MsgID != evID || !sameJSON(m.Data, body) {
					t.Fatalf("raise %q %q with %q: queued %+v", name, evID, body, m)
				}
			}
		case "start-with-event":
			ok := validName("instance ID", id) && validName("event name", name) && fits
			input, data, shaped := startWithEventBody(body)
			if len(bytes.TrimSpace(body)) > 0 {
				ok = ok && isJSONCT() && shaped
			}
			// On the pending instance it is told that the instance exists (409); its start
			// message, with the event, is stored all the same.
			want := http.StatusAccepted
			if id == existingID {
				want = http.StatusConflict
			}
			if ok != (code == want) {
				t.Fatalf("start-with-event %q/%q (Content-Type %q) with body %q: %d %s (acceptable: %v)", id, name, ct, body, code, rec.Body, ok)
			}
			if !ok {
				return
			}
			m := lastMessage(t, b)
			var sr backend.StartRequest
			if m.Kind != backend.KindStart || json.Unmarshal(m.Data, &sr) != nil || sr.Event == nil || sr.Event.Name != name || sr.Event.ID != viaJSON(evID) ||
				!sameJSON(sr.Event.Data, data) || !sameJSON(sr.Input, input) {
				t.Fatalf("start-with-event %q %q with %q: queued %+v", id, name, body, m)
			}
		case "terminate", "suspend", "resume":
			if validName("instance ID", id) && id == existingID && code != http.StatusAccepted {
				t.Fatalf("%s of the pending instance: %d %s", kind, code, rec.Body)
			}
		case "status":
			if id == existingID && code != http.StatusAccepted { // 202 while it has not ended, as in Durable Functions
				t.Fatalf("status of the pending instance: %d %s", code, rec.Body)
			}
		}
		if plainJSONCT && kind == "raise" && id == existingID && validName("event name", name) && json.Valid(body) && fits && code != http.StatusAccepted {
			t.Fatalf("a good raise got %d %s", code, rec.Body)
		}
	})
}

// startWithEventBody is what a start-with-event body asks for: (input, event data), both null if
// absent, and whether the body is a JSON object with no fields but "input" and "eventData"
// (matched as encoding/json matches field names, ignoring case).
func startWithEventBody(body []byte) (input, data json.RawMessage, ok bool) {
	input, data = json.RawMessage("null"), json.RawMessage("null")
	if len(bytes.TrimSpace(body)) == 0 {
		return input, data, true
	}
	var fields map[string]json.RawMessage
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' || json.Unmarshal(body, &fields) != nil {
		return nil, nil, false
	}
	// Duplicate keys: the last one wins, as when decoding into the struct; a map keeps one per
	// spelling, so read the object in order.
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		switch k := tok.(string); {
		case strings.EqualFold(k, "input"):
			input = v
		case strings.EqualFold(k, "eventData"):
			data = v
		default:
			return nil, nil, false
		}
	}
	return input, data, true
}

// lastMessage returns the last message queued for the pending instance.
func lastMessage(t *testing.T, b *memory.Backend) backend.WorkMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		item, err := b.NextOrchestrationWorkItem(ctx)
		if err != nil {
			t.Fatalf("no work item: %v", err)
		}
		if len(item.Messages) > 0 && item.InstanceID != existingID || item.InstanceID == existingID && len(item.Messages) > 1 {
			return item.Messages[len(item.Messages)-1]
		}
		_ = b.AbandonOrchestrationWorkItem(ctx, item, time.Hour) // the pending instance's start alone
	}
}

// sameJSON reports whether a and b are the same JSON value; an absent one is null.
func sameJSON(a, b []byte) bool {
	if len(a) == 0 {
		a = []byte("null")
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// cleanable reports whether the ServeMux would clean the escaped path (and redirect): "." or
// ".." segments, or empty ones. Escaped, an ID or name gives such a segment only if it is "." or
// ".." ('/' is escaped).
func cleanable(path string) bool {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, s := range segs {
		if s == "." || s == ".." || s == "" && i < len(segs)-1 {
			return true
		}
	}
	return false
}

// viaJSON returns s as JSON carries it (the start message is JSON): each byte that is not valid
// UTF-8 becomes U+FFFD, as the engine stores a raised event's ID in any case.
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var back string
	_ = json.Unmarshal(b, &back)
	return back
}
