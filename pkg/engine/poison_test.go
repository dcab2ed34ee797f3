package engine_test

// A message that kills every worker process that takes it: its deliveries are counted across
// worker processes (each new one takes the partition over with a consumer of its own), so that
// after PoisonAfter of them it is dead-lettered, its instance fails with the reason, and the
// next worker stays up.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
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
	poisonChildEnv = "JETFLOW_POISON_CHILD" // "1" in the worker process
	poisonAfter    = 3
	poisonLeaseTTL = 500 * time.Millisecond
)

// poisonOptions are the backend options of the parent and of every child.
func poisonOptions() []natsjs.Option {
	return []natsjs.Option{natsjs.WithPartitions(1), natsjs.WithLeaseTTL(poisonLeaseTTL)}
}

// poisonRegistry: Victim waits for "E" and returns its data, unless the data is "die": then it
// ends its process on the spot, as a message that crashes a worker does.
func poisonRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{"Victim": func(ctx *durable.OrchestrationContext) (any, error) {
		var s string
		if err := ctx.WaitForExternalEvent("E").Await(&s); err != nil {
			return nil, err
		}
		if s == "die" && !ctx.IsReplaying() {
			os.Exit(7)
		}
		return s, nil
	}}, nil)
}

// TestPoisonChild is the worker process of TestPoisonMessageKillingWorkers.
func TestPoisonChild(t *testing.T) {
	if os.Getenv(poisonChildEnv) != "1" {
		t.Skip("the worker process of TestPoisonMessageKillingWorkers")
	}
	nc, err := nats.Connect(os.Getenv(crashURLEnv), nats.Name("poison-child"), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { os.Exit(3) }))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsjs.New(context.Background(), js, poisonOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, poisonRegistry(t), engine.WithPoisonAfter(poisonAfter))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPoisonMessageKillingWorkers(t *testing.T) {
	if os.Getenv(poisonChildEnv) == "1" {
		t.Skip("in the worker process")
	}
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	b, err := natsjs.New(context.Background(), js, poisonOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	client := engine.NewClient(b)
	ctx := context.Background()
	startChild := func() *poisonChild {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPoisonChild$", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), poisonChildEnv+"=1", crashURLEnv+"="+srv.ClientURL())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &poisonChild{cmd: cmd, exited: make(chan error, 1)}
		go func() { c.exited <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-c.exited
		})
		return c
	}
	waitFor := func(id, what string, ok func(*engine.Status) bool) *engine.Status {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := client.WaitFor(wctx, id, ok)
		if err != nil {
			t.Fatalf("waiting for %s to be %s: %v (last %+v)", id, what, err, s)
		}
		return s
	}

	if _, err := client.ScheduleNew(ctx, "Victim", engine.WithInstanceID("victim")); err != nil {
		t.Fatal(err)
	}
	child := startChild()
	waitFor("victim", "waiting for E", waitingForEvent("E"))
	if err := client.RaiseEvent(ctx, "victim", "E", "die"); err != nil {
		t.Fatal(err)
	}
	// Each worker that takes the event dies; a new one takes the partition over.
	crashes := 0
	for {
		select {
		case err := <-child.exited:
			child.exited <- err // for the cleanup
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("worker process ended with %v, want exit status 7 (killed by the message)", err)
			}
			crashes++
			if crashes > poisonAfter {
				t.Fatalf("%d workers died on the message; it should be dead-lettered after %d deliveries", crashes, poisonAfter)
			}
			child = startChild()
			continue
		case <-time.After(10 * poisonLeaseTTL):
		}
		s, err := client.GetStatus(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}
		if s.Status.IsTerminal() {
			break
		}
	}
	s := waitFor("victim", "failed", func(s *engine.Status) bool { return s.Status.IsTerminal() })
	if s.Status != history.StatusFailed || s.Failure == nil || s.Failure.Type != engine.FailurePoisonMessage ||
		!strings.Contains(s.Failure.Message, fmt.Sprint(poisonAfter+1)) {
		t.Fatalf("victim: %s %+v, want Failed with %s after %d deliveries", s.Status, s.Failure, engine.FailurePoisonMessage, poisonAfter+1)
	}
	if crashes != poisonAfter {
		t.Errorf("%d workers died on the message, want %d (PoisonAfter)", crashes, poisonAfter)
	}
	letters, err := b.DeadLetters(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || !strings.Contains(letters[0].Subject, "victim") || !strings.Contains(letters[0].Reason, "delivered") {
		t.Errorf("dead letters %+v, want the poison event of victim", letters)
	}
	// The worker that dead-lettered it is up and works on.
	if _, err := client.ScheduleNew(ctx, "Victim", engine.WithInstanceID("survivor")); err != nil {
		t.Fatal(err)
	}
	waitFor("survivor", "waiting for E", waitingForEvent("E"))
	if err := client.RaiseEvent(ctx, "survivor", "E", "fine"); err != nil {
		t.Fatal(err)
	}
	if s := waitFor("survivor", "completed", func(s *engine.Status) bool { return s.Status.IsTerminal() }); s.Status != history.StatusCompleted {
		t.Errorf("survivor: %s %+v", s.Status, s.Failure)
	}
	select {
	case err := <-child.exited:
		child.exited <- err
		t.Errorf("the last worker exited: %v", err)
	default:
	}
}

// poisonChild is a worker process of TestPoisonMessageKillingWorkers.
type poisonChild struct {
	cmd    *exec.Cmd
	exited chan error // receives how it ended
}
