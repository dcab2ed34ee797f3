package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/timeline"
)

func TestTimeline(t *testing.T) {
	e := newEnv(t)
	e.completeBudget(t, "tl-1")

	r := do(t, "GET", inst(e.open, "tl-1", "/timeline"), "")
	expectCode(t, r, http.StatusOK, "timeline")
	var tl timeline.Timeline
	if err := json.Unmarshal(r.body, &tl); err != nil {
		t.Fatalf("timeline %s: %v", r.body, err)
	}
	if len(tl.Events) != 1 || tl.Events[0].Name != orchestration.EventApproval || tl.Events[0].EventID != "approval-1" || tl.Events[0].ConsumedTurn == 0 {
		t.Errorf("events = %+v, want Approval (approval-1), consumed", tl.Events)
	}
	if len(tl.Activities) != 1 || tl.Activities[0].Name != "ApproveBudget" || tl.Activities[0].Outcome != timeline.Completed {
		t.Errorf("activities = %+v, want ApproveBudget completed", tl.Activities)
	}
	if len(tl.Turns) < 3 || len(tl.Entries) == 0 || tl.Entries[len(tl.Entries)-1].Type != "ExecutionCompleted" {
		t.Errorf("%d turns, entries %+v; want at least 3 turns ending with ExecutionCompleted", len(tl.Turns), tl.Entries)
	}

	checkCodes(t, []codeCase{
		{name: "no such instance", method: "GET", url: inst(e.open, "tl-none", "/timeline"), want: http.StatusNotFound},
		{name: "no key", method: "GET", url: inst(e.keyed, "tl-1", "/timeline"), want: http.StatusUnauthorized},
		{name: "key", method: "GET", url: inst(e.keyed, "tl-1", "/timeline"), headers: []string{"x-functions-key", testKey}, want: http.StatusOK},
		{name: "not a GET", method: "DELETE", url: inst(e.open, "tl-1", "/timeline"), want: http.StatusNotFound},
	})
}

func TestDeadLetters(t *testing.T) {
	st := examplestack.Start(t)
	open := st.ServeAPI(t, httpapi.Options{})
	keyed := st.ServeAPI(t, httpapi.Options{Keys: []string{testKey}})
	list := func(srv *httptest.Server, query string, headers ...string) (response, httpapi.DeadLettersPage) {
		t.Helper()
		r := do(t, "GET", api(srv, "deadletters"+query), "", headers...)
		var page httpapi.DeadLettersPage
		if r.code == http.StatusOK {
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatalf("dead letters %s: %v", r.body, err)
			}
		}
		return r, page
	}
	if r, page := list(open, ""); r.code != http.StatusOK || page.DeadLetters == nil || len(page.DeadLetters) != 0 {
		t.Fatalf("empty store: %d %s, want 200 and []", r.code, r.body)
	}

	// Two malformed events for a waiting instance are dead-lettered.
	examplestack.StartWaiting(t, st.Client, "BudgetApproval", "dl-1", nil, orchestration.EventApproval)
	for _, data := range []string{"{not json", "[also not"} {
		if err := st.NC.Publish("jetflow.inst.dl-1.event.Approval", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	var page httpapi.DeadLettersPage
	natstest.CheckFor(t, examplestack.WaitTimeout, 10*time.Millisecond, func() error {
		var r response
		r, page = list(open, "")
		if len(page.DeadLetters) < 2 {
			return fmt.Errorf("%d dead letters: %s", len(page.DeadLetters), r.body)
		}
		return nil
	})
	first := page.DeadLetters[0]
	if first.Position == 0 || first.Source != "inbox" || first.Data != "{not json" || first.Reason == "" || first.Subject == "" {
		t.Errorf("first dead letter = %+v, want the first malformed event, with its reason and position", first)
	}

	// Paging: top=1 gives the first with next, after=next the second.
	_, p1 := list(open, "?top=1")
	if len(p1.DeadLetters) != 1 || p1.Next != first.Position {
		t.Fatalf("top=1: %+v, want the first and next=%d", p1, first.Position)
	}
	_, p2 := list(open, "?top=1&after="+strconv.FormatUint(p1.Next, 10))
	if len(p2.DeadLetters) != 1 || p2.DeadLetters[0].Data != "[also not" {
		t.Errorf("after=%d: %+v, want the second", p1.Next, p2)
	}

	checkCodes(t, []codeCase{
		{name: "bad after", method: "GET", url: api(open, "deadletters?after=-1"), want: http.StatusBadRequest},
		{name: "bad top", method: "GET", url: api(open, "deadletters?top=0"), want: http.StatusBadRequest},
		{name: "no key", method: "GET", url: api(keyed, "deadletters"), want: http.StatusUnauthorized},
		{name: "key", method: "GET", url: api(keyed, "deadletters?code="+url.QueryEscape(testKey)), want: http.StatusOK},
		{name: "not a GET", method: "POST", url: api(open, "deadletters"), want: http.StatusNotFound},
	})
}
