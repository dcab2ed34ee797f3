package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
)

// TestStartAtUsage: --at must be an RFC 3339 time and --version a usable version; anything else
// is a usage error that says what is expected, before anything is sent.
func TestStartAtUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--at", "tomorrow"}, "RFC 3339"},
		{[]string{"--at", "2026-01-02 15:04:05"}, "RFC 3339"},
		{[]string{"--at", "2026-01-02T15:04:05"}, "with a zone"},
		{[]string{"--version", "a b"}, "invalid orchestrator version"},
	} {
		args := append([]string{"start", "BudgetApproval", "--nats", "nats://127.0.0.1:1"}, tc.args...)
		_, errOut, code := runCmd(context.Background(), args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("jetflow %q: exit %d, stderr %q; want exit %d saying %q", args, code, errOut, exitUsage, tc.want)
		}
	}
}

// TestStartAt: `jetflow start --at` 2 s ahead leaves the instance Pending with its scheduled
// start in `jetflow status`; then it runs.
func TestStartAt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTestDev(t, zerolog.WarnLevel)
	c := devCLI{ctx: ctx, client: d.w.client, nats: []string{"--nats", d.URL()}}
	at := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	c.run(t, 0, "start", "BudgetApproval", "--id", "at-1", "--at", at.Format(time.RFC3339), "--input", `{"amountCents": 500000, "requester": "ana"}`)
	out, _ := c.run(t, 0, "status", "at-1")
	for _, want := range []string{"Pending", "scheduled start", at.Format("2006-01-02 15:04:05")} {
		if !strings.Contains(out, want) {
			t.Fatalf("status of a scheduled instance does not say %q:\n%s", want, out)
		}
	}
	examplestack.WaitFor(t, c.client, "at-1", "waiting for Approval", examplestack.WaitingFor("Approval"))
	if early := time.Until(at); early > time.Second {
		t.Fatalf("the instance started %v before its time", early)
	}
}
