package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// treeRegistry: Parent calls Child as <id>-child, which calls Grandchild as <id>-child-grand,
// which waits for an event "Never" or a timer in an hour, whichever comes first.
func treeRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Parent": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallSubOrchestrator("Child", nil, durable.WithInstanceID(ctx.InstanceID()+"-child")).Await(nil)
		},
		"Child": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallSubOrchestrator("Grandchild", nil, durable.WithInstanceID(ctx.InstanceID()+"-grand")).Await(nil)
		},
		"Grandchild": func(ctx *durable.OrchestrationContext) (any, error) {
			return nil, ctx.WhenAny(ctx.WaitForExternalEvent("Never"), ctx.CreateTimer(time.Hour)).Await(nil)
		},
	}, nil)
}

// scheduledTimers counts the durable timers scheduled in the instance stream.
func (e *env) scheduledTimers() int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := e.b.Names()
	s, err := e.js.Stream(ctx, names.InstanceStream())
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(names.ScheduleSubjects()))
	if err != nil {
		e.t.Fatal(err)
	}
	return len(info.State.Subjects)
}

// waitUntil waits until the instance exists and its state satisfies ok (WaitFor needs it to
// exist: a sub-orchestration is created by its parent's turn).
func (e *env) waitUntil(id, what string, ok func(*engine.Status) bool) {
	e.t.Helper()
	natstest.CheckFor(e.t, 20*time.Second, 10*time.Millisecond, func() error {
		_, err := e.client.GetStatus(context.Background(), id)
		return err
	})
	e.waitFor(id, what, ok)
}

// startTree starts Parent as id and waits until its grandchild waits.
func (e *env) startTree(id string) []string {
	e.t.Helper()
	if _, err := e.client.ScheduleNew(context.Background(), "Parent", engine.WithInstanceID(id)); err != nil {
		e.t.Fatal(err)
	}
	tree := []string{id, id + "-child", id + "-child-grand"}
	e.waitUntil(tree[2], "waiting", waitingForEvent("Never"))
	// The turn's timer is published after its commit, which the status shows first.
	natstest.CheckFor(e.t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.scheduledTimers(); n != 1 {
			return fmt.Errorf("%d timers scheduled, want the grandchild's 1", n)
		}
		return nil
	})
	return tree
}

// Terminating a parent terminates its running sub-orchestration and theirs, and cancels their
// timers: no schedule is left behind. Purging the parent then purges the whole tree.
func TestTerminateAndPurgeAreRecursive(t *testing.T) {
	e := newEnv(t)
	e.startWorker(treeRegistry(t))
	ctx := context.Background()
	tree := e.startTree("tree")
	if err := e.client.Terminate(ctx, "tree", "enough"); err != nil {
		t.Fatal(err)
	}
	for _, id := range tree {
		if s := e.wait(id); s.Status != history.StatusTerminated {
			t.Fatalf("%s: status %s, want Terminated", id, s.Status)
		}
	}
	// The cancelled timer's schedule is replaced by one that fires at once and is dropped.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := e.scheduledTimers(); n != 0 {
			return fmt.Errorf("%d timers still scheduled after the terminate", n)
		}
		return nil
	})
	n, err := e.client.PurgeInstance(ctx, "tree")
	if err != nil || n != 3 {
		t.Fatalf("purge: %d instances, %v; want 3", n, err)
	}
	for _, id := range tree {
		if _, err := e.client.GetStatus(ctx, id); !errors.Is(err, engine.ErrInstanceNotFound) {
			t.Fatalf("%s after the purge: %v, want ErrInstanceNotFound", id, err)
		}
	}
}

// A terminate with WithRecursiveTerminate(false) leaves the sub-orchestrations running, and a
// non-recursive purge leaves them stored.
func TestTerminateNotRecursive(t *testing.T) {
	e := newEnv(t)
	e.startWorker(treeRegistry(t))
	ctx := context.Background()
	tree := e.startTree("flat")
	if err := e.client.Terminate(ctx, "flat", "only me", engine.WithRecursiveTerminate(false)); err != nil {
		t.Fatal(err)
	}
	if s := e.wait("flat"); s.Status != history.StatusTerminated {
		t.Fatalf("parent: status %s", s.Status)
	}
	// The child is told its parent's fate by nothing: a message sent now queues behind anything
	// the terminate sent it, so once the child has applied it, a terminate would have shown.
	if err := e.client.RaiseEvent(ctx, tree[1], "Probe", 1); err != nil {
		t.Fatal(err)
	}
	e.waitFor(tree[1], "to have applied the probe", func(s *engine.Status) bool { return s.HistoryEvents >= 5 })
	for _, id := range tree[1:] {
		st, err := e.client.GetStatus(ctx, id)
		if err != nil || st.Status != history.StatusRunning {
			t.Fatalf("%s: %+v %v, want Running", id, st, err)
		}
	}
	if n, err := e.client.PurgeInstance(ctx, "flat", engine.WithRecursivePurge(false)); err != nil || n != 1 {
		t.Fatalf("non-recursive purge: %d, %v", n, err)
	}
	if _, err := e.client.GetStatus(ctx, tree[1]); err != nil {
		t.Fatalf("child after a non-recursive purge: %v", err)
	}
}

// A parent that completed without awaiting its sub-orchestration: purging it terminates the
// running child (and its own child) rather than leaving them orphaned.
func TestPurgeTerminatesRunningSubOrchestrations(t *testing.T) {
	e := newEnv(t)
	reg := treeRegistry(t)
	if err := reg.AddOrchestrator("Launcher", func(ctx *durable.OrchestrationContext) (any, error) {
		ctx.CallSubOrchestrator("Child", nil, durable.WithInstanceID(ctx.InstanceID()+"-child"))
		return "launched", nil
	}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(reg)
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Launcher", engine.WithInstanceID("l")); err != nil {
		t.Fatal(err)
	}
	e.waitUntil("l-child-grand", "waiting", waitingForEvent("Never"))
	if s := e.wait("l"); s.Status != history.StatusCompleted {
		t.Fatalf("launcher: %s", s.Status)
	}
	if n, err := e.client.PurgeInstance(ctx, "l"); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1 (the children are still running)", n, err)
	}
	for _, id := range []string{"l-child", "l-child-grand"} {
		if s := e.wait(id); s.Status != history.StatusTerminated {
			t.Fatalf("%s: %s, want Terminated", id, s.Status)
		}
	}
}

// pingPongRegistry: Ping sends "ping" to the instance named in its input and waits for "pong",
// three times; Pong answers each ping with a pong to its sender, three times.
func pingPongRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Ping": func(ctx *durable.OrchestrationContext) (any, error) {
			var peer string
			if err := ctx.GetInput(&peer); err != nil {
				return nil, err
			}
			var got []int
			for i := range 3 {
				if err := ctx.SendEvent(peer, "ping", map[string]any{"from": ctx.InstanceID(), "n": i}); err != nil {
					return nil, err
				}
				var n int
				if err := ctx.WaitForExternalEvent("pong").Await(&n); err != nil {
					return nil, err
				}
				got = append(got, n)
			}
			return got, nil
		},
		"Pong": func(ctx *durable.OrchestrationContext) (any, error) {
			for range 3 {
				var p struct {
					From string
					N    int
				}
				if err := ctx.WaitForExternalEvent("ping").Await(&p); err != nil {
					return nil, err
				}
				if err := ctx.SendEvent(p.From, "pong", p.N*10); err != nil {
					return nil, err
				}
			}
			return "done", nil
		},
	}, nil)
}

func TestSendEventPingPong(t *testing.T) {
	e := newEnv(t)
	e.startWorker(pingPongRegistry(t))
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Pong", engine.WithInstanceID("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ScheduleNew(ctx, "Ping", engine.WithInstanceID("ping"), engine.WithInput("pong")); err != nil {
		t.Fatal(err)
	}
	if s := e.wait("ping"); s.Status != history.StatusCompleted || string(s.Output) != "[0,10,20]" {
		t.Fatalf("ping: %s %s %+v", s.Status, s.Output, s.Failure)
	}
	if s := e.wait("pong"); s.Status != history.StatusCompleted {
		t.Fatalf("pong: %s %+v", s.Status, s.Failure)
	}
	events, err := e.client.GetHistory(ctx, "ping")
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, ev := range events {
		if ev.Type == history.EventSent {
			sent++
			if ev.InstanceID != "pong" || ev.Name != "ping" || ev.EventID != history.SentEventID("ping", 1, ev.TaskID) {
				t.Fatalf("EventSent %+v", ev)
			}
		}
	}
	if sent != 3 {
		t.Fatalf("%d EventSent in ping's history, want 3", sent)
	}
}

// Sending to an instance that does not exist does not fail the sender: the event is discarded
// by the worker. Sending to one that has ended drops it.
func TestSendEventToMissingOrEndedInstance(t *testing.T) {
	e := newEnv(t)
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
		"Sender": func(ctx *durable.OrchestrationContext) (any, error) {
			var to string
			if err := ctx.GetInput(&to); err != nil {
				return nil, err
			}
			return "sent", ctx.SendEvent(to, "hello", 1)
		},
		"Quick": func(ctx *durable.OrchestrationContext) (any, error) { return "quick", nil },
	}, nil)
	w, _ := e.startWorker(reg)
	ctx := context.Background()
	if _, err := e.client.ScheduleNew(ctx, "Quick", engine.WithInstanceID("ended")); err != nil {
		t.Fatal(err)
	}
	e.wait("ended")
	for i, to := range []string{"nobody", "ended"} {
		id := fmt.Sprintf("sender-%d", i)
		if _, err := e.client.ScheduleNew(ctx, "Sender", engine.WithInstanceID(id), engine.WithInput(to)); err != nil {
			t.Fatal(err)
		}
		if s := e.wait(id); s.Status != history.StatusCompleted || string(s.Output) != `"sent"` {
			t.Fatalf("%s: %s %s %+v", id, s.Status, s.Output, s.Failure)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if st := w.Stats(); st.Discarded < 2 {
			return fmt.Errorf("stats %+v: want the two sent events discarded", st)
		}
		return nil
	})
	if _, err := e.client.GetStatus(ctx, "nobody"); !errors.Is(err, engine.ErrInstanceNotFound) {
		t.Fatalf("nobody: %v", err)
	}
	if events, _ := e.client.GetHistory(ctx, "ended"); faultCount(events)[history.EventRaised] != 0 {
		t.Fatalf("the ended instance applied the event: %+v", events)
	}
}

// A sender whose turn is abandoned right after its commit, or right after its publish (as if
// its worker died there), has that turn's tasks published again by the next worker: the event
// it sent is applied once. Counter counts the "ping" events it gets until "stop", which the
// test raises once the inbox is drained (the abandoned turn was published again and every
// message applied), so a second ping would have been applied before it.
func TestSendEventOnceAfterCrash(t *testing.T) {
	for _, afterPublish := range []bool{false, true} {
		t.Run(fmt.Sprintf("afterPublish=%v", afterPublish), func(t *testing.T) {
			e := newFaultEnv(t)
			reg := mustRegistry(t, map[string]durable.OrchestratorFunc{
				"Sender": func(ctx *durable.OrchestrationContext) (any, error) {
					if err := ctx.SendEvent("counter", "ping", 1); err != nil {
						return nil, err
					}
					return nil, ctx.WaitForExternalEvent("go").Await(nil)
				},
				"Counter": func(ctx *durable.OrchestrationContext) (any, error) {
					pings := 0
					stop := ctx.WaitForExternalEvent("stop")
					for {
						ping := ctx.WaitForExternalEvent("ping")
						var winner *durable.Task
						if err := ctx.WhenAny(ping, stop).Await(&winner); err != nil {
							return nil, err
						}
						if winner == stop {
							return pings, nil
						}
						pings++
					}
				},
			}, nil)
			plan := newFaultCrashPlan(map[string]uint64{"sender": 1}, nil)
			e.startHooked(plan.hooks(afterPublish), reg)
			ctx := context.Background()
			if _, err := e.client.ScheduleNew(ctx, "Counter", engine.WithInstanceID("counter")); err != nil {
				t.Fatal(err)
			}
			e.waitFor("counter", "waiting", waitingForEvent("ping"))
			if _, err := e.client.ScheduleNew(ctx, "Sender", engine.WithInstanceID("sender")); err != nil {
				t.Fatal(err)
			}
			faultRecvCrash(t, plan.crashed)
			e.faultInboxDrained()
			if err := e.client.RaiseEvent(ctx, "counter", "stop", nil); err != nil {
				t.Fatal(err)
			}
			faultWantOutput(t, e.faultDone("counter"), 1)
			if n := faultCount(faultCheckOnce(e, "sender"))[history.EventSent]; n != 1 {
				t.Fatalf("sender's history has %d EventSent, want 1", n)
			}
		})
	}
}
