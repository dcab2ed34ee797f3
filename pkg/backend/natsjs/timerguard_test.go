package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestTimerGuardFiresAStuckSchedule: a timer schedule still stored well after it was due (as a
// clustered server has left them) is fired by the worker's guard: its TimerFired reaches the
// instance's inbox once and the schedule is removed. The guard's clock is moved two hours ahead
// so that a schedule due in an hour, which the server holds back, stands for a stuck one.
func TestTimerGuardFiresAStuckSchedule(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := context.Background()
	b, err := New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	schedule := func(id string, task int) string {
		turn := &turnRecord{InstanceID: id, Generation: 1}
		msg, err := b.actionMsg(id, turn, history.Action{Kind: history.ActionTimer, TaskID: task, FireAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		return msg.Subject
	}
	fired := func(id string) []backend.TimerFired {
		t.Helper()
		var out []backend.TimerFired
		info, err := b.inst.Info(ctx, jetstream.WithSubjectFilter(b.names.StoredInstanceKindFilter(id, string(backend.KindTimer))))
		if err != nil {
			t.Fatal(err)
		}
		for subject, n := range info.State.Subjects {
			msg, err := b.inst.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			var tf backend.TimerFired
			if err := json.Unmarshal(msg.Data, &tf); err != nil {
				t.Fatal(err)
			}
			for range n {
				out = append(out, tf)
			}
		}
		return out
	}

	// Not overdue on the real clock: left to the server.
	early := schedule("early", 2)
	b.checkTimer(ctx, early)
	if got := fired("early"); len(got) != 0 {
		t.Fatalf("a timer not yet due was fired: %+v", got)
	}

	b.timerGuard.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	stuck := schedule("stuck", 3)
	b.checkTimer(ctx, stuck)
	b.checkTimer(ctx, stuck) // a second check finds the schedule gone
	if got := fired("stuck"); len(got) != 1 || got[0] != (backend.TimerFired{Generation: 1, TaskID: 3}) {
		t.Fatalf("fired %+v, want one TimerFired of generation 1, task 3", got)
	}
	if _, err := b.inst.GetLastMsgForSubject(ctx, stuck); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("the fired timer's schedule is still stored: %v", err)
	}

	// The guard's goroutine does the same for a timer it watches, while a worker uses it.
	if !b.timerGuard.acquire() {
		t.Fatal("the guard claims to be running with no user")
	}
	go b.runTimerGuard()
	defer b.timerGuard.release()
	watched := schedule("watched", 4)
	b.timerGuard.watch(watched, time.Now().Add(time.Hour))
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := fired("watched"); len(got) != 1 {
			return errors.New("the watched timer has not been fired")
		}
		return nil
	})
}

func TestParseTimerSchedule(t *testing.T) {
	n, _ := NewNames("jetflow")
	if id, ok := n.ParseTimerSchedule(n.ScheduleSubject("order-42", 3, 7)); !ok || id != "order-42" {
		t.Fatalf("timer schedule: %q %v", id, ok)
	}
	for _, s := range []string{n.PurgeScheduleSubject("order-42"), "jetflow.sched.a.b.7", "jetflow.inst.a.1.2", "jetflow.sched..1.2"} {
		if _, ok := n.ParseTimerSchedule(s); ok {
			t.Errorf("%s parsed as a timer schedule", s)
		}
	}
}
