package engine

// Orchestrator versions: an instance runs, for all its life, the orchestrator version it started
// on. A worker that takes the work of an instance whose version it does not have hands it to a
// worker that has it (backend.VersionRouter); when no live worker has it, the instance waits,
// visibly (Status.WaitingForVersion and Warning), and its messages come back with a growing
// delay until such a worker is there. It never fails for it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Delays between the attempts to find a worker for an instance's version.
const (
	versionWaitFirst = time.Second
	versionWaitMax   = time.Minute
)

// serves reports whether this worker runs version v of orchestrator name.
func (w *Worker) serves(name, v string) bool {
	_, ok := w.reg.OrchestratorVersion(name, v)
	return ok
}

// servedVersions lists the orchestrator versions of the worker's registry.
func (w *Worker) servedVersions() []backend.OrchestratorVersion {
	refs := w.reg.Orchestrators()
	out := make([]backend.OrchestratorVersion, len(refs))
	for i, r := range refs {
		out[i] = backend.OrchestratorVersion{Name: r.Name, Version: r.Version}
	}
	return out
}

// startVersion is the version a start runs: the one it names, or this worker's newest of its
// name ("" if the worker does not have the name).
func (w *Worker) startVersion(req *backend.StartRequest) string {
	if req.Version != "" {
		return req.Version
	}
	v, _ := w.reg.NewestVersion(req.Name)
	return v
}

// missingVersion returns the orchestrator version the item's instance runs, or that the start
// it begins with names, when this worker does not have it.
func (w *Worker) missingVersion(item *backend.OrchestrationWorkItem) (backend.OrchestratorVersion, *backend.StartRequest, bool) {
	s := item.State
	if s != nil && (s.Status == history.StatusRunning || s.Status == history.StatusSuspended) {
		ref := backend.OrchestratorVersion{Name: s.Name, Version: s.OrchestratorVersion}
		return ref, nil, !w.serves(ref.Name, ref.Version)
	}
	if len(item.Messages) == 0 || item.Messages[0].Kind != backend.KindStart {
		return backend.OrchestratorVersion{}, nil, false
	}
	var req backend.StartRequest
	if json.Unmarshal(item.Messages[0].Data, &req) != nil || req.Name == "" {
		return backend.OrchestratorVersion{}, nil, false // the turn dead-letters it
	}
	if s != nil && s.Status == history.StatusPending && s.StartID != req.StartID && s.Name != "" {
		// The start-with-event that starts the pending generation runs its version.
		req.Name, req.Version = s.Name, s.OrchestratorVersion
	}
	if req.Version == "" {
		return backend.OrchestratorVersion{}, nil, false
	}
	ref := backend.OrchestratorVersion{Name: req.Name, Version: req.Version}
	return ref, &req, !w.serves(ref.Name, ref.Version)
}

// awaitVersion hands the item to a worker serving ref, or, if there is none, marks the instance
// waiting and hands the item back for a while.
func (w *Worker) awaitVersion(ctx context.Context, item *backend.OrchestrationWorkItem, ref backend.OrchestratorVersion, start *backend.StartRequest) error {
	log := w.log.With().Str(fieldInstance, item.InstanceID).Str("orchestrator", ref.String()).Logger()
	router, ok := w.b.(backend.VersionRouter)
	if ok {
		err := router.RouteOrchestrationWorkItem(ctx, item, ref)
		if err == nil {
			log.Debug().Msg("work routed to a worker serving the instance's orchestrator version")
			return nil
		}
		if !errors.Is(err, backend.ErrNoWorker) {
			log.Warn().Err(err).Msg("routing to a worker serving the instance's orchestrator version")
		}
		if item.State == nil || item.State.WaitingForVersion != ref.String() {
			if err := router.MarkWaiting(ctx, item, waitingState(item, ref, start)); err != nil && !errors.Is(err, backend.ErrConflict) {
				log.Warn().Err(err).Msg("recording that the instance waits for a worker")
			}
			log.Warn().Msg(versionWarning(ref))
		}
	}
	return w.b.AbandonOrchestrationWorkItem(ctx, item, versionWaitDelay(item))
}

// versionWaitDelay grows with the deliveries of the item's first message: 1 s, 2 s, 4 s … up to
// versionWaitMax.
func versionWaitDelay(item *backend.OrchestrationWorkItem) time.Duration {
	d := versionWaitFirst
	for n := uint64(1); len(item.Messages) > 0 && n < item.Messages[0].Deliveries && d < versionWaitMax; n++ {
		d *= 2
	}
	return min(d, versionWaitMax)
}

func versionWarning(ref backend.OrchestratorVersion) string {
	return fmt.Sprintf("waiting for a worker serving orchestrator %q version %q: no live worker has it", ref.Name, ref.Version)
}

// waitingState is the item's instance's state marked as waiting for a worker serving ref.
func waitingState(item *backend.OrchestrationWorkItem, ref backend.OrchestratorVersion, start *backend.StartRequest) backend.Instance {
	var s backend.Instance
	if item.State != nil {
		s = *item.State
	}
	if start != nil && (item.State == nil || item.State.Status != history.StatusPending || item.State.StartID == start.StartID) {
		// A start that has not begun its generation: the instance is pending with its input.
		s.ID, s.Name, s.Input, s.StartID, s.Parent = item.InstanceID, start.Name, start.Input, start.StartID, start.Parent
		s.Status, s.CreatedAt, s.Output, s.Failure = history.StatusPending, start.Time, nil, nil
	}
	s.OrchestratorVersion = ref.Version
	s.WaitingForVersion = ref.String()
	s.Warning = versionWarning(ref)
	s.UpdatedAt = time.Now().UTC()
	return s
}
