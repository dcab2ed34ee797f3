package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// TestScheduledStart: ?scheduledStartTime= 2 s ahead leaves the instance Pending with its
// scheduled start time in the status until then; then it runs. A time in the past starts now;
// a time that is not RFC 3339, or a bad version, is a 400.
func TestScheduledStart(t *testing.T) {
	e := newEnv(t)
	at := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	r := do(t, "POST", api(e.open, "orchestrators/BudgetApproval/later?scheduledStartTime="+url.QueryEscape(at.Format(time.RFC3339))), `{"amountCents": 500000, "requester": "ana"}`)
	expectCode(t, r, http.StatusAccepted, "scheduled start")
	st := do(t, "GET", inst(e.open, "later", ""), "").json(t)
	if st["runtimeStatus"] != "Pending" || st["scheduledStartTime"] != at.Format(time.RFC3339) {
		t.Fatalf("scheduled instance: %s at %v, want Pending at %s", st["runtimeStatus"], st["scheduledStartTime"], at.Format(time.RFC3339))
	}
	s := examplestack.WaitFor(t, e.client, "later", "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))
	if s.Status != history.StatusRunning || time.Until(at) > time.Second {
		t.Fatalf("scheduled instance %s %v before its start time", s.Status, time.Until(at))
	}

	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	r = do(t, "POST", api(e.open, "orchestrators/BudgetApproval/now?scheduledStartTime="+past), `{"amountCents": 5, "requester": "ana"}`)
	expectCode(t, r, http.StatusAccepted, "start in the past")
	examplestack.WaitFor(t, e.client, "now", "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))

	for _, q := range []string{"scheduledStartTime=tomorrow", "scheduledStartTime=2026-01-02", "version=a%20b"} {
		r = do(t, "POST", api(e.open, "orchestrators/BudgetApproval/bad?"+q), `{}`)
		expectCode(t, r, http.StatusBadRequest, q)
	}
}
