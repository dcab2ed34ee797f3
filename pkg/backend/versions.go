package backend

import (
	"context"
	"errors"
)

// ErrNoWorker: no live worker serves the orchestrator version an instance runs.
var ErrNoWorker = errors.New("no live worker serves the orchestrator version")

// OrchestratorVersion names one version of an orchestrator ("" for an unversioned one).
type OrchestratorVersion struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// String returns "name@version" ("name" when unversioned).
func (o OrchestratorVersion) String() string {
	if o.Version == "" {
		return o.Name
	}
	return o.Name + "@" + o.Version
}

// VersionRouter is implemented by worker backends that hand an instance's work to a worker that
// serves the orchestrator version the instance runs, when the worker that took it does not. The
// engine uses it when its backend has it; without it, an instance whose version the worker lacks
// waits (its messages are handed back with a growing delay).
type VersionRouter interface {
	// ServeOrchestrators announces the orchestrator versions this worker runs, so that work for
	// them is routed here. Call it before the first NextOrchestrationWorkItem.
	ServeOrchestrators(ctx context.Context, versions []OrchestratorVersion) error
	// RouteOrchestrationWorkItem hands the item's instance to a live worker that serves v and
	// ends the item: its messages are applied by that worker. It returns [ErrNoWorker] when no
	// live worker serves v; the item is then still out, for the caller to abandon.
	RouteOrchestrationWorkItem(ctx context.Context, item *OrchestrationWorkItem, v OrchestratorVersion) error
	// MarkWaiting stores state (the item's state with WaitingForVersion and Warning set) as the
	// instance's state without committing a turn, so that clients see why the instance does not
	// move; the item stays out. It returns [ErrConflict] if the instance changed meanwhile.
	MarkWaiting(ctx context.Context, item *OrchestrationWorkItem, state Instance) error
}
