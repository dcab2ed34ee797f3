package engine_test

// Fault tests: turns abandoned between their steps, two workers racing on one instance (at
// random, and in forced interleavings built with fault hooks and a backend wrapper that holds
// messages back), timers that fire while no worker runs, non-deterministic code, and malformed
// messages. They all run against the real embedded JetStream, and wait on states, never on
// sleeps. Set JETFLOW_TEST_LOG=1 to see the workers' logs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/internal/testhooks"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// faultLog logs worker name's warnings and errors to stderr if JETFLOW_TEST_LOG is set.
func faultLog(name string) engine.WorkerOption {
	if os.Getenv("JETFLOW_TEST_LOG") == "" {
		return engine.WithLogger(zerolog.Nop())
	}
	return engine.WithLogger(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.DebugLevel).With().Timestamp().Str("worker", name).Logger())
}

// faultTimeout bounds every wait of these tests.
const faultTimeout = 30 * time.Second

// newFaultEnv is newEnv with a backend that redelivers an unacknowledged instance message after
// one second, so that an abandoned turn is retried quickly.
func newFaultEnv(t *testing.T, opts ...natsjs.Option) *env {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	// These tests let several workers take messages of one instance at once, which partition
	// ownership otherwise prevents: they exercise the safety net a handover relies on.
	opts = append([]natsjs.Option{natsjs.WithInboxAckWait(time.Second)}, opts...)
	if os.Getenv("JETFLOW_TEST_LOG") != "" {
		opts = append(opts, natsjs.WithLogger(zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr})))
	}
	b, err := natsjs.New(context.Background(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, js: js, b: b, client: engine.NewClient(b), opts: opts, shared: true}
}

// runFaultWorker starts a worker like env.startWorker, but lets the caller cancel it and wait for
// it separately, to do something in between (release a hook that blocks a turn).
func (e *env) runFaultWorker(reg *durable.Registry, opts ...engine.WorkerOption) (w *engine.Worker, cancel func(), wait func()) {
	e.t.Helper()
	return e.faultWorkerOn(nil, reg, opts...)
}

// startHooked runs a worker with test hooks until the test ends.
func (e *env) startHooked(h *testhooks.Hooks, reg *durable.Registry, opts ...engine.WorkerOption) (*engine.Worker, func()) {
	e.t.Helper()
	w, cancel, wait := e.faultWorkerOn(h, reg, opts...)
	return w, func() { cancel(); wait() }
}

// faultWorkerOn runs a worker, on a backend of its own (as a worker process has), with hooks h
// (nil: none), until the test ends.
func (e *env) faultWorkerOn(h *testhooks.Hooks, reg *durable.Registry, opts ...engine.WorkerOption) (w *engine.Worker, cancel func(), wait func()) {
	e.t.Helper()
	b, err := natsjs.New(context.Background(), e.js, e.opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.backends = append(e.backends, b)
	w, err = engine.NewWorker(b, reg, append(examplestack.WorkerOptions(e.t), opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	hooks := testhooks.Hooks{}
	if h != nil {
		hooks = *h
	}
	hooks.SharedInbox = hooks.SharedInbox || e.shared
	ctx, cancel := context.WithCancel(testhooks.With(context.Background(), &hooks))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("worker: %v", err)
		}
	}()
	wait = func() { <-done }
	e.t.Cleanup(func() { cancel(); wait() })
	return w, cancel, wait
}

// faultWait is env.waitFor with faultTimeout.
func (e *env) faultWait(id, what string, ok func(*engine.Status) bool) *engine.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
	defer cancel()
	s, err := e.client.WaitFor(ctx, id, ok)
	if err != nil {
		e.t.Fatalf("waiting for %s to be %s: %v (last %+v)", id, what, err, s)
	}
	return s
}

func (e *env) faultDone(id string) *engine.Status {
	e.t.Helper()
	return e.faultWait(id, "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
}

func (e *env) faultStatus(id string) *engine.Status {
	e.t.Helper()
	s, err := e.client.GetStatus(context.Background(), id)
	if err != nil {
		e.t.Fatalf("status of %s: %v", id, err)
	}
	return s
}

// faultWantOutput fails the test unless id completed with output want (compared as JSON).
func faultWantOutput(t *testing.T, s *engine.Status, want any) {
	t.Helper()
	if s.Status != history.StatusCompleted {
		t.Fatalf("%s: status %s failure %+v, want Completed", s.ID, s.Status, s.Failure)
	}
	w, _ := json.Marshal(want)
	var got, exp any
	if err := json.Unmarshal(s.Output, &got); err != nil {
		t.Fatalf("%s: output %s: %v", s.ID, s.Output, err)
	}
	json.Unmarshal(w, &exp)
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("%s: output %s, want %s", s.ID, s.Output, w)
	}
}

// faultTurnKeys returns the turn numbers of the records committed for id, in the order stored.
func (e *env) faultTurnKeys(id string) []uint64 {
	e.t.Helper()
	tok, err := natsjs.EncodeInstanceID(id)
	if err != nil {
		e.t.Fatal(err)
	}
	turns, err := committedTurns(context.Background(), e.js, e.b.Names())
	if err != nil {
		e.t.Fatal(err)
	}
	return turns[tok]
}

// faultCheckOnce reads the history of id, a single-generation instance that has ended, and reports
// everything that shows a step applied twice or lost: a task scheduled, completed or fired more
// than once, a completion without its scheduling, an event raised twice (the tests raise
// distinct payloads), more than one start or end, or committed turns that are not exactly
// 1..Turn, each with one OrchestratorStarted. It returns the history.
func faultCheckOnce(e *env, id string) []history.Event {
	t := e.t
	t.Helper()
	s := e.faultStatus(id)
	events, err := e.client.GetHistory(context.Background(), id)
	if err != nil {
		t.Fatalf("history of %s: %v", id, err)
	}
	var problems []string
	type key struct {
		typ history.EventType
		id  int
	}
	seen := map[key]int{}
	raised := map[string]int{}
	count := map[history.EventType]int{}
	for _, ev := range events {
		count[ev.Type]++
		switch ev.Type {
		case history.TaskScheduled, history.TimerCreated:
			seen[key{ev.Type, ev.TaskID}]++
		case history.TaskCompleted, history.TaskFailed:
			seen[key{history.TaskCompleted, ev.TaskID}]++
			if seen[key{history.TaskScheduled, ev.TaskID}] == 0 {
				problems = append(problems, fmt.Sprintf("task %d completed before it was scheduled", ev.TaskID))
			}
		case history.TimerFired:
			seen[key{ev.Type, ev.TaskID}]++
			if seen[key{history.TimerCreated, ev.TaskID}] == 0 {
				problems = append(problems, fmt.Sprintf("timer %d fired before it was created", ev.TaskID))
			}
		case history.EventRaised:
			raised[ev.Name+"="+string(ev.Input)]++
		}
	}
	for k, n := range seen {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("%s of task %d appears %d times", k.typ, k.id, n))
		}
	}
	for ev, n := range raised {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("event %s raised %d times", ev, n))
		}
	}
	if count[history.ExecutionStarted] != 1 {
		problems = append(problems, fmt.Sprintf("%d ExecutionStarted", count[history.ExecutionStarted]))
	}
	if s.Status.IsTerminal() && s.Status != history.StatusTerminated && count[history.ExecutionCompleted] != 1 {
		problems = append(problems, fmt.Sprintf("%d ExecutionCompleted", count[history.ExecutionCompleted]))
	}
	if uint64(count[history.OrchestratorStarted]) != s.Version {
		problems = append(problems, fmt.Sprintf("%d OrchestratorStarted in %d turns", count[history.OrchestratorStarted], s.Version))
	}
	keys := e.faultTurnKeys(id)
	for i, n := range keys {
		if n != uint64(i+1) {
			problems = append(problems, fmt.Sprintf("committed turns %v, want 1..%d", keys, s.Version))
			break
		}
	}
	if uint64(len(keys)) != s.Version {
		problems = append(problems, fmt.Sprintf("%d committed turns, state says %d", len(keys), s.Version))
	}
	if len(problems) > 0 {
		var b strings.Builder
		for _, ev := range events {
			fmt.Fprintf(&b, "\n  %s task=%d name=%s input=%s result=%s", ev.Type, ev.TaskID, ev.Name, ev.Input, ev.Result)
		}
		t.Fatalf("history of %s:\n  %s\nhistory:%s", id, strings.Join(problems, "\n  "), b.String())
	}
	return events
}

// faultCount counts the events of each type.
func faultCount(events []history.Event) map[history.EventType]int {
	n := map[history.EventType]int{}
	for _, ev := range events {
		n[ev.Type]++
	}
	return n
}

// faultInboxDrained waits until every instance message has been acked (the inbox is a work queue).
func (e *env) faultInboxDrained() {
	e.t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, e.b.Names().InstanceStream())
	if err != nil {
		e.t.Fatal(err)
	}
	natstest.CheckFor(e.t, faultTimeout, 20*time.Millisecond, func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d messages left in the inbox", info.State.Msgs)
		}
		return nil
	})
}

// faultInboxHas reports whether the inbox still holds the message with sequence seq on subject.
func (e *env) faultInboxHas(subject string, seq uint64) bool {
	e.t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, e.b.Names().InstanceStream())
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return e.b.Names().PublishedSubject(m.Subject) == subject
}

// faultActivityTasks returns the activity tasks the activity stream holds for instance id.
func (e *env) faultActivityTasks(id string) []backend.ActivityTask {
	e.t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, e.b.Names().ActivityStream())
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []backend.ActivityTask
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		var task backend.ActivityTask
		if err := json.Unmarshal(m.Data, &task); err != nil {
			e.t.Fatalf("activity task %s: %v", m.Data, err)
		}
		if task.InstanceID == id {
			out = append(out, task)
		}
	}
	return out
}

// faultRuns counts activity runs per instance and task.
type faultRuns struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *faultRuns) add(ctx context.Context) {
	info, _ := durable.ActivityInfoFrom(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs == nil {
		c.runs = map[string]int{}
	}
	c.runs[fmt.Sprintf("%s/%d", info.InstanceID, info.TaskID)]++
}

func (c *faultRuns) get(id string, task int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[fmt.Sprintf("%s/%d", id, task)]
}

// faultPipelineRegistry registers "Pipeline": Double(input), wait for "Go", Double(a+go). When "Go" is
// raised once the instance waits for it, the turns are always: 1 start (schedules task 1), 2
// task 1 done (waits), 3 "Go" (schedules task 2), 4 task 2 done (completes).
func faultPipelineRegistry(t *testing.T, runs *faultRuns) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Pipeline": func(ctx *durable.OrchestrationContext) (any, error) {
			var in, a, g, b int
			if err := ctx.GetInput(&in); err != nil {
				return nil, err
			}
			if err := ctx.CallActivity("Double", in).Await(&a); err != nil {
				return nil, err
			}
			if err := ctx.WaitForExternalEvent("Go").Await(&g); err != nil {
				return nil, err
			}
			if err := ctx.CallActivity("Double", a+g).Await(&b); err != nil {
				return nil, err
			}
			return []int{a, g, b}, nil
		},
	}, map[string]durable.ActivityFunc{
		"Double": durable.Activity(func(ctx context.Context, n int) (int, error) {
			runs.add(ctx)
			return 2 * n, nil
		}),
	})
}

func faultPipelineOutput(in int) []int {
	a, g := 2*in, 100+in
	return []int{a, g, 2 * (a + g)}
}

// faultCrashPlan makes a hook fail (or block) once at a chosen turn of chosen instances.
type faultCrashPlan struct {
	mu      sync.Mutex
	at      map[string]uint64 // instance → turn
	fired   map[string]bool
	crashed chan string     // instances whose turn was abandoned
	block   <-chan struct{} // if set, the hook waits for it to close before failing
}

func newFaultCrashPlan(at map[string]uint64, block <-chan struct{}) *faultCrashPlan {
	return &faultCrashPlan{at: at, fired: map[string]bool{}, crashed: make(chan string, len(at)), block: block}
}

func (p *faultCrashPlan) hook(id string, turn uint64) error {
	p.mu.Lock()
	want, ok := p.at[id]
	fire := ok && want == turn && !p.fired[id]
	if fire {
		p.fired[id] = true
	}
	p.mu.Unlock()
	if !fire {
		return nil
	}
	p.crashed <- id
	if p.block != nil {
		<-p.block
	}
	return testhooks.ErrInjectedCrash
}

func (p *faultCrashPlan) hooks(afterPublish bool) *testhooks.Hooks {
	if afterPublish {
		return &testhooks.Hooks{AfterPublish: p.hook}
	}
	return &testhooks.Hooks{AfterCommit: p.hook}
}

func faultRecvCrash(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case id := <-ch:
		return id
	case <-time.After(faultTimeout):
		t.Fatal("the fault hook never fired")
		return ""
	}
}

// TestInjectedCrash abandons turns right after their commit (AfterCommit) or right after their
// publish (AfterPublish), as if the worker died there, at every turn of an instance: the instance
// still completes with the right output, and its history holds every step once.
func TestInjectedCrash(t *testing.T) {
	for _, afterPublish := range []bool{false, true} {
		hook := "AfterCommit"
		if afterPublish {
			hook = "AfterPublish"
		}
		t.Run(hook+"/SameWorker", func(t *testing.T) { testCrashSameWorker(t, afterPublish) })
		t.Run(hook+"/CleanWorker", func(t *testing.T) { testCrashCleanWorker(t, afterPublish) })
	}
}

// testCrashSameWorker: instance crash-k is abandoned once at turn k (k = 1..4: the start, an
// activity result, an event, the completion); the same worker carries on, and the abandoned
// messages come back after the inbox ack wait.
func testCrashSameWorker(t *testing.T, afterPublish bool) {
	e := newFaultEnv(t)
	runs := &faultRuns{}
	at := map[string]uint64{}
	for k := 1; k <= 4; k++ {
		at[fmt.Sprintf("crash-%d", k)] = uint64(k)
	}
	plan := newFaultCrashPlan(at, nil)
	w, _ := e.startHooked(plan.hooks(afterPublish), faultPipelineRegistry(t, runs))
	ctx := context.Background()
	for k := 1; k <= 4; k++ {
		id := fmt.Sprintf("crash-%d", k)
		if _, err := e.client.ScheduleNew(ctx, "Pipeline", engine.WithInstanceID(id), engine.WithInput(k)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for k := 1; k <= 4; k++ {
		id := fmt.Sprintf("crash-%d", k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, faultTimeout)
			defer cancel()
			if _, err := e.client.WaitFor(ctx, id, waitingForEvent("Go")); err != nil {
				t.Errorf("%s never waited for Go: %v", id, err)
				return
			}
			if err := e.client.RaiseEvent(ctx, id, "Go", 100+k); err != nil {
				t.Errorf("raise to %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for k := 1; k <= 4; k++ {
		id := fmt.Sprintf("crash-%d", k)
		faultWantOutput(t, e.faultDone(id), faultPipelineOutput(k))
		events := faultCheckOnce(e, id)
		n := faultCount(events)
		if n[history.TaskScheduled] != 2 || n[history.TaskCompleted] != 2 || n[history.EventRaised] != 1 {
			t.Fatalf("%s: history counts %v", id, n)
		}
		if s := e.faultStatus(id); s.Version != 4 {
			t.Fatalf("%s: %d turns, want 4", id, s.Version)
		}
		for task := 1; task <= 2; task++ {
			if runs.get(id, task) < 1 {
				t.Fatalf("%s: task %d never ran", id, task)
			}
		}
	}
	if len(plan.crashed) != 4 {
		t.Fatalf("%d turns abandoned, want 4", len(plan.crashed))
	}
	// Every abandoned message came back and was acked: nothing is stuck in the inbox.
	e.faultInboxDrained()
	if st := w.Stats(); st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// testCrashCleanWorker: the turn that schedules the second activity (turn 3, applying "Go") is
// stopped at the hook; the worker is shut down there, its state is checked (nothing published
// after the hook, nothing acked), and a fresh worker finishes the instance.
func testCrashCleanWorker(t *testing.T, afterPublish bool) {
	e := newFaultEnv(t)
	runs := &faultRuns{}
	release := make(chan struct{})
	plan := newFaultCrashPlan(map[string]uint64{"victim": 3}, release)
	reg := faultPipelineRegistry(t, runs)
	_, cancel1, wait1 := e.faultWorkerOn(plan.hooks(afterPublish), reg)
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Pipeline", engine.WithInstanceID("victim"), engine.WithInput(7))
	if err != nil {
		t.Fatal(err)
	}
	e.faultWait(id, "waiting for Go", waitingForEvent("Go"))
	goSubject := "jetflow.inst.victim.event.Go"
	ack, err := e.js.Publish(ctx, goSubject, []byte("107"))
	if err != nil {
		t.Fatal(err)
	}
	faultRecvCrash(t, plan.crashed)

	// The turn is parked in the hook: it was committed, and (AfterPublish) published.
	if keys := e.faultTurnKeys(id); len(keys) != 3 {
		t.Fatalf("committed turns %v, want 1..3", keys)
	}
	// The committed record is the state: turn 3 whether or not its tasks were published.
	wantTurn := uint64(3)
	check := func(when string) {
		t.Helper()
		if s := e.faultStatus(id); s.Version != wantTurn || s.Status != history.StatusRunning {
			t.Fatalf("%s: state at turn %d (%s), want %d", when, s.Version, s.Status, wantTurn)
		}
		if !e.faultInboxHas(goSubject, ack.Sequence) {
			t.Fatalf("%s: the Go event was acked", when)
		}
		if !afterPublish {
			for _, task := range e.faultActivityTasks(id) {
				if task.TaskID == 2 {
					t.Fatalf("%s: task 2 was published: %+v", when, task)
				}
			}
		}
	}
	check("in the hook")
	// Shut the worker down, then let the hook return: nothing may happen after it.
	cancel1()
	close(release)
	wait1()
	check("after the worker stopped")

	// A clean worker (after the inbox ack wait) is handed the Go event again, finds it applied by
	// turn 3, publishes that turn's tasks again, and finishes the instance.
	w2, _ := e.startWorker(reg)
	faultWantOutput(t, e.faultDone(id), faultPipelineOutput(7))
	events := faultCheckOnce(e, id)
	if n := faultCount(events); n[history.TaskScheduled] != 2 || n[history.TaskCompleted] != 2 || n[history.EventRaised] != 1 {
		t.Fatalf("history counts %v", n)
	}
	if runs.get(id, 2) < 1 {
		t.Fatal("task 2 never ran")
	}
	e.faultInboxDrained()
	if w2.Stats().Turns == 0 {
		t.Fatal("the clean worker committed no turn")
	}
}

// faultCollectRegistry registers "Collect": it waits for input-many "Item" events, one at a time, and
// returns their data in the order it received them.
func faultCollectRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Collect": func(ctx *durable.OrchestrationContext) (any, error) {
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return nil, err
			}
			got := make([]int, 0, n)
			for range n {
				var v int
				if err := ctx.WaitForExternalEvent("Item").Await(&v); err != nil {
					return nil, err
				}
				got = append(got, v)
			}
			return got, nil
		},
	}, nil)
}

// faultCheckCollected checks that id collected items in raise order, each event once.
func faultCheckCollected(e *env, id string, items []int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
	defer cancel()
	s, err := e.client.WaitForCompletion(ctx, id)
	if err != nil {
		e.t.Fatalf("%s did not complete: %v; it received %v of %v (state %+v)", id, err, e.faultRaised(id), items, s)
	}
	faultWantOutput(e.t, s, items)
	faultCheckOnce(e, id)
	if got := e.faultRaised(id); !reflect.DeepEqual(got, items) {
		e.t.Fatalf("%s: history raised %v, want %v", id, got, items)
	}
}

// faultHistory describes id's history, one turn a line.
func (e *env) faultHistory(id string) string {
	events, err := e.client.GetHistory(context.Background(), id)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range events {
		if ev.Type == history.OrchestratorStarted {
			b.WriteString("\n   ")
		}
		fmt.Fprintf(&b, " %s", ev.Type)
		if ev.TaskID != 0 {
			fmt.Fprintf(&b, "#%d", ev.TaskID)
		}
		if ev.Name != "" {
			fmt.Fprintf(&b, " %s", ev.Name)
		}
		if len(ev.Input) > 0 {
			fmt.Fprintf(&b, "(%s)", ev.Input)
		}
		if len(ev.Result) > 0 {
			fmt.Fprintf(&b, "=%s", ev.Result)
		}
	}
	return b.String()
}

// faultRaised returns the data of the events in id's history, in order.
func (e *env) faultRaised(id string) []int {
	events, err := e.client.GetHistory(context.Background(), id)
	if err != nil {
		e.t.Fatalf("history of %s: %v", id, err)
	}
	var got []int
	for _, ev := range events {
		if ev.Type == history.EventRaised {
			var v int
			json.Unmarshal(ev.Input, &v)
			got = append(got, v)
		}
	}
	return got
}

// faultCommitLog records which worker committed which turns of which instance.
type faultCommitLog struct {
	mu    sync.Mutex
	turns map[string]map[uint64]string // instance → turn → worker
	dup   []string
}

func (c *faultCommitLog) hook(worker string) func(string, uint64) error {
	return func(id string, turn uint64) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.turns == nil {
			c.turns = map[string]map[uint64]string{}
		}
		if c.turns[id] == nil {
			c.turns[id] = map[uint64]string{}
		}
		if prev, ok := c.turns[id][turn]; ok {
			c.dup = append(c.dup, fmt.Sprintf("%s turn %d committed by %s and %s", id, turn, prev, worker))
		}
		c.turns[id][turn] = worker
		return nil
	}
}

// TestTwoWorkersRaceOnInstances runs two workers on one backend and raises events to 30
// instances concurrently, so that the messages of one instance are spread over both workers:
// every instance collects its events in raise order, each once, and every turn number is
// committed by exactly one worker.
func TestTwoWorkersRaceOnInstances(t *testing.T) {
	const instances, events = 30, 6
	e := newFaultEnv(t)
	reg := faultCollectRegistry(t)
	commits := &faultCommitLog{}
	wa, _ := e.startHooked(&testhooks.Hooks{AfterCommit: commits.hook("A")}, reg, faultLog("A"))
	wb, _ := e.startHooked(&testhooks.Hooks{AfterCommit: commits.hook("B")}, reg, engine.WithCacheSize(0), faultLog("B"))
	ctx := context.Background()
	ids := make([]string, instances)
	items := make([][]int, instances)
	var wg sync.WaitGroup
	for i := range instances {
		ids[i] = fmt.Sprintf("race-%02d", i)
		for j := range events {
			items[i] = append(items[i], i*100+j)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID(ids[i]), engine.WithInput(events)); err != nil {
				t.Error(err)
				return
			}
			for _, v := range items[i] {
				if err := e.client.RaiseEvent(ctx, ids[i], "Item", v); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// All of them complete (if one does not, say what it received).
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for i, id := range ids {
		if s, err := e.client.WaitForCompletion(wctx, id); err != nil {
			t.Fatalf("%s did not complete (%v): %s at turn %d, waiting for %+v, having received %v of %v; committed turns %v:%s",
				id, err, s.Status, s.Version, s.Waiting, e.faultRaised(id), items[i], e.faultTurnKeys(id), e.faultHistory(id))
		}
	}
	for i, id := range ids {
		faultCheckCollected(e, id, items[i])
	}
	commits.mu.Lock()
	defer commits.mu.Unlock()
	if len(commits.dup) > 0 {
		t.Fatalf("turns committed twice: %v", commits.dup)
	}
	shared := 0
	for _, id := range ids {
		by := map[string]bool{}
		for _, w := range commits.turns[id] {
			by[w] = true
		}
		if len(by) == 2 {
			shared++
		}
	}
	sa, sb := wa.Stats(), wb.Stats()
	t.Logf("worker A %+v; worker B %+v; %d of %d instances had turns on both workers", sa, sb, shared, instances)
	if shared == 0 {
		t.Fatal("no instance was handled by both workers: the race was not exercised")
	}
	if sa.Turns+sb.Turns < instances*2 {
		t.Fatalf("only %d turns committed", sa.Turns+sb.Turns)
	}
}

// TestStaleCacheConflictIsRetried forces two workers to build the same turn: worker A holds
// instance "x" in its cache at turn 1 while worker B commits turn 2; A then gets the next event,
// builds turn 2 on its stale state, loses the commit, and must retry on fresh state without
// losing or repeating an event.
func TestStaleCacheConflictIsRetried(t *testing.T) {
	e := newFaultEnv(t)
	reg := faultCollectRegistry(t)
	ctx := context.Background()
	// A runs one turn at a time; its hook parks it in the first turn of "blocker".
	p := newFaultPauser(t, "blocker", 1)
	// A caches x (whatever JETFLOW_TEST_CACHE_SIZE says): the stale cache is the point.
	wa, _ := e.startHooked(&testhooks.Hooks{AfterCommit: p.hook}, reg, engine.WithCacheSize(100), engine.WithConcurrency(1))
	ba := e.backends[len(e.backends)-1]

	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("x"), engine.WithInput(3)); err != nil {
		t.Fatal(err)
	}
	if s := e.faultWait("x", "waiting", waitingForEvent("Item")); s.Version != 1 {
		t.Fatalf("x at turn %d, want 1", s.Version)
	}
	// A alone ran x's first turn and keeps x (turn 1) in its cache. Now park A.
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("blocker"), engine.WithInput(1)); err != nil {
		t.Fatal(err)
	}
	p.wait(t)

	// B applies the first event to x. (If A receives it, A cannot run it; it comes back to
	// the consumer after the ack wait until B has it.)
	_, stopB := e.startWorker(reg)
	if err := e.client.RaiseEvent(ctx, "x", "Item", 1); err != nil {
		t.Fatal(err)
	}
	e.faultWait("x", "at turn 2", func(s *engine.Status) bool { return s.Version >= 2 })
	stopB()

	// A resumes with x at turn 1 in its cache, and gets every message from now on.
	p.release()
	for _, v := range []int{2, 3} {
		if err := e.client.RaiseEvent(ctx, "x", "Item", v); err != nil {
			t.Fatal(err)
		}
	}
	faultCheckCollected(e, "x", []int{1, 2, 3})
	if err := e.client.RaiseEvent(ctx, "blocker", "Item", 9); err != nil {
		t.Fatal(err)
	}
	faultCheckCollected(e, "blocker", []int{9})
	// A's stale state shows either when A reads x's inbox (event 1 is gone: B applied it) or
	// when A's commit of turn 2 conflicts with B's.
	if st, bst := wa.Stats(), ba.Stats(); st.Conflicts+bst.Conflicts == 0 {
		t.Fatalf("worker A held x at a stale state but saw no conflict: engine %+v, backend %+v", st, bst)
	}
}

// TestTimerFiresWhileNoWorkerRuns: a durable timer that comes due while no worker runs fires
// as soon as one starts.
func TestTimerFiresWhileNoWorkerRuns(t *testing.T) {
	e := newFaultEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Nap": func(ctx *durable.OrchestrationContext) (any, error) {
			start := ctx.CurrentTime()
			if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
				return nil, err
			}
			if d := ctx.CurrentTime().Sub(start); d < time.Second {
				return nil, fmt.Errorf("woke after %v", d)
			}
			return "done", nil
		},
	}, nil)
	_, stop1 := e.startWorker(reg)
	ctx := context.Background()
	id, err := e.client.ScheduleNew(ctx, "Nap", engine.WithInstanceID("napper"))
	if err != nil {
		t.Fatal(err)
	}
	s := e.faultWait(id, "waiting for its timer", func(s *engine.Status) bool { return s.Waiting != nil && len(s.Waiting.Timers) > 0 })
	fireAt := s.Waiting.Timers[0]
	stop1()

	// The timer comes due with no worker: the server puts it in the instance's inbox.
	stream, err := e.js.Stream(ctx, e.b.Names().InstanceStream())
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, faultTimeout, 20*time.Millisecond, func() error {
		if now := time.Now(); now.Before(fireAt) {
			return fmt.Errorf("now %v is before the fire time %v", now, fireAt)
		}
		if _, err := stream.GetLastMsgForSubject(ctx, "jetflow.part.*.napper.timer"); err != nil {
			return fmt.Errorf("timer message: %w", err)
		}
		return nil
	})
	if s := e.faultStatus(id); s.Status != history.StatusRunning {
		t.Fatalf("status %s before a worker started", s.Status)
	}

	e.startWorker(reg)
	faultWantOutput(t, e.faultDone(id), "done")
	events := faultCheckOnce(e, id)
	if n := faultCount(events); n[history.TimerCreated] != 1 || n[history.TimerFired] != 1 {
		t.Fatalf("history counts %v", n)
	}
	e.faultInboxDrained()
}

// TestNonDeterminismFailsOnlyThatInstance: orchestrator code changed under running instances
// fails those instances with a non-determinism failure, and only them: "old" ran Flow v1, which
// calls A, and v2 calls B instead; "grown" ran Grow v1, which calls A, and v2 calls A then B.
// The failing turn records the failure and nothing of the new code (B is neither recorded nor
// run), and the worker carries on with other instances.
func TestNonDeterminismFailsOnlyThatInstance(t *testing.T) {
	e := newFaultEnv(t)
	runs := &faultRuns{}
	activity := func(out string) durable.ActivityFunc {
		return func(ctx context.Context, _ json.RawMessage) (any, error) {
			runs.add(ctx)
			return out, nil
		}
	}
	activities := map[string]durable.ActivityFunc{"A": activity("a"), "B": activity("b")}
	// flow calls the activities in turn, waits for "Go", and returns what it got.
	flow := func(version string, calls ...string) durable.OrchestratorFunc {
		return func(ctx *durable.OrchestrationContext) (any, error) {
			var out []string
			for _, name := range calls {
				var r string
				if err := ctx.CallActivity(name, nil).Await(&r); err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			var g string
			if err := ctx.WaitForExternalEvent("Go").Await(&g); err != nil {
				return nil, err
			}
			return append(out, g, version), nil
		}
	}
	v1 := mustRegistry(t, map[string]durable.OrchestratorFunc{"Flow": flow("v1", "A"), "Grow": flow("v1", "A")}, activities)
	v2 := mustRegistry(t, map[string]durable.OrchestratorFunc{"Flow": flow("v2", "B"), "Grow": flow("v2", "A", "B")}, activities)
	ctx := context.Background()
	start := func(name, id string) {
		t.Helper()
		if _, err := e.client.ScheduleNew(ctx, name, engine.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		e.faultWait(id, "waiting for Go", waitingForEvent("Go"))
	}

	_, stop1 := e.startWorker(v1)
	start("Flow", "old")
	start("Grow", "grown")
	stop1()

	w2, _ := e.startWorker(v2, engine.WithCacheSize(0))
	start("Flow", "new")
	for _, id := range []string{"old", "grown", "new"} {
		if err := e.client.RaiseEvent(ctx, id, "Go", "go-"+id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"old", "grown"} {
		s := e.faultDone(id)
		if s.Status != history.StatusFailed || s.Failure == nil {
			t.Fatalf("%s: status %s failure %+v, want Failed", id, s.Status, s.Failure)
		}
		if !strings.Contains(s.Failure.Message, durable.ErrNonDeterminism.Error()) {
			t.Fatalf("%s: failure %q does not mention %q", id, s.Failure.Message, durable.ErrNonDeterminism)
		}
		t.Logf("%s: %s: %s", id, s.Failure.Type, s.Failure.Message)
		if err := e.client.RaiseEvent(ctx, id, "Go", "again"); !errors.Is(err, engine.ErrInstanceEnded) {
			t.Fatalf("%s: raise to the failed instance: %v, want ErrInstanceEnded", id, err)
		}
	}

	faultWantOutput(t, e.faultDone("new"), []string{"b", "go-new", "v2"})
	faultCheckOnce(e, "new")
	// The worker carries on: a third instance runs from start to end.
	start("Grow", "after")
	if err := e.client.RaiseEvent(ctx, "after", "Go", "go-after"); err != nil {
		t.Fatal(err)
	}
	faultWantOutput(t, e.faultDone("after"), []string{"a", "b", "go-after", "v2"})
	faultCheckOnce(e, "after")
	if st := w2.Stats(); st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}

	// The failing turn recorded the failure and nothing else.
	for _, id := range []string{"old", "grown"} {
		events, err := e.client.GetHistory(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n := faultCount(events)
		var after []string
		for i, ev := range events {
			if ev.Type == history.ExecutionCompleted {
				for _, ev := range events[i+1:] {
					after = append(after, fmt.Sprintf("%s %q (task %d)", ev.Type, ev.Name, ev.TaskID))
				}
				break
			}
		}
		switch {
		case len(after) > 0:
			t.Errorf("%s: the history goes on after ExecutionCompleted(Failed): %v", id, after)
		case events[len(events)-1].Status != history.StatusFailed:
			t.Errorf("%s: history ends with %+v", id, events[len(events)-1])
		case n[history.TaskScheduled] != 1 || n[history.TaskCompleted] != 1:
			t.Errorf("%s: %d TaskScheduled, %d TaskCompleted, want v1's activity only", id, n[history.TaskScheduled], n[history.TaskCompleted])
		}
		// "after" ran B after any B published for the failed instances (one stream, in order).
		for task := 1; task <= 2; task++ {
			if n := runs.get(id, task); n > 1 || (task > 1 && n > 0) {
				t.Errorf("%s: task %d ran %d times: the changed code's call was executed for a failed instance", id, task, runs.get(id, task))
			}
		}
	}
}

// TestMalformedMessagesDoNotBlock publishes every kind of unusable message to a running
// instance, between two valid events: each one lands in the dead-letter stream with its subject,
// payload and a reason that says what is wrong; the valid events are applied in order and
// nothing is left in the inbox.
func TestMalformedMessagesDoNotBlock(t *testing.T) {
	e := newFaultEnv(t)
	w, _ := e.startWorker(faultCollectRegistry(t), engine.WithMaxPayload(1024), faultLog("W"))
	ctx := context.Background()
	id := "mal"
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID(id), engine.WithInput(2)); err != nil {
		t.Fatal(err)
	}
	e.faultWait(id, "waiting", waitingForEvent("Item"))

	big := `"` + strings.Repeat("x", 2000) + `"`
	type bad struct {
		subject string
		data    []byte
		reason  string // expected in the dead-letter reason
	}
	first := []bad{
		{"jetflow.inst.mal.event.Item", []byte("{not json"), "not valid JSON"},
		{"jetflow.inst.mal.event.Item", []byte(big), "exceeds the limit of 1024"},
		{"jetflow.inst.mal.result", []byte("garbage"), "not a valid task result"},
		{"jetflow.inst.mal.result", []byte(`{"generation":1,"taskId":0}`), "not a valid task result"},
		{"jetflow.inst.mal.result", []byte{0xff, 0x00, 0xfe}, "not a valid task result"},
		{"jetflow.inst.mal.result", []byte(`{"generation":1,"taskId":1,"result":` + big + `}`), "exceeds the limit of 1024"},
	}
	second := []bad{
		{"jetflow.inst.mal.timer", []byte("nope"), "not a valid timer"},
		{"jetflow.inst.mal.start", []byte("{}"), "not a valid start request"},
		{"jetflow.inst.mal.frobnicate", []byte("1"), `unknown message kind "frobnicate"`},
		{"jetflow.inst.bad=ZZ.event.Item", []byte("1"), "unusable subject"},
		{"jetflow.inst.mal.event.bad=ZZ", []byte("1"), "unusable subject"},
		{"jetflow.inst.mal.event", []byte("1"), "unusable subject"},
		{"jetflow.inst.mal.result.extra", []byte("{}"), "unusable subject"},
	}
	want := map[uint64]bad{}
	publish := func(list []bad) {
		for _, m := range list {
			ack, err := e.js.Publish(ctx, m.subject, m.data)
			if err != nil {
				t.Fatalf("publishing to %s: %v", m.subject, err)
			}
			want[ack.Sequence] = m
		}
	}
	publish(first)
	if _, err := e.js.Publish(ctx, "jetflow.inst.mal.event.Item", []byte("10")); err != nil {
		t.Fatal(err)
	}
	publish(second)
	if _, err := e.js.Publish(ctx, "jetflow.inst.mal.event.Item", []byte("20")); err != nil {
		t.Fatal(err)
	}
	faultCheckCollected(e, id, []int{10, 20})

	// Every malformed message has its dead-letter record.
	stream, err := e.js.Stream(ctx, e.b.Names().DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, faultTimeout, 20*time.Millisecond, func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(len(want)) {
			return fmt.Errorf("%d dead letters, want %d", info.State.Msgs, len(want))
		}
		return nil
	})
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(len(want))
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]backend.DeadLetter{}
	for msg := range batch.Messages() {
		var rec backend.DeadLetter
		if err := json.Unmarshal(msg.Data(), &rec); err != nil {
			t.Fatalf("dead letter %s: %v", msg.Data(), err)
		}
		if !strings.HasPrefix(msg.Subject(), "jetflow.dlq.") {
			t.Errorf("dead letter on subject %s", msg.Subject())
		}
		got[rec.Seq] = rec
	}
	if batch.Error() != nil {
		t.Fatal(batch.Error())
	}
	for seq, m := range want {
		rec, ok := got[seq]
		switch {
		case !ok:
			t.Errorf("no dead letter for #%d %s %q", seq, m.subject, m.data)
		case rec.Subject != m.subject || rec.Source != "inbox" || rec.Time.IsZero():
			t.Errorf("dead letter for #%d: %+v, want subject %s from the inbox", seq, rec, m.subject)
		case !strings.Contains(rec.Reason, m.reason):
			t.Errorf("dead letter for #%d %s: reason %q, want it to mention %q", seq, m.subject, rec.Reason, m.reason)
		case rec.Data != string(m.data) && string(rec.DataB64) != string(m.data):
			t.Errorf("dead letter for #%d %s: data %q / %q, want %q", seq, m.subject, rec.Data, rec.DataB64, m.data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d dead letters, want %d", len(got), len(want))
	}
	if st := w.Stats(); st.DeadLettered > uint64(len(want)) {
		t.Errorf("stats %+v, want at most %d dead-lettered by the engine (the backend takes unusable subjects)", st, len(want))
	}
	e.faultInboxDrained()
	// The worker still serves new instances.
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("after"), engine.WithInput(1)); err != nil {
		t.Fatal(err)
	}
	e.faultWait("after", "waiting", waitingForEvent("Item"))
	if err := e.client.RaiseEvent(ctx, "after", "Item", 5); err != nil {
		t.Fatal(err)
	}
	faultCheckCollected(e, "after", []int{5})
}

// faultHeld plays another worker that holds some of the instance messages: the deliveries that
// hold matches (on their stored subject and data) are intercepted before the worker sees them
// and stay unacknowledged until release.
type faultHeld struct {
	mu     sync.Mutex
	hold   func(subject string, data []byte) bool
	held   map[uint64]jetstream.Msg // the latest delivery of each held message
	passed map[uint64]bool
}

func newFaultHeld(hold func(subject string, data []byte) bool) *faultHeld {
	return &faultHeld{hold: hold, held: map[uint64]jetstream.Msg{}, passed: map[uint64]bool{}}
}

// intercept is the testhooks.Hooks.Intercept of the worker.
func (h *faultHeld) intercept(msg jetstream.Msg) bool {
	md, err := msg.Metadata()
	if err != nil {
		return false
	}
	seq := md.Sequence.Stream
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold != nil && h.hold(msg.Subject(), msg.Data()) {
		h.held[seq] = msg
		return true
	}
	h.passed[seq] = true
	return false
}

// state reports whether the worker has been handed seq, and whether seq is held.
func (h *faultHeld) state(seq uint64) (passed, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, held = h.held[seq]
	return h.passed[seq], held
}

// release stops holding, and hands the held messages back to the inbox, which delivers them
// again.
func (h *faultHeld) release() {
	h.mu.Lock()
	h.hold = nil
	held := h.held
	h.held = map[uint64]jetstream.Msg{}
	h.mu.Unlock()
	for _, m := range held {
		_ = m.Nak()
	}
}

// faultPauser parks a worker's turn (in a fault hook) right after it commits turn turn of instance
// id, once, until released.
type faultPauser struct {
	id          string
	turn        uint64
	paused      chan struct{}
	released    chan struct{}
	pauseOnce   sync.Once
	releaseOnce sync.Once
}

func newFaultPauser(t *testing.T, id string, turn uint64) *faultPauser {
	p := &faultPauser{id: id, turn: turn, paused: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(p.release)
	return p
}

func (p *faultPauser) hook(id string, turn uint64) error {
	if id == p.id && turn == p.turn {
		p.pauseOnce.Do(func() {
			close(p.paused)
			<-p.released
		})
	}
	return nil
}

func (p *faultPauser) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.paused:
	case <-time.After(faultTimeout):
		t.Fatalf("the worker never ran %s", p.id)
	}
}

func (p *faultPauser) release() { p.releaseOnce.Do(func() { close(p.released) }) }

// waitHeld waits until the worker has been handed each of pass and h holds each of hold.
func (h *faultHeld) waitHeld(t *testing.T, pass, hold []uint64) {
	t.Helper()
	natstest.CheckFor(t, faultTimeout, 10*time.Millisecond, func() error {
		for _, seq := range pass {
			if ok, _ := h.state(seq); !ok {
				return fmt.Errorf("#%d not handed to the worker yet", seq)
			}
		}
		for _, seq := range hold {
			if _, ok := h.state(seq); !ok {
				return fmt.Errorf("#%d not held yet", seq)
			}
		}
		return nil
	})
}

// TestEventHeldByAnotherWorkerIsNotSkipped is the deterministic form of the race in
// TestTwoWorkersRaceOnInstances: one worker is handed events 1 and 3 of an instance in one batch
// while event 2, between them in the inbox, is delivered to another worker that has not got to
// it yet. The instance must still apply 1, 2, 3 in inbox order, each once.
func TestEventHeldByAnotherWorkerIsNotSkipped(t *testing.T) {
	e := newFaultEnv(t)
	hb := newFaultHeld(func(subject string, data []byte) bool {
		return strings.HasSuffix(subject, ".x.event.Item") && string(data) == "2"
	})
	p := newFaultPauser(t, "blocker", 1)
	e.faultWorkerOn(&testhooks.Hooks{AfterCommit: p.hook, Intercept: hb.intercept}, faultCollectRegistry(t), engine.WithConcurrency(1), faultLog("A"))
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("x"), engine.WithInput(3)); err != nil {
		t.Fatal(err)
	}
	e.faultWait("x", "waiting", waitingForEvent("Item"))
	// Park the worker's only turn goroutine, so that events 1 and 3 queue up as one batch.
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("blocker"), engine.WithInput(1)); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	var seqs []uint64
	for _, v := range []string{"1", "2", "3"} {
		ack, err := e.js.Publish(ctx, "jetflow.inst.x.event.Item", []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	hb.waitHeld(t, []uint64{seqs[0], seqs[2]}, []uint64{seqs[1]})
	p.release()

	// The batch [1, 3] is turned; event 2 is still in the inbox, unacknowledged.
	e.faultWait("x", "past turn 1", func(s *engine.Status) bool { return s.Version >= 2 })
	if got := e.faultRaised("x"); !reflect.DeepEqual(got, []int{1, 2, 3}[:len(got)]) {
		t.Fatalf("x applied events %v: event 2 (inbox #%d), held by another worker, was skipped", got, seqs[1])
	}
	// The other worker gets to event 2 at last.
	hb.release()
	faultCheckCollected(e, "x", []int{1, 2, 3})
	if err := e.client.RaiseEvent(ctx, "blocker", "Item", 9); err != nil {
		t.Fatal(err)
	}
	faultCheckCollected(e, "blocker", []int{9})
}

// TestUnusableSubjectReadFromGapIsDeadLetteredOnce: a message with an unusable subject under an
// instance's subjects, delivered to another worker that has not dead-lettered it yet, sits in the
// inbox between the instance's messages. The worker that reads it from the inbox to fill the gap
// must not dead-letter it a second time under another reason; it is dead-lettered once, as an
// unusable subject.
func TestUnusableSubjectReadFromGapIsDeadLetteredOnce(t *testing.T) {
	e := newFaultEnv(t)
	const badSubject = "jetflow.inst.g.result.extra"
	hb := newFaultHeld(func(subject string, _ []byte) bool { return strings.HasSuffix(subject, ".g.result.extra") })
	e.faultWorkerOn(&testhooks.Hooks{Intercept: hb.intercept}, faultCollectRegistry(t), faultLog("A"))
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("g"), engine.WithInput(1)); err != nil {
		t.Fatal(err)
	}
	e.faultWait("g", "waiting", waitingForEvent("Item"))
	bad, err := e.js.Publish(ctx, badSubject, []byte(`{"generation":1,"taskId":1}`))
	if err != nil {
		t.Fatal(err)
	}
	hb.waitHeld(t, nil, []uint64{bad.Sequence})
	if _, err := e.js.Publish(ctx, "jetflow.inst.g.event.Item", []byte("1")); err != nil {
		t.Fatal(err)
	}
	faultCheckCollected(e, "g", []int{1})
	hb.release()
	e.faultInboxDrained()

	stream, err := e.js.Stream(ctx, e.b.Names().DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, e.b.Names().DeadLetterSubject("inbox"))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	var rec backend.DeadLetter
	if err := json.Unmarshal(raw.Data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Seq != bad.Sequence || !strings.Contains(rec.Reason, "unusable subject") {
		t.Errorf("dead letter #%d with reason %q, want #%d as an unusable subject", rec.Seq, rec.Reason, bad.Sequence)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("dead-letter stream holds %d records (%v), want one", info.State.Msgs, err)
	}
}

// TestRecoveryOvertakenByNewerTurn: worker B is handed a message that turn 2 applied but whose
// worker (A) has not acked it, and publishes turn 2's tasks on A's behalf; meanwhile A
// publishes turn 2 and commits and publishes turn 3. B must not go on with a replay of turns
// 1..2: the next event it applies must see events 1 and 2.
func TestRecoveryOvertakenByNewerTurn(t *testing.T) {
	e := newFaultEnv(t)
	reg := faultCollectRegistry(t)
	ctx := context.Background()

	// A parks right after committing turn 2 of x (event 1).
	pa := newFaultPauser(t, "x", 2)
	_, cancelA, waitA := e.faultWorkerOn(&testhooks.Hooks{AfterCommit: pa.hook}, reg, faultLog("A"))
	if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID("x"), engine.WithInput(3)); err != nil {
		t.Fatal(err)
	}
	e.faultWait("x", "waiting", waitingForEvent("Item"))
	if _, err := e.js.Publish(ctx, "jetflow.inst.x.event.Item", []byte("1")); err != nil {
		t.Fatal(err)
	}
	pa.wait(t)

	// B gets event 1 when A's delivery of it expires, and finds it applied by turn 2, whose
	// tasks A may not have published: B publishes them again, and parks right there. B never
	// gets event 2.
	republished := make(chan uint64, 1)
	resumeB := make(chan struct{})
	var resumeOnce sync.Once
	t.Cleanup(func() { resumeOnce.Do(func() { close(resumeB) }) })
	var first sync.Once
	hb := newFaultHeld(func(_ string, data []byte) bool { return string(data) == "2" })
	republishB := func(id string, stateTurn uint64) {
		if id != "x" {
			return
		}
		first.Do(func() {
			republished <- stateTurn
			<-resumeB
		})
	}
	e.faultWorkerOn(&testhooks.Hooks{Intercept: hb.intercept, BeforeRepublish: republishB}, reg, faultLog("B"))
	select {
	case turn := <-republished:
		if turn != 2 {
			t.Fatalf("B republished at turn %d, want at turn 2", turn)
		}
	case <-time.After(faultTimeout):
		t.Fatal("worker B never republished turn 2 of x")
	}

	// Meanwhile A publishes turn 2 and runs turn 3 (event 2); then A stops.
	pa.release()
	e.faultWait("x", "at turn 2", func(s *engine.Status) bool { return s.Version >= 2 })
	if _, err := e.js.Publish(ctx, "jetflow.inst.x.event.Item", []byte("2")); err != nil {
		t.Fatal(err)
	}
	e.faultWait("x", "at turn 3", func(s *engine.Status) bool { return s.Version >= 3 })
	cancelA()
	waitA()

	// B resumes its load, and then gets event 3.
	resumeOnce.Do(func() { close(resumeB) })
	if _, err := e.js.Publish(ctx, "jetflow.inst.x.event.Item", []byte("3")); err != nil {
		t.Fatal(err)
	}
	s := e.faultWait("x", "past turn 3", func(s *engine.Status) bool { return s.Version >= 4 })
	if s.Status != history.StatusCompleted {
		t.Fatalf("x applied events %v but is %s at turn %d, waiting for %+v: turn 4 was built on a replay that lacks turn 3%s",
			e.faultRaised("x"), s.Status, s.Version, s.Waiting, e.faultHistory("x"))
	}
	faultCheckCollected(e, "x", []int{1, 2, 3})
}
