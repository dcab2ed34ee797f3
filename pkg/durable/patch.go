package durable

// Patching: changing the code of an orchestrator while instances of the old code run.
//
// IsPatched(id) is Temporal's patched(): the first time a turn that is not replayed evaluates
// it, it returns true and records a PatchMarker event in that turn; replay returns true from the
// turn the marker is recorded in onwards and false before it (and always false in a history
// without the marker). So an instance that ran the old code before the patch was deployed keeps
// taking the old branch where it took it, and takes the new one from its next new turn on; an
// instance started after the deployment takes the new branch everywhere.

import (
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// IsPatched reports whether the orchestrator takes the new branch of change patchID:
//
//	if ctx.IsPatched("send-receipt") {
//		ctx.CallActivity("SendReceipt", order) // the new code
//	}
//
// It returns true, and records a marker in the history, when the orchestrator evaluates it for
// the first time in a turn that runs for the first time; when a turn is replayed, it returns
// true only if the history recorded the marker in that turn or an earlier one. Code that was
// running before the patch was deployed therefore replays the old branch, and the same
// instance takes the new branch from its next new turn on.
//
// Once no instance that started before the patch runs any more, the old branch can be deleted
// and the IsPatched call with it: a marker that no code asks for is ignored.
func (c *OrchestrationContext) IsPatched(patchID string) bool {
	e := c.e
	if turn, ok := e.patches[patchID]; ok {
		return turn <= e.turn
	}
	if e.replaying {
		return false
	}
	e.patches[patchID] = e.turn
	e.newPatches = append(e.newPatches, patchID)
	return true
}

// Version returns the orchestrator version the instance runs ("" for an unversioned
// orchestrator): the version it started on.
func (c *OrchestrationContext) Version() string { return c.e.version }

// scanPatches notes the turn each patch marker of past (a generation's history, from its first
// turn) is recorded in, before the replay runs the code that asks for them.
func (e *Executor) scanPatches(past []history.Event) {
	turn := e.turn
	for _, ev := range past {
		switch ev.Type {
		case history.OrchestratorStarted:
			turn++
		case history.PatchMarker:
			if _, ok := e.patches[ev.Name]; !ok {
				e.patches[ev.Name] = turn
			}
		}
	}
}

// patchMarkers returns the markers of the patches taken for the first time in this turn.
func (e *Executor) patchMarkers(now time.Time) []history.Event {
	out := make([]history.Event, 0, len(e.newPatches))
	for _, id := range e.newPatches {
		out = append(out, history.NewPatchMarker(now, id))
	}
	return out
}
