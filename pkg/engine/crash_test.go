package engine_test

// A real worker process killed with SIGKILL in the middle of its work: the test binary runs
// itself as the worker (TestCrashChild), the parent kills it and starts another, and every
// instance still completes with the exact output and a history that holds each step once.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

const (
	crashChildEnv = "JETFLOW_CRASH_CHILD" // "1" in the worker process
	crashURLEnv   = "JETFLOW_NATS_URL"    // the parent's embedded server
)

// crashStepInput is the input of the "Step" activity: the list so far and the step to add.
type crashStepInput struct {
	Acc  []string `json:"acc"`
	Step string   `json:"step"`
}

// crashChain runs Step three times, waits for "Go", adds its data, and runs Step once more. Each
// step appends to the list, so the output shows every step exactly once, in order.
func crashChain(ctx *durable.OrchestrationContext) (any, error) {
	var acc []string
	step := func(name string) error {
		return ctx.CallActivity("Step", crashStepInput{Acc: acc, Step: ctx.InstanceID() + "/" + name}).Await(&acc)
	}
	for _, name := range []string{"1", "2", "3"} {
		if err := step(name); err != nil {
			return nil, err
		}
	}
	var g string
	if err := ctx.WaitForExternalEvent("Go").Await(&g); err != nil {
		return nil, err
	}
	acc = append(acc, g)
	if err := step("4"); err != nil {
		return nil, err
	}
	return acc, nil
}

func crashWant(id string) []string {
	return []string{id + "/1", id + "/2", id + "/3", "go-" + id, id + "/4"}
}

func crashRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{"Chain": crashChain},
		map[string]durable.ActivityFunc{"Step": durable.Activity(func(_ context.Context, in crashStepInput) ([]string, error) {
			return append(in.Acc, in.Step), nil
		})})
}

// TestCrashChild is the worker process of TestWorkerProcessKilled; it runs until it is killed
// (or its server goes away).
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("the worker process of TestWorkerProcessKilled")
	}
	nc, err := nats.Connect(os.Getenv(crashURLEnv), nats.Name("crash-child"), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { os.Exit(3) })) // the parent is gone
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsjs.New(context.Background(), js, natsjs.WithInboxAckWait(time.Second),
		natsjs.WithActivityAckWait(time.Second), natsjs.WithActivityConcurrency(8))
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, crashRegistry(t), engine.WithConcurrency(8))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("crash child: running")
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// crashOutput collects a child's output.
type crashOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *crashOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *crashOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCrashChild starts the test binary as a worker process on url. The process is killed when
// the test ends, at the latest.
func startCrashChild(t *testing.T, url, name string) (kill func()) {
	t.Helper()
	return startChild(t, name, "TestCrashChild", crashChildEnv+"=1", crashURLEnv+"="+url)
}

// startChild runs test (a test that skips itself unless its environment says otherwise) of this
// test binary as a process of its own, with env added to the environment; name names it in
// failures. kill sends it SIGKILL; it is killed when the test ends, at the latest, and the test
// fails if its output shows a race, a panic or a failure.
func startChild(t *testing.T, name, test string, env ...string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), env...)
	out := &crashOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill() // SIGKILL
			cmd.Wait()
		})
	}
	t.Cleanup(func() {
		kill()
		s := out.String()
		if strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") || strings.Contains(s, "--- FAIL") {
			t.Errorf("%s failed", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s)
		}
	})
	return kill
}

// TestWorkerProcessKilled kills worker processes with SIGKILL while 50 instances are in flight:
// every instance completes with its exact output, and each history holds every task's
// scheduling and completion and the raised event exactly once.
func TestWorkerProcessKilled(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		t.Skip("in the worker process")
	}
	const n = 50
	e := newFaultEnv(t, natsjs.WithActivityAckWait(time.Second))
	url := e.srv.ClientURL()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("chain-%02d", i)
	}
	completed := func() int {
		done := 0
		for _, id := range ids {
			s, err := e.client.GetStatus(ctx, id)
			if err == nil && s.Status.IsTerminal() {
				done++
			}
		}
		return done
	}
	raiseGo := func(odd int) {
		for i := odd; i < n; i += 2 {
			if err := e.client.RaiseEvent(ctx, ids[i], "Go", "go-"+ids[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	killAt := func(kill func(), threshold int) {
		t.Helper()
		natstest.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
			if c := completed(); c < threshold {
				return fmt.Errorf("%d of %d instances completed", c, n)
			}
			return nil
		})
		kill()
		t.Logf("killed a worker process with %d of %d instances completed; %s", completed(), n, crashBacklog(t, e))
	}

	kill1 := startCrashChild(t, url, "worker 1")
	for _, id := range ids {
		if _, err := e.client.ScheduleNew(ctx, "Chain", engine.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Even instances get "Go" now (buffered until they wait); odd ones while no worker runs.
	raiseGo(0)
	killAt(kill1, 1)
	if c := completed(); c >= n/2+1 {
		t.Fatalf("%d instances completed before odd ones got their event", c)
	}
	raiseGo(1)

	kill2 := startCrashChild(t, url, "worker 2")
	killAt(kill2, n/2+1)
	if c := completed(); c == n {
		t.Log("every instance completed before the second kill")
	}

	startCrashChild(t, url, "worker 3")
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		s, err := e.client.WaitForCompletion(wctx, id)
		cancel()
		if err != nil {
			t.Fatalf("%s did not complete: %v (state %+v)", id, err, s)
		}
		faultWantOutput(t, s, crashWant(id))
		events := faultCheckOnce(e, id)
		count := faultCount(events)
		if count[history.TaskScheduled] != 4 || count[history.TaskCompleted] != 4 || count[history.EventRaised] != 1 || count[history.ExecutionCompleted] != 1 {
			t.Fatalf("%s: history counts %v", id, count)
		}
		for _, ev := range events {
			if ev.Type == history.EventRaised && string(ev.Input) != fmt.Sprintf("%q", "go-"+id) {
				t.Fatalf("%s: raised %s", id, ev.Input)
			}
			if ev.Type == history.TaskCompleted {
				var acc []string
				json.Unmarshal(ev.Result, &acc)
				if len(acc) == 0 || acc[len(acc)-1] != fmt.Sprintf("%s/%d", id, ev.TaskID) {
					t.Fatalf("%s: task %d completed with %s", id, ev.TaskID, ev.Result)
				}
			}
		}
	}
	e.faultInboxDrained()
}

// crashBacklog describes the messages left in the inbox and the activity stream.
func crashBacklog(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	var parts []string
	for _, name := range []string{e.b.Names().InstanceStream(), e.b.Names().ActivityStream()} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s: %d messages", name, info.State.Msgs))
	}
	return strings.Join(parts, "; ")
}
