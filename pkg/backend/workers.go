package backend

// The worker registry: each worker announces the orchestrators and activities it serves, so that
// clients can refuse to start an orchestrator that no live worker serves.

import (
	"context"
	"errors"
	"time"
)

// ErrUnknownOrchestrator: no live worker serves the orchestrator name (a client that checks
// names refuses to start it).
var ErrUnknownOrchestrator = errors.New("unknown orchestrator: no live worker serves it")

// ServedName is an orchestrator or activity a worker serves, and its version ("" when it has
// none).
type ServedName struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// WorkerInfo is a worker's entry in the worker registry (its JSON is a wire format, see
// docs/wire.md).
type WorkerInfo struct {
	// ID identifies the worker process; it is unique per Worker.Run.
	ID            string       `json:"id"`
	Host          string       `json:"host"`
	PID           int          `json:"pid"`
	Started       time.Time    `json:"started"`
	Orchestrators []ServedName `json:"orchestrators"`
	Activities    []ServedName `json:"activities"`
}

// Serves reports whether the worker serves orchestrator name (in any version).
func (w *WorkerInfo) Serves(name string) bool {
	for _, o := range w.Orchestrators {
		if o.Name == name {
			return true
		}
	}
	return false
}

// WorkerRegistry is where workers announce what they serve. A worker's entry lives while the
// worker refreshes it: one that stops refreshing (killed) drops out after the registry's TTL,
// one that stops cleanly removes it at once.
type WorkerRegistry interface {
	// RegisterWorker puts info in the registry and keeps it there, refreshing it, until ctx
	// ends; then it removes it and closes done. It returns once info is in the registry, or
	// with the error that kept it out.
	RegisterWorker(ctx context.Context, info WorkerInfo) (done <-chan struct{}, err error)
	// Workers returns the live workers, ordered by ID.
	Workers(ctx context.Context) ([]WorkerInfo, error)
	// WatchWorkers sends the live workers (ordered by ID) now and after every change, until
	// ctx ends or the watch fails; then it closes the channel.
	WatchWorkers(ctx context.Context) (<-chan []WorkerInfo, error)
}
