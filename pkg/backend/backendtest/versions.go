package backendtest

// Orchestrator versions (backend.VersionRouter) and scheduled starts.

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// testMarkWaiting: a running instance marked waiting for a version shows it in its state; a
// route to a version no worker serves is ErrNoWorker and leaves the item out; the first turn
// committed after clears the mark.
func testMarkWaiting(t *testing.T, b backend.Backend) {
	router, ok := b.(backend.VersionRouter)
	if !ok {
		t.Skip("the backend routes no versions")
	}
	ctx := ctxFor(t)
	req, s := run(t, b, "vw")
	send(t, b, event("vw", "Go", `1`))
	item := next(t, b, "vw")
	v := backend.OrchestratorVersion{Name: req.Name, Version: "7"}
	wantErr(t, "routing to a version nobody serves", router.RouteOrchestrationWorkItem(ctx, item, v), backend.ErrNoWorker)
	waiting := *item.State
	waiting.WaitingForVersion, waiting.Warning, waiting.OrchestratorVersion = v.String(), "waiting for Flow@7", "7"
	if err := router.MarkWaiting(ctx, item, waiting); err != nil {
		t.Fatalf("marking waiting: %v", err)
	}
	got, err := b.GetInstance(ctx, "vw")
	if err != nil {
		t.Fatal(err)
	}
	if got.WaitingForVersion != "Flow@7" || got.Warning == "" || got.Status != history.StatusRunning || got.Generation != s.Generation {
		t.Fatalf("state after MarkWaiting: %+v, want Running, waiting for Flow@7", got)
	}
	if err := b.AbandonOrchestrationWorkItem(ctx, item, 0); err != nil {
		t.Fatal(err)
	}
	item = next(t, b, "vw")
	if len(item.Messages) != 1 || item.Messages[0].Kind != backend.KindEvent {
		t.Fatalf("after waiting, the item holds %+v, want the event", item.Messages)
	}
	if item.State.WaitingForVersion != "Flow@7" {
		t.Fatalf("the item's state %+v does not say it waited", item.State)
	}
	if err := b.AbandonOrchestrationWorkItem(ctx, item, 0); err != nil {
		t.Fatal(err)
	}
}

// testScheduledStart: a start with a start time ahead is pending with that time and delivered
// no earlier than it (schedules have one-second resolution); one with a time passed starts now.
func testScheduledStart(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	at := time.Now().Add(2 * time.Second).UTC()
	req := backend.StartRequest{InstanceID: "later", Name: "Flow", StartID: uuid.NewString(), Time: time.Now().UTC(), StartAt: at}
	if err := b.CreateInstance(ctx, req); err != nil {
		t.Fatal(err)
	}
	s, err := b.GetInstance(ctx, "later")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != history.StatusPending || !s.ScheduledStartTime.Equal(at) {
		t.Fatalf("scheduled instance: %s, scheduled %v, want Pending, scheduled %v", s.Status, s.ScheduledStartTime, at)
	}
	again := req
	again.StartID = uuid.NewString()
	wantErr(t, "starting a scheduled instance again", b.CreateInstance(ctx, again), backend.ErrInstanceExists)

	now := backend.StartRequest{InstanceID: "now", Name: "Flow", StartID: uuid.NewString(), Time: time.Now().UTC(), StartAt: time.Now().Add(-time.Hour)}
	if err := b.CreateInstance(ctx, now); err != nil {
		t.Fatal(err)
	}
	item := next(t, b, "now")
	if item.State == nil || !item.State.ScheduledStartTime.IsZero() {
		t.Fatalf("a start in the past: state %+v, want no scheduled time", item.State)
	}
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{Applied: 1}); err != nil {
		t.Fatal(err)
	}
	item = next(t, b, "later")
	if early := time.Until(at); early > time.Second {
		t.Fatalf("the scheduled start came %v before its time", early)
	}
	if len(item.Messages) != 1 || item.Messages[0].Kind != backend.KindStart {
		t.Fatalf("scheduled item: %+v, want the start", item.Messages)
	}
}

// testEngineVersions: a worker starts an instance on the newest version it has unless the start
// names one; the instance records it; a start naming a version the worker lacks waits, visibly,
// instead of failing.
func testEngineVersions(t *testing.T, b backend.Backend) {
	reg := durable.NewRegistry()
	for _, v := range []string{"1", "2"} {
		out := "v" + v
		fn := func(*durable.OrchestrationContext) (any, error) { return out, nil }
		if err := reg.AddOrchestrator("Versioned", fn, durable.WithVersion(v)); err != nil {
			t.Fatal(err)
		}
	}
	c := runWorkerWith(t, b, reg)
	ctx := ctxFor(t)
	for _, tc := range []struct{ id, version, want string }{{"newest", "", "2"}, {"named", "1", "1"}} {
		var opts []engine.StartOption
		if tc.version != "" {
			opts = append(opts, engine.WithVersion(tc.version))
		}
		if _, err := c.ScheduleNew(ctx, "Versioned", append(opts, engine.WithInstanceID(tc.id))...); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, c, tc.id, "ended", ended)
		wantOutput(t, s, `"v`+tc.want+`"`)
		if s.OrchestratorVersion != tc.want {
			t.Fatalf("%s ran version %q, want %q", tc.id, s.OrchestratorVersion, tc.want)
		}
	}
	if _, err := c.ScheduleNew(ctx, "Versioned", engine.WithInstanceID("v9"), engine.WithVersion("9")); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, c, "v9", "waiting for a worker", func(s *engine.Status) bool { return s.WaitingForVersion != "" })
	if s.Status != history.StatusPending || s.WaitingForVersion != "Versioned@9" || s.OrchestratorVersion != "9" {
		t.Fatalf("start on a version no worker has: %+v, want Pending, waiting for Versioned@9", s)
	}
	if _, err := c.ScheduleNew(ctx, "Versioned", engine.WithVersion("bad version")); !errors.Is(err, durable.ErrInvalidVersion) {
		t.Fatalf("start with an invalid version: %v, want ErrInvalidVersion", err)
	}
}

// testEngineScheduledStart: an instance started 2 s ahead is Pending with its start time, then
// runs after it.
func testEngineScheduledStart(t *testing.T, b backend.Backend) {
	c := runWorker(t, b)
	at := time.Now().Add(2 * time.Second)
	if _, err := c.ScheduleNew(ctxFor(t), "Timer", engine.WithInstanceID("sched"), engine.WithStartTime(at)); err != nil {
		t.Fatal(err)
	}
	s, err := c.GetStatus(ctxFor(t), "sched")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != history.StatusPending || s.ScheduledStartTime == nil || !s.ScheduledStartTime.Equal(at.UTC()) {
		t.Fatalf("scheduled instance: %s at %v, want Pending at %v", s.Status, s.ScheduledStartTime, at.UTC())
	}
	s = waitFor(t, c, "sched", "ended", ended)
	wantOutput(t, s, "true")
	if early := at.Sub(s.UpdatedAt); early > time.Second {
		t.Fatalf("the instance ran %v before its start time", early)
	}
}
