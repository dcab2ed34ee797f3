package soak

import (
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// The checks must catch what they look for: these feed them made-up histories and logs.

func TestCheckHistoryFindsDuplicates(t *testing.T) {
	p := &plan{ID: "i", Events: []event{{ID: "i:e1", Name: "Approval"}}}
	now := time.Now()
	ok := []history.Event{
		history.NewExecutionStarted(now, "BudgetApproval", nil, 1, nil),
		history.NewEventRaised(now, "Approval", json.RawMessage("true"), "i:e1"),
		history.NewTaskScheduled(now, 1, "ApproveBudget", nil),
		history.NewTaskCompleted(now, 1, nil),
		history.NewExecutionCompleted(now, history.StatusCompleted, json.RawMessage(`"approved"`), nil),
	}
	v := &verdict{Tasks: map[int]string{}}
	checkHistory(v, p, ok)
	if len(v.Lost) > 0 || len(v.Double) > 0 || v.Tasks[1] != "ApproveBudget" {
		t.Fatalf("a good history: lost %v, double %v, tasks %v", v.Lost, v.Double, v.Tasks)
	}
	for name, extra := range map[string]history.Event{
		"event":     ok[1],
		"scheduled": ok[2],
		"completed": ok[3],
		"stranger":  history.NewEventRaised(now, "Approval", nil, "other"),
	} {
		v := &verdict{Tasks: map[int]string{}}
		checkHistory(v, p, append(append([]history.Event{}, ok...), extra))
		if len(v.Double) != 1 {
			t.Errorf("%s twice: double %v", name, v.Double)
		}
	}
	v = &verdict{Tasks: map[int]string{}}
	checkHistory(v, p, []history.Event{ok[0], ok[2], ok[3], ok[4]})
	if len(v.Lost) != 1 || !strings.Contains(v.Lost[0], "i:e1") {
		t.Errorf("missing event: lost %v", v.Lost)
	}
}

func TestOutputMatches(t *testing.T) {
	plans := makePlans(10, rand.New(rand.NewSource(1)))
	permit := plans[2]
	got := json.RawMessage(`{"id":"permit-app-soak-00002","applicationId":"app-soak-00002","issuedAt":"2026-01-01T00:00:00Z"}`)
	if !permit.outputMatches(got) {
		t.Errorf("permit %s does not match %s", got, permit.Want)
	}
	if permit.outputMatches(json.RawMessage(`{"id":"permit-x","applicationId":"app-soak-00002"}`)) {
		t.Error("a wrong permit matches")
	}
	phone := plans[4]
	if !phone.outputMatches(json.RawMessage("false")) || phone.outputMatches(json.RawMessage("true")) {
		t.Error("phone verification output")
	}
}

func TestCountExecutions(t *testing.T) {
	log := `{"level":"info","component":"activities","instance_id":"a","activity":"ApproveBudget","task_id":1,"message":"budget approved"}
{"level":"info","component":"activities","instance_id":"a","activity":"ApproveBudget","task_id":1,"message":"budget approved"}
{"level":"info","component":"activities","phone":"+1","code":"1234","message":"SMS challenge code (not sent: LogSMS)"}
{"level":"info","component":"activities","instance_id":"b","activity":"SendSmsChallenge","task_id":1,"message":"SMS challenge sent"}
{"level":"info","component":"natsjs","partition":3,"from":"x","message":"took over partition of a dead member"}
{"level":"info","component":"activ`
	path := filepath.Join(t.TempDir(), "worker.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	vs := []*verdict{{ID: "a", Tasks: map[int]string{1: "ApproveBudget"}}, {ID: "c", Tasks: map[int]string{1: "X"}}}
	ac, err := countExecutions([]string{path}, vs)
	if err != nil {
		t.Fatal(err)
	}
	want := activityCounts{Tasks: 2, Executions: 2, Duplicates: 1, Unlogged: 1, Stray: 1, Torn: 1, Takeovers: 1}
	if ac != want {
		t.Errorf("got %+v, want %+v", ac, want)
	}
}

func TestMarkBad(t *testing.T) {
	plans := makePlans(2000, rand.New(rand.NewSource(1)))
	markBad(plans)
	kinds := map[int]int{}
	for _, p := range plans {
		if p.Bad != badNone {
			kinds[p.Bad]++
			if p.Orch != "BudgetApproval" {
				t.Errorf("bad input on %s", p.Orch)
			}
		}
	}
	for k := badInbox; k < badKinds; k++ {
		if kinds[k] == 0 {
			t.Errorf("no bad input of kind %d", k)
		}
	}
}

func TestProcCrashIsRecordedAndRestarted(t *testing.T) {
	dir := t.TempDir()
	crash := newProc("crash", dir, nil, "/bin/sh", "-c", "echo bye; exit 3")
	if err := crash.start(); err != nil {
		t.Fatal(err)
	}
	defer crash.stop(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for len(crash.allLogs()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := crash.crashReports()
	if len(got) == 0 || !strings.Contains(got[0], "exited on its own") || !strings.Contains(got[0], "bye") {
		t.Fatalf("crashes %q", got)
	}
	if len(crash.allLogs()) < 2 {
		t.Fatal("not restarted")
	}

	killed := newProc("killed", dir, nil, "/bin/sh", "-c", "sleep 30")
	if err := killed.start(); err != nil {
		t.Fatal(err)
	}
	cmd, err := killed.kill()
	if err != nil {
		t.Fatal(err)
	}
	if err := killed.restart(cmd); err != nil {
		t.Fatal(err)
	}
	killed.stop(time.Second)
	if c := killed.crashReports(); len(c) > 0 || len(killed.allLogs()) != 2 {
		t.Fatalf("a killed and stopped process: crashes %q, runs %d", c, len(killed.allLogs()))
	}
}
