package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestRetention: with a retention, an ended instance is purged (state, history, timers) once it
// has passed; an instance started again before its purge is due is kept.
func TestRetention(t *testing.T) {
	e := newEnv(t)
	e.opts = []natsjs.Option{natsjs.WithRetention(natsjs.MinRetention)}
	e.startWorker(startRegistry(t))
	ctx := context.Background()
	names := e.b.Names()
	complete := func(id string, generation uint64) {
		t.Helper()
		if _, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID(id), engine.WithInput(generation)); err != nil {
			t.Fatal(err)
		}
		e.waitFor(id, "waiting for Go", func(s *engine.Status) bool { return s.Generation == generation && waitingForEvent("Go")(s) })
		if err := e.client.RaiseEvent(ctx, id, "Go", nil); err != nil {
			t.Fatal(err)
		}
		e.waitFor(id, "completed", func(s *engine.Status) bool { return s.Generation == generation && s.Status == history.StatusCompleted })
	}

	complete("purged", 1)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if _, err := e.client.GetStatus(ctx, "purged"); !errors.Is(err, engine.ErrInstanceNotFound) {
			return fmt.Errorf("purged: %v, want not found", err)
		}
		return nil
	})
	if n := streamCount(t, e, names.HistoryStream(), names.HistorySubject("purged")); n != 0 {
		t.Errorf("%d records of the purged instance left", n)
	}

	// Started again right after it ended: the purge scheduled by its end is stale.
	complete("again", 1)
	if _, err := e.client.ScheduleNew(ctx, "Hold", engine.WithInstanceID("again"), engine.WithInput(2)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		scheduled := streamCount(t, e, names.InstanceStream(), names.PurgeScheduleSubject("again"))
		delivered := streamCount(t, e, names.InstanceStream(), names.StoredInstanceKindFilter("again", "purge"))
		if scheduled+delivered > 0 {
			return fmt.Errorf("the purge of the first generation is not done: %d scheduled, %d in the inbox", scheduled, delivered)
		}
		return nil
	})
	s := e.faultStatus("again")
	if s.Generation != 2 || s.Status != history.StatusRunning {
		t.Errorf("again: generation %d %s, want the second generation running", s.Generation, s.Status)
	}
}

// streamCount counts the messages of stream on subject (a filter).
func streamCount(t *testing.T, e *env, stream, subject string) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
