package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestOperatorCommands: `jetflow cluster status` shows the dev server's worker owning every
// partition and the dead-letter count; `jetflow dlq` lists, shows, replays and deletes dead
// letters.
func TestOperatorCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTestDev(t, zerolog.WarnLevel)
	c := devCLI{ctx: ctx, client: d.w.client, nats: []string{"--nats", d.URL()}}

	out, _ := c.run(t, 0, "start", "BudgetApproval", "--id", "dlq-1", "--input", `{"amountCents": 500000, "requester": "ana"}`)
	examplestack.WaitFor(t, c.client, strings.TrimSpace(out), "waiting for Approval", examplestack.WaitingFor("Approval"))
	nc, err := nats.Connect(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("jetflow.inst.dlq-1.event.Approval", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	first := waitDeadLetter(t, c, 0)

	out, _ = c.run(t, 0, "dlq", "show", first)
	if !strings.Contains(out, "not valid JSON") || !strings.Contains(out, "{not json") {
		t.Errorf("dlq show %s:\n%s", first, out)
	}
	// Replayed, the message goes through the inbox again and, still malformed, comes back.
	c.run(t, 0, "dlq", "replay", first)
	second := waitDeadLetter(t, c, mustAtoi(t, first))
	c.run(t, exitNotFound, "dlq", "show", first)

	out, _ = c.run(t, 0, "cluster", "status")
	for _, want := range []string{"members: 1", "partitions: 16, 16 owned", "JETFLOW_INST", "dead letters: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster status does not say %q:\n%s", want, out)
		}
	}
	c.run(t, 0, "dlq", "purge", second)
	c.run(t, exitUsage, "dlq", "purge")
	c.run(t, exitUsage, "dlq", "frobnicate")
	if out, _ := c.run(t, 0, "cluster", "status"); !strings.Contains(out, "dead letters: 0") {
		t.Errorf("after the purge:\n%s", out)
	}
}

var positionRE = regexp.MustCompile(`(?m)^(\d+)\s`)

// waitDeadLetter waits until `dlq list --after after` lists a dead letter and returns its
// position.
func waitDeadLetter(t *testing.T, c devCLI, after int) string {
	t.Helper()
	var pos string
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		out, _ := c.run(t, 0, "dlq", "list", "--after", fmt.Sprint(after))
		m := positionRE.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("no dead letter after %d:\n%s", after, out)
		}
		pos = m[1]
		return nil
	})
	return pos
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
