package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// startTestDev runs startDev as `jetflow dev` does, on a free loopback port with its data in
// t.TempDir(), logging at level to t; with an apiConfig it also serves the HTTP API. It stops
// when the test ends. Its queue raiser's queues are set up when it returns.
func startTestDev(t *testing.T, level zerolog.Level, api ...apiConfig) *devServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.NATSListen = "127.0.0.1:-1"
	ctx, cancel := context.WithTimeout(context.Background(), examplestack.WaitTimeout)
	defer cancel()
	d, err := startDev(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(level), api...)
	if err != nil {
		t.Fatalf("startDev: %v", err)
	}
	t.Cleanup(d.Stop)
	return d
}

// TestDevEndToEnd runs the dev server's wiring in-process (any free port, a temporary data
// directory) and drives it through the same functions the CLI runs. It waits for the worker
// through the dev server's client.
func TestDevEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTestDev(t, zerolog.WarnLevel)
	if !d.seeded {
		t.Error("the demo inventory was not seeded on a new data directory")
	}
	c := devCLI{ctx: ctx, client: d.w.client, nats: []string{"--nats", d.URL()}}
	t.Run("start raise wait", func(t *testing.T) { testDevStartRaiseWait(t, c) })
	t.Run("exit codes", func(t *testing.T) { testDevExitCodes(t, c) })
	t.Run("start with event, history, rewind", func(t *testing.T) { testDevStartWithEventHistoryRewind(t, c) })
	t.Run("list and restart", func(t *testing.T) { testDevListRestart(t, c) })
	t.Run("concurrent starts", func(t *testing.T) { testDevConcurrentStarts(t, c) })
}

// testDevConcurrentStarts: of 30 concurrent `jetflow start` of one ID, exactly one succeeds and
// the others exit with exitExists, on a new ID and on one whose instance ended, with and
// without an event; oversize input is a usage error.
func testDevConcurrentStarts(t *testing.T, c devCLI) {
	const n = 30
	race := func(what string, args ...string) {
		t.Helper()
		codes := make([]int, n)
		errs := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i], codes[i] = runCmd(c.ctx, append(args, c.nats...)...) })
		}
		wg.Wait()
		ok := 0
		for i, code := range codes {
			switch code {
			case exitOK:
				ok++
			case exitExists:
				if !strings.Contains(errs[i], "exists") {
					t.Errorf("%s: exit %d says %q", what, code, errs[i])
				}
			default:
				t.Fatalf("%s: start %d exited %d: %s", what, i, code, errs[i])
			}
		}
		if ok != 1 {
			t.Fatalf("%s: %d starts succeeded, want exactly 1", what, ok)
		}
	}
	input := `{"amountCents": 500000, "requester": "cy"}` // large enough to wait for approval
	race("new ID", "start", "BudgetApproval", "--id", "cli-race", "--input", input)
	examplestack.WaitFor(t, c.client, "cli-race", "waiting for Approval", examplestack.WaitingFor("Approval"))
	c.run(t, 0, "terminate", "cli-race")
	c.run(t, exitEnded, "wait", "cli-race", "--timeout", "20s")
	race("ended ID", "start", "BudgetApproval", "--id", "cli-race", "--input", input)
	// An event the instance does not wait for, so that it stays running while they race (one
	// that ended would rightly be started again).
	race("with event", "start", "BudgetApproval", "--id", "cli-race-event", "--input", input, "--event", "Note", "--event-data", "1")
	examplestack.WaitFor(t, c.client, "cli-race-event", "waiting for Approval", examplestack.WaitingFor("Approval"))
	if s, err := c.client.GetStatus(c.ctx, "cli-race-event"); err != nil || s.Generation != 1 {
		t.Errorf("cli-race-event: %+v %v, want generation 1", s, err)
	}
	big := `"` + strings.Repeat("x", 1<<20) + `"`
	_, errOut := c.run(t, exitUsage, "start", "BudgetApproval", "--id", "cli-too-big", "--input", big)
	if !strings.Contains(errOut, "too large") {
		t.Errorf("oversize start says %q", errOut)
	}
	c.run(t, exitNotFound, "status", "cli-too-big")
}

// devCLI runs CLI commands against a dev server; client is the dev server's.
type devCLI struct {
	ctx    context.Context
	client *engine.Client
	nats   []string // the --nats flag
}

// run runs one command and checks its exit code.
func (c devCLI) run(t *testing.T, wantCode int, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := runCmd(c.ctx, append(args, c.nats...)...)
	if code != wantCode {
		t.Fatalf("jetflow %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
	}
	return stdout, stderr
}

func testDevStartRaiseWait(t *testing.T, c devCLI) {
	out, _ := c.run(t, 0, "start", "BudgetApproval", "--input", `{"amountCents": 500000, "requester": "ana"}`)
	id := strings.TrimSpace(out)
	if id == "" {
		t.Fatal("start printed no instance ID")
	}
	// The worker takes the start asynchronously.
	examplestack.WaitFor(t, c.client, id, "waiting for Approval", examplestack.WaitingFor("Approval"))
	out, _ = c.run(t, 0, "status", id)
	if !strings.Contains(out, "waiting for  event Approval") {
		t.Errorf("status before the event:\n%s\nwant it to say it waits for event Approval", out)
	}
	c.run(t, 0, "raise", id, "Approval", "true", "--event-id", "approval-1")
	out, _ = c.run(t, 0, "wait", id, "--timeout", "20s")
	if got := strings.TrimSpace(out); got != `"approved"` {
		t.Errorf("wait printed %q, want %q", got, `"approved"`)
	}
	out, _ = c.run(t, 0, "status", id, "--history")
	for _, want := range []string{"Completed", "EventRaised", "event ID approval-1", "ApproveBudget"} {
		if !strings.Contains(out, want) {
			t.Errorf("status --history does not mention %q:\n%s", want, out)
		}
	}
}

func testDevExitCodes(t *testing.T, c devCLI) {
	c.run(t, exitNotFound, "wait", "no-such-instance")
	c.run(t, exitNotFound, "raise", "no-such-instance", "Approval", "true")
	c.run(t, exitUsage, "raise", "x", "Approval", "yes")

	out, _ := c.run(t, 0, "start", "BudgetApproval", "--id", "order 42")
	if got := strings.TrimSpace(out); got != "order 42" {
		t.Fatalf("start --id printed %q", got)
	}
	examplestack.WaitFor(t, c.client, "order 42", "waiting for Approval", examplestack.WaitingFor("Approval"))
	_, errOut := c.run(t, exitTimedOut, "wait", "order 42", "--timeout", "300ms")
	if !strings.Contains(errOut, "waiting for event Approval") {
		t.Errorf("wait timeout message %q does not say what the instance waits for", errOut)
	}
	c.run(t, 0, "terminate", "order 42", "--reason", "no budget")
	c.run(t, exitEnded, "wait", "order 42", "--timeout", "20s")
	c.run(t, exitError, "raise", "order 42", "Approval", "true")
	c.run(t, 0, "purge", "order 42")
	c.run(t, exitNotFound, "status", "order 42")
}

func testDevStartWithEventHistoryRewind(t *testing.T, c devCLI) {
	out, _ := c.run(t, 0, "start", "BudgetApproval", "--id", "swe-cli", "--input", `{"amountCents": 3, "requester": "cy"}`,
		"--event", "Approval", "--event-data", "true", "--event-id", "cli-1")
	if got := strings.TrimSpace(out); got != "swe-cli" {
		t.Fatalf("start --event printed %q", got)
	}
	out, _ = c.run(t, 0, "wait", "swe-cli", "--timeout", "20s")
	if got := strings.TrimSpace(out); got != `"approved"` {
		t.Errorf("wait printed %q", got)
	}
	out, _ = c.run(t, 0, "history", "swe-cli")
	for _, want := range []string{"history (", "ExecutionStarted", "BudgetApproval", "EventRaised", "Approval", "event ID cli-1", "ExecutionCompleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("history does not mention %q:\n%s", want, out)
		}
	}
	out, _ = c.run(t, 0, "history", "swe-cli", "--json")
	var events []map[string]any
	if err := json.Unmarshal([]byte(out), &events); err != nil || len(events) < 3 || events[2]["type"] != "EventRaised" {
		t.Errorf("history --json (%v):\n%s", err, out)
	}
	c.run(t, exitNotFound, "history", "no-such-instance")
	c.run(t, exitUsage, "start", "BudgetApproval", "--event-data", "true")
	c.run(t, exitUsage, "start", "BudgetApproval", "--event", "Approval", "--event-data", "yes")

	// An orchestrator no worker has fails (when its start is let through); rewinding it is
	// accepted (and it fails again).
	c.run(t, 0, "start", "NoSuchOrchestrator", "--id", "rewind-cli", "--allow-unknown-names")
	c.run(t, exitEnded, "wait", "rewind-cli", "--timeout", "20s")
	before, err := c.client.GetStatus(c.ctx, "rewind-cli")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut := c.run(t, 0, "rewind", "rewind-cli", "--reason", "try again")
	if !strings.Contains(errOut, "rewind requested") {
		t.Errorf("rewind said %q", errOut)
	}
	examplestack.WaitFor(t, c.client, "rewind-cli", "failed again", func(s *engine.Status) bool {
		return s.Version > before.Version && s.Status.IsTerminal()
	})
	out, _ = c.run(t, 0, "history", "rewind-cli")
	if !strings.Contains(out, "ExecutionRewound") || !strings.Contains(out, "reason try again") ||
		strings.Count(out, "ExecutionCompleted") != 2 {
		t.Errorf("history after the rewind:\n%s", out)
	}
	c.run(t, exitNotFound, "rewind", "no-such-instance")
	c.run(t, 0, "start", "BudgetApproval", "--id", "rewind-running")
	c.run(t, exitError, "rewind", "rewind-running")
	c.run(t, 0, "terminate", "rewind-running")
}

func testDevListRestart(t *testing.T, c devCLI) {
	c.run(t, 0, "start", "BudgetApproval", "--id", "list-1", "--input", `{"amountCents": 1, "requester": "bo"}`)
	c.run(t, 0, "start", "BudgetApproval", "--id", "list-2", "--input", `{"amountCents": 2, "requester": "bo"}`)
	c.run(t, 0, "terminate", "list-1", "--reason", "test")
	examplestack.WaitEnded(t, c.client, "list-1")
	out, _ := c.run(t, 0, "list", "--prefix", "list-", "--status", "terminated", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0]["instanceId"] != "list-1" {
		t.Errorf("list --status terminated --json: %s", out)
	}
	out, _ = c.run(t, 0, "list", "--prefix", "list-", "--top", "1", "--all")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "INSTANCE") || !strings.HasPrefix(lines[1], "list-1 ") ||
		!strings.Contains(lines[1], "Terminated") || !strings.HasPrefix(lines[2], "list-2 ") {
		t.Errorf("list --all:\n%s", out)
	}
	out, errOut := c.run(t, 0, "list", "--prefix", "list-", "--top", "1")
	if strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "--continue") {
		t.Errorf("list --top 1: stdout\n%s\nstderr %s", out, errOut)
	}
	c.run(t, exitUsage, "list", "--status", "bogus")

	out, _ = c.run(t, 0, "restart", "list-1", "--same-id")
	if got := strings.TrimSpace(out); got != "list-1" {
		t.Errorf("restart --same-id printed %q", got)
	}
	out, _ = c.run(t, 0, "restart", "list-2")
	if got := strings.TrimSpace(out); got == "" || got == "list-2" {
		t.Errorf("restart printed %q", got)
	}
	c.run(t, exitExists, "restart", "list-2", "--same-id")
	c.run(t, exitNotFound, "restart", "no-such-instance")
}
