package engine

// Unknown names are refused: each worker announces, in the backend's worker registry, the
// orchestrators and activities it serves for as long as it runs; a client made with
// WithKnownOrchestratorsOnly refuses to start an orchestrator that no live worker serves.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// ErrUnknownOrchestrator: a client made with WithKnownOrchestratorsOnly was asked to start an
// orchestrator that no live worker serves (backend.ErrUnknownOrchestrator).
var ErrUnknownOrchestrator = backend.ErrUnknownOrchestrator

// WorkerInfo is a live worker and what it serves, as it announces it (backend.WorkerInfo).
type WorkerInfo = backend.WorkerInfo

// ServedName is an orchestrator or activity name a worker serves, with its version.
type ServedName = backend.ServedName

// registerRetry is how long a worker waits before trying again to announce itself.
const registerRetry = time.Second

// register announces the worker in the registry until unregister is called, which removes the
// entry and returns once it is gone. A worker that cannot announce itself (the registry cannot
// be reached) works all the same and keeps trying: clients that refuse unknown orchestrators
// refuse its names meanwhile.
func (w *Worker) register(ctx context.Context) (unregister func()) {
	info := w.workerInfo()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			done, err := w.b.RegisterWorker(rctx, info)
			if err == nil {
				<-done
				return
			}
			if rctx.Err() != nil {
				return
			}
			w.log.Warn().Err(err).Msg("announcing the worker in the worker registry; trying again")
			select {
			case <-rctx.Done():
				return
			case <-time.After(registerRetry):
			}
		}
	}()
	return func() { cancel(); <-stopped }
}

// workerInfo is the worker's entry in the registry: a new ID, and what it serves.
func (w *Worker) workerInfo() backend.WorkerInfo {
	host, _ := os.Hostname()
	info := backend.WorkerInfo{
		ID:      strings.ReplaceAll(uuid.NewString(), "-", ""),
		Host:    host,
		PID:     os.Getpid(),
		Started: time.Now().UTC(),
	}
	if !w.opts.noOrchestrations {
		info.Orchestrators = served(w.reg.OrchestratorNames())
	}
	if !w.opts.noActivities {
		info.Activities = served(w.reg.ActivityNames())
	}
	return info
}

// served lists names, without versions (orchestrators have none yet).
func served(names []string) []backend.ServedName {
	out := make([]backend.ServedName, len(names))
	for i, n := range names {
		out[i] = backend.ServedName{Name: n}
	}
	return out
}

// WithKnownOrchestratorsOnly makes ScheduleNew, StartWithEvent and Restart refuse, with
// ErrUnknownOrchestrator, an orchestrator that no live worker serves. The client watches the
// worker registry (so a start costs no read of it) and reads it afresh before refusing a name
// (so a worker that has just started is not missed). Close stops the watch. Off by default:
// without it, a start of an unknown orchestrator is accepted (the library's users start names
// before their workers run, in tests and when deploying the API first); the first worker to take
// it fails the instance if it does not serve the orchestrator (NotRegistered).
func WithKnownOrchestratorsOnly() ClientOption {
	return func(o *clientOptions) { o.knownOnly = true }
}

// Workers returns the live workers and what each serves, ordered by ID.
func (c *Client) Workers(ctx context.Context) ([]WorkerInfo, error) {
	return c.b.Workers(ctx)
}

// Close stops what the client runs in the background (the watch of WithKnownOrchestratorsOnly).
// The client must not be used afterwards.
func (c *Client) Close() {
	if c.names != nil {
		c.names.close()
	}
}

// checkName returns ErrUnknownOrchestrator if the client refuses unknown names and no live
// worker serves name.
func (c *Client) checkName(ctx context.Context, name string) error {
	if c.names == nil {
		return nil
	}
	return c.names.check(ctx, name)
}

// nameCache holds the orchestrator names the live workers serve, kept up to date by a watch of
// the worker registry that starts with the first check.
type nameCache struct {
	b backend.ClientBackend

	mu       sync.Mutex
	watching bool
	ready    chan struct{} // closed once the watch delivered its first list
	served   map[string]bool
	stop     context.CancelFunc
	closed   bool
}

// check returns nil if a live worker serves name, ErrUnknownOrchestrator if none does.
func (n *nameCache) check(ctx context.Context, name string) error {
	ready := n.watch()
	select {
	case <-ready:
		n.mu.Lock()
		known := n.served[name]
		n.mu.Unlock()
		if known {
			return nil
		}
	case <-ctx.Done():
		return fmt.Errorf("checking orchestrator %q: %w", name, ctx.Err())
	}
	workers, err := n.b.Workers(ctx)
	if err != nil {
		return fmt.Errorf("checking orchestrator %q: reading the worker registry: %w", name, err)
	}
	for _, w := range workers {
		if w.Serves(name) {
			return nil
		}
	}
	return fmt.Errorf("starting %q: %w", name, ErrUnknownOrchestrator)
}

// watch starts the registry watch if it does not run, and returns a channel closed once the
// cache holds the watch's first list (or at once when there is no watch: the check then reads
// the registry).
func (n *nameCache) watch() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.watching {
		return n.ready
	}
	now := make(chan struct{})
	close(now)
	if n.closed {
		return now
	}
	ctx, cancel := context.WithCancel(context.Background())
	updates, err := n.b.WatchWorkers(ctx)
	if err != nil {
		cancel()
		return now
	}
	n.watching, n.stop, n.ready = true, cancel, make(chan struct{})
	go n.follow(updates, n.ready)
	return n.ready
}

// follow applies the watch's lists until it ends; the next check starts it again.
func (n *nameCache) follow(updates <-chan []backend.WorkerInfo, ready chan struct{}) {
	first := true
	for list := range updates {
		served := map[string]bool{}
		for _, w := range list {
			for _, o := range w.Orchestrators {
				served[o.Name] = true
			}
		}
		n.mu.Lock()
		n.served = served
		n.mu.Unlock()
		if first {
			close(ready)
			first = false
		}
	}
	n.mu.Lock()
	n.watching, n.served = false, nil
	n.mu.Unlock()
	if first {
		close(ready)
	}
}

func (n *nameCache) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	if n.stop != nil {
		n.stop()
	}
}
