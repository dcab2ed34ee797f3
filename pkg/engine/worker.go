package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
)

// Log field names.
const (
	fieldInstance = "instance_id"
	fieldTurn     = "turn"
	fieldEvent    = "event_name"
	fieldKind     = "kind"
	fieldSeq      = "seq"
)

// Stats counts what a worker did.
type Stats struct {
	Turns        uint64 // turns committed
	Conflicts    uint64 // turns lost to another writer and retried
	Discarded    uint64 // messages for instances that do not exist or have ended
	DeadLettered uint64 // messages sent to the dead-letter stream
	Activities   uint64 // activities run
}

type stats struct {
	turns, conflicts, discarded, deadLettered, activities atomic.Uint64
}

// Worker consumes instance messages and runs orchestrator turns, and runs activities.
type Worker struct {
	b     backend.Backend
	reg   *durable.Registry
	opts  workerOptions
	log   zerolog.Logger
	cache *executorCache
	stats stats

	mu     sync.Mutex
	queues map[string]*instanceQueue
	work   chan string
	// handedBack holds instances whose delivered messages were naked or abandoned: their next
	// turn reads the inbox (see inOrder).
	handedBack map[string]bool
}

type instanceQueue struct {
	msgs []backend.InboxMessage
}

// NewWorker returns a worker that runs the orchestrators and activities of reg on b.
func NewWorker(b backend.Backend, reg *durable.Registry, opts ...WorkerOption) (*Worker, error) {
	o := workerOptions{
		log:         zerolog.Nop(),
		cacheSize:   10000,
		concurrency: 64,
		maxBatch:    500,
		maxPayload:  1 << 20,
		poisonAfter: 50,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("worker option: %w", err)
		}
	}
	return &Worker{
		b:          b,
		reg:        reg,
		opts:       o,
		log:        o.log,
		cache:      newExecutorCache(o.cacheSize),
		queues:     map[string]*instanceQueue{},
		handedBack: map[string]bool{},
		work:       make(chan string, 1024),
	}, nil
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{
		Turns:        w.stats.turns.Load(),
		Conflicts:    w.stats.conflicts.Load(),
		Discarded:    w.stats.discarded.Load(),
		DeadLettered: w.stats.deadLettered.Load(),
		Activities:   w.stats.activities.Load(),
	}
}

// Run processes messages and activities until ctx ends.
func (w *Worker) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if !w.opts.noOrchestrations {
		for range w.opts.concurrency {
			wg.Add(1)
			go func() { defer wg.Done(); w.turnLoop(ctx) }()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.b.ConsumeInbox(ctx, func(m backend.InboxMessage) { w.enqueue(ctx, m) }); err != nil && parent.Err() == nil {
				errs <- err
				cancel()
			}
		}()
	}
	if !w.opts.noActivities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.b.ConsumeActivities(ctx, w.reg.ActivityNames(), w.runActivity); err != nil && parent.Err() == nil {
				errs <- err
				cancel()
			}
		}()
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

// enqueue adds a message to its instance's queue, and hands the instance to a turn goroutine
// unless one already has it: messages that arrive during a turn form the next turn's batch.
func (w *Worker) enqueue(ctx context.Context, m backend.InboxMessage) {
	if m.Err != nil {
		w.deadLetter(ctx, m, fmt.Sprintf("unusable subject %q: %v", m.Subject, m.Err))
		return
	}
	w.mu.Lock()
	q, busy := w.queues[m.InstanceID]
	if !busy {
		q = &instanceQueue{}
		w.queues[m.InstanceID] = q
	}
	q.msgs = append(q.msgs, m)
	w.mu.Unlock()
	if !busy {
		select {
		case w.work <- m.InstanceID:
		case <-ctx.Done():
		}
	}
}

func (w *Worker) turnLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-w.work:
			for {
				w.mu.Lock()
				q := w.queues[id]
				msgs := q.msgs
				q.msgs = nil
				if len(msgs) == 0 {
					delete(w.queues, id)
					w.mu.Unlock()
					break
				}
				w.mu.Unlock()
				w.process(ctx, id, msgs)
			}
		}
	}
}

// process applies msgs to instance id in as many turns as it takes.
func (w *Worker) process(ctx context.Context, id string, msgs []backend.InboxMessage) {
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Seq < msgs[j].Seq })
	log := w.log.With().Str(fieldInstance, id).Logger()
	conflicts := 0
	for len(msgs) > 0 && ctx.Err() == nil {
		// After a conflict the instance is read again, beyond its state too: the conflicting
		// turn may have been committed by a worker that died before publishing it.
		rest, err := w.safeTurn(ctx, id, msgs, conflicts > 0)
		switch {
		case err == nil:
			msgs, conflicts = rest, 0
		case errors.Is(err, backend.ErrConflict) && conflicts < 50:
			// Another writer committed this turn: retry on fresh state.
			conflicts++
			w.stats.conflicts.Add(1)
			w.cache.drop(id)
		case errors.Is(err, ErrInjectedCrash):
			w.cache.drop(id)
			w.handBack(id, nil, 0) // abandoned: they come back after the ack wait
			return
		default:
			w.cache.drop(id)
			if ctx.Err() == nil {
				log.Error().Err(err).Msg("turn failed; messages will be redelivered")
			}
			w.handBack(id, msgs, time.Second)
			return
		}
	}
}

func (w *Worker) safeTurn(ctx context.Context, id string, msgs []backend.InboxMessage, beyond bool) (rest []backend.InboxMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in turn of %q: %v\n%s", id, r, debug.Stack())
		}
	}()
	return w.turn(ctx, id, msgs, beyond)
}
