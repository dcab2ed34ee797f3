package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// Log field names.
const (
	fieldInstance = "instance_id"
	fieldTurn     = "turn"
	fieldEvent    = "event_name"
	fieldKind     = "kind"
)

// Stats counts what a worker did.
type Stats struct {
	Turns        uint64 // turns committed
	Conflicts    uint64 // turns lost to another writer and retried
	Discarded    uint64 // messages for instances that do not exist or have ended
	DeadLettered uint64 // messages sent to the dead-letter stream
	Activities   uint64 // activities run
	// ActivitiesTimedOut counts activity attempts stopped by a timeout (StartToClose,
	// ScheduleToClose, heartbeat).
	ActivitiesTimedOut uint64
	// ActivitiesCanceled counts activities cancelled because their instance ended; their
	// results were discarded.
	ActivitiesCanceled uint64
}

type stats struct {
	turns, conflicts, discarded, deadLettered, activities atomic.Uint64
	activitiesTimedOut, activitiesCanceled                atomic.Uint64
}

// Worker runs orchestrator turns and activities: it takes work items from its backend, replays
// the orchestrators and completes the items.
type Worker struct {
	b     backend.WorkerBackend
	reg   *durable.Registry
	opts  workerOptions
	log   zerolog.Logger
	cache *executorCache
	stats stats
	// tracing traces turns and activities; nil: off.
	tracing *tracing.Tracing
}

// NewWorker returns a worker that runs the orchestrators and activities of reg on b.
func NewWorker(b backend.WorkerBackend, reg *durable.Registry, opts ...WorkerOption) (*Worker, error) {
	o := defaultWorkerOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("worker option: %w", err)
		}
	}
	t := tracing.New(o.tracerProvider, o.propagator)
	if t != nil {
		b = tracedWorkerBackend{WorkerBackend: b, t: t}
	}
	return &Worker{b: b, reg: reg, opts: o, log: o.log, cache: newExecutorCache(o.cacheSize), tracing: t}, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{
		Turns:        w.stats.turns.Load(),
		Conflicts:    w.stats.conflicts.Load(),
		Discarded:    w.stats.discarded.Load(),
		DeadLettered: w.stats.deadLettered.Load(),
		Activities:   w.stats.activities.Load(),

		ActivitiesTimedOut: w.stats.activitiesTimedOut.Load(),
		ActivitiesCanceled: w.stats.activitiesCanceled.Load(),
	}
}

// Run processes work items until ctx ends. It returns nil then, or the error that stopped the
// backend's delivery.
func (w *Worker) Run(parent context.Context) error {
	defer w.register(parent)() // registry.go
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	fail := func(err error) {
		if parent.Err() == nil {
			select {
			case errs <- err:
			default:
			}
			cancel()
		}
	}
	if router, ok := w.b.(backend.VersionRouter); ok && !w.opts.noOrchestrations {
		if err := router.ServeOrchestrators(ctx, w.servedVersions()); err != nil {
			return fmt.Errorf("announcing the orchestrator versions served: %w", err)
		}
	}
	if !w.opts.noOrchestrations {
		for range w.opts.concurrency {
			wg.Add(1)
			go func() { defer wg.Done(); fail(w.orchestrationLoop(ctx)) }()
		}
	}
	if names := w.activityNames(); !w.opts.noActivities && len(names) > 0 {
		running := w.drainContext(ctx)
		for range w.opts.activityConcurrency {
			wg.Add(1)
			go func() { defer wg.Done(); fail(w.activityLoop(ctx, running, names)) }()
		}
	}
	wg.Wait()
	w.cache.clear()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// activityNames are the activities the worker serves: those registered, but for those it was
// told to leave to others (WithoutActivity).
func (w *Worker) activityNames() []string {
	return slices.DeleteFunc(w.reg.ActivityNames(), func(name string) bool {
		return slices.Contains(w.opts.skipActivities, name)
	})
}

// drainContext returns the context activities run in: it ends the drain grace period after ctx.
func (w *Worker) drainContext(ctx context.Context) context.Context {
	running, cancel := context.WithCancel(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		if w.opts.drainGrace == 0 {
			cancel()
			return
		}
		time.AfterFunc(w.opts.drainGrace, cancel)
	})
	return running
}

// orchestrationLoop runs one turn after another until the backend stops delivering.
func (w *Worker) orchestrationLoop(ctx context.Context) error {
	for {
		item, err := w.b.NextOrchestrationWorkItem(ctx)
		if err != nil {
			return fmt.Errorf("next orchestration work item: %w", err)
		}
		w.process(ctx, item)
	}
}

// process runs a turn over the work item and completes it, or abandons it if the turn failed.
func (w *Worker) process(ctx context.Context, item *backend.OrchestrationWorkItem) {
	id := item.InstanceID
	// A turn that has begun is finished even when the worker is stopping, so that what it
	// committed is also published before the worker goes (the backend bounds each request).
	err := w.safeTurn(context.WithoutCancel(ctx), item)
	switch {
	case err == nil:
	case errors.Is(err, backend.ErrConflict):
		// Another writer committed first: the backend hands the messages out again, on
		// fresh state.
		w.stats.conflicts.Add(1)
		w.opts.metrics.CommitConflict()
		w.cache.drop(id)
	default:
		w.opts.metrics.TurnFailed()
		w.cache.drop(id)
		if ctx.Err() == nil {
			w.log.Error().Str(fieldInstance, id).Err(err).Msg("turn failed; its messages come back")
		}
		if err := w.b.AbandonOrchestrationWorkItem(context.WithoutCancel(ctx), item, time.Second); err != nil {
			w.log.Warn().Str(fieldInstance, id).Err(err).Msg("abandoning a work item")
		}
	}
}

func (w *Worker) safeTurn(ctx context.Context, item *backend.OrchestrationWorkItem) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in turn of %q: %v\n%s", item.InstanceID, r, debug.Stack())
		}
	}()
	return w.turn(ctx, item)
}
