package durable

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// v1 waits for two events and calls A after each; the patched code calls B instead from the
// change "use-b" on.
func patchFlow(patched bool) OrchestratorFunc {
	return func(ctx *OrchestrationContext) (any, error) {
		var calls []string
		for range 2 {
			if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
				return nil, err
			}
			name := "A"
			if patched && ctx.IsPatched("use-b") {
				name = "B"
			}
			if err := ctx.CallActivity(name, nil).Await(nil); err != nil {
				return nil, err
			}
			calls = append(calls, name)
		}
		return calls, nil
	}
}

func registryWith(t *testing.T, fn OrchestratorFunc) *Registry {
	t.Helper()
	reg := NewRegistry()
	if err := reg.AddOrchestrator("O", fn); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestIsPatched_OldInstanceReplaysOldBranch: an instance that ran the old code for its first
// step is replayed by the patched code without a non-determinism error, keeps its old step, and
// takes the new branch from its next new turn; the markers make a cold replay agree.
func TestIsPatched_OldInstanceReplaysOldBranch(t *testing.T) {
	old := newHarness(t, patchFlow(false))
	old.turn(started(`null`))
	old.turn(raised("Go", `1`))
	res := old.turn(history.NewTaskCompleted(t0, 1, json.RawMessage(`null`)))
	if len(res.Actions) != 0 {
		t.Fatalf("old code scheduled %+v while waiting", res.Actions)
	}

	// The patch is deployed: a worker replays the history with the new code.
	h := &harness{t: t, reg: registryWith(t, patchFlow(true)), now: old.now, past: old.past}
	e, err := Replay(h.reg, "inst-1", zerolog.Nop(), h.past)
	if err != nil {
		t.Fatalf("replaying the old history with the patched code: %v", err)
	}
	h.e = e
	t.Cleanup(e.Close)
	res = h.turn(raised("Go", `2`))
	if len(res.Actions) != 1 || res.Actions[0].Name != "B" {
		t.Fatalf("after the patch the instance schedules %+v, want activity B", res.Actions)
	}
	if !hasMarker(res.Events, "use-b") {
		t.Fatalf("the turn that took the patch recorded %+v, want a PatchMarker", res.Events)
	}
	res = h.turn(history.NewTaskCompleted(t0, 2, json.RawMessage(`null`)))
	if got := string(res.Output); got != `["A","B"]` {
		t.Fatalf("output %s, want [\"A\",\"B\"]", got)
	}
}

// TestIsPatched_NewInstanceTakesNewBranch: an instance started on the patched code takes the new
// branch everywhere and records the marker once.
func TestIsPatched_NewInstanceTakesNewBranch(t *testing.T) {
	h := newHarness(t, patchFlow(true))
	h.turn(started(`null`))
	h.turn(raised("Go", `1`))
	h.turn(history.NewTaskCompleted(t0, 1, json.RawMessage(`null`)))
	h.turn(raised("Go", `2`))
	res := h.turn(history.NewTaskCompleted(t0, 2, json.RawMessage(`null`)))
	if got := string(res.Output); got != `["B","B"]` {
		t.Fatalf("output %s, want [\"B\",\"B\"]", got)
	}
	n := 0
	for _, ev := range h.past {
		if ev.Type == history.PatchMarker {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d patch markers in the history, want 1", n)
	}
}

// TestIsPatched_WithoutPatchReplaysUnpatchedHistory: without IsPatched, the new code (calling B)
// on the old history is a non-determinism failure: what patching prevents.
func TestIsPatched_WithoutPatchIsNonDeterministic(t *testing.T) {
	old := newHarness(t, patchFlow(false))
	old.turn(started(`null`))
	old.turn(raised("Go", `1`))
	always := func(ctx *OrchestrationContext) (any, error) {
		if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
			return nil, err
		}
		return nil, ctx.CallActivity("B", nil).Await(nil)
	}
	e, err := Replay(registryWith(t, always), "inst-1", zerolog.Nop(), old.past)
	defer e.Close()
	if !errors.Is(err, ErrNonDeterminism) {
		t.Fatalf("replay error %v, want ErrNonDeterminism", err)
	}
}

func hasMarker(evs []history.Event, id string) bool {
	for _, ev := range evs {
		if ev.Type == history.PatchMarker && ev.Name == id {
			return true
		}
	}
	return false
}

// TestRegistryVersions: versions of one name coexist, the newest is chosen by CompareVersions,
// and an instance started on a version replays that version's code.
func TestRegistryVersions(t *testing.T) {
	reg := NewRegistry()
	for _, v := range []string{"", "2", "10", "9.1"} {
		v := v
		if err := reg.AddOrchestrator("O", func(*OrchestrationContext) (any, error) { return v, nil }, WithVersion(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.AddOrchestrator("O", func(*OrchestrationContext) (any, error) { return nil, nil }, WithVersion("2")); err == nil {
		t.Fatal("registering O version 2 twice: no error")
	}
	if err := reg.AddOrchestrator("P", func(*OrchestrationContext) (any, error) { return nil, nil }, WithVersion("a b")); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("version with a space: %v, want ErrInvalidVersion", err)
	}
	if got, _ := reg.NewestVersion("O"); got != "10" {
		t.Fatalf("newest version %q, want 10", got)
	}
	ev := history.NewExecutionStarted(t0, "O", nil, 1, nil)
	ev.Version = "9.1"
	e := NewExecutor(reg, "i", zerolog.Nop())
	res := e.Execute(t0, []history.Event{ev})
	if string(res.Output) != `"9.1"` || e.Version() != "9.1" {
		t.Fatalf("ran version %q with output %s, want 9.1", e.Version(), res.Output)
	}
	ev.Version = "3"
	res = NewExecutor(reg, "j", zerolog.Nop()).Execute(t0, []history.Event{ev})
	if res.Failure == nil || res.Failure.Type != "NotRegistered" {
		t.Fatalf("unknown version: failure %+v, want NotRegistered", res.Failure)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "1", -1}, {"1", "1", 0}, {"2", "10", -1}, {"1.1", "1", 1}, {"1.10", "1.9", 1}, {"beta", "alpha", 1}, {"2", "", 1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
