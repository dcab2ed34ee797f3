package engine_test

// A worker process that gets SIGTERM under load drains: it takes no new work, finishes its turns
// and lets its running activities finish (or hands them back), and exits 0; another worker
// carries on, and nothing is lost or applied twice.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

const drainChildEnv = "JETFLOW_DRAIN_CHILD"

// slowCrashRegistry is crashRegistry with a Step that takes a while, so that a drain finds
// activities running.
func slowCrashRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t, map[string]durable.OrchestratorFunc{"Chain": crashChain},
		map[string]durable.ActivityFunc{"Step": durable.Activity(func(ctx context.Context, in crashStepInput) ([]string, error) {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return append(in.Acc, in.Step), nil
		})})
}

// TestDrainChild is the worker process of TestDrainOnSIGTERM: it runs until SIGTERM.
func TestDrainChild(t *testing.T) {
	if os.Getenv(drainChildEnv) != "1" {
		t.Skip("the worker process of TestDrainOnSIGTERM")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(os.Getenv(crashURLEnv), nats.Name("drain-child"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsjs.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(b, slowCrashRegistry(t), engine.WithDrainGrace(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDrainOnSIGTERM(t *testing.T) {
	if os.Getenv(drainChildEnv) == "1" {
		t.Skip("in the worker process")
	}
	const n = 30
	e := newEnv(t)
	ctx := context.Background()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrainChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), drainChildEnv+"=1", crashURLEnv+"="+e.srv.ClientURL())
	out := &crashOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("worker output:\n%s", out)
		}
	})

	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("drain-%02d", i)
		if _, err := e.client.ScheduleNew(ctx, "Chain", engine.WithInstanceID(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	// SIGTERM once the child is busy: some instances past their first step, others not.
	natstest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		busy := 0
		for _, id := range ids {
			if s, err := e.client.GetStatus(ctx, id); err == nil && s.Version >= 2 {
				busy++
			}
		}
		if busy < 3 {
			return fmt.Errorf("%d instances past their first step", busy)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the drained worker exited with %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not exit within 30s of SIGTERM (drain grace 5s)")
	}

	e.startWorker(crashRegistry(t))
	for _, id := range ids {
		e.faultWait(id, "waiting for Go", waitingForEvent("Go"))
		if err := e.client.RaiseEvent(ctx, id, "Go", "go-"+id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		s := e.faultWait(id, "ended", func(s *engine.Status) bool { return s.Status.IsTerminal() })
		faultWantOutput(t, s, crashWant(id))
		faultCheckOnce(e, id)
	}
}
