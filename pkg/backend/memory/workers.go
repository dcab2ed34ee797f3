package memory

// The worker registry, in memory: a worker's entry lives until its RegisterWorker ctx ends
// (nothing outlives the process, so there is no TTL).

import (
	"context"
	"sort"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// workerRegistry holds the registered workers and the watchers of the registry; Backend.mu
// guards it.
type workerRegistry struct {
	workers  map[string]backend.WorkerInfo
	watchers map[chan []backend.WorkerInfo]struct{}
}

// RegisterWorker implements backend.WorkerRegistry.
func (b *Backend) RegisterWorker(ctx context.Context, info backend.WorkerInfo) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.registry.workers[info.ID] = info
	b.notifyWorkers()
	b.mu.Unlock()
	done := make(chan struct{})
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.registry.workers, info.ID)
		b.notifyWorkers()
		b.mu.Unlock()
		close(done)
	})
	return done, nil
}

// Workers implements backend.WorkerRegistry.
func (b *Backend) Workers(ctx context.Context) ([]backend.WorkerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.liveWorkers(), nil
}

// WatchWorkers implements backend.WorkerRegistry.
func (b *Backend) WatchWorkers(ctx context.Context) (<-chan []backend.WorkerInfo, error) {
	ch := make(chan []backend.WorkerInfo, 1)
	b.mu.Lock()
	b.registry.watchers[ch] = struct{}{}
	ch <- b.liveWorkers()
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.registry.watchers, ch)
		close(ch)
		b.mu.Unlock()
	})
	return ch, nil
}

// liveWorkers returns the registered workers ordered by ID; b.mu must be held.
func (b *Backend) liveWorkers() []backend.WorkerInfo {
	out := make([]backend.WorkerInfo, 0, len(b.registry.workers))
	for _, w := range b.registry.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// notifyWorkers sends the registered workers to every watcher, replacing a list it has not
// taken yet; b.mu must be held.
func (b *Backend) notifyWorkers() {
	list := b.liveWorkers()
	for ch := range b.registry.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- list
	}
}
