package history

import (
	"encoding/json"
	"time"
)

// ActionKind says what a new task asks the engine to do.
type ActionKind string

// The action kinds.
const (
	ActionActivity         ActionKind = "activity"
	ActionTimer            ActionKind = "timer"
	ActionSubOrchestration ActionKind = "subOrchestration"
	// ActionSendEvent sends event Name with Input to instance InstanceID, with event ID EventID.
	// The engine turns it into a message; backends never see it.
	ActionSendEvent ActionKind = "sendEvent"
	// ActionCancelTimer cancels timer TaskID of the generation: its schedule is removed and it
	// never fires (a generation that ends cancels the timers it still has).
	ActionCancelTimer ActionKind = "cancelTimer"
)

// Action is a task the orchestrator scheduled in this turn, for the engine to publish after the
// turn is committed.
type Action struct {
	Kind       ActionKind      `json:"kind"`
	TaskID     int             `json:"taskId"`
	Name       string          `json:"name,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	FireAt     time.Time       `json:"fireAt,omitzero"`
	InstanceID string          `json:"instanceId,omitempty"` // sub-orchestrations, sent events
	// EventID is a sent event's deterministic ID (SentEventID).
	EventID string `json:"eventId,omitempty"`
	// Rewind, when not 0, marks a task scheduled again by the Rewind-th rewind of its generation
	// (see ExecutionRewound); the backend keeps its messages apart from the first run's.
	Rewind int `json:"rewind,omitempty"`
}

// Waiting lists what an instance waits for, for its status.
type Waiting struct {
	Events            []string    `json:"events,omitempty"`
	Timers            []time.Time `json:"timers,omitempty"`
	Activities        []string    `json:"activities,omitempty"`
	SubOrchestrations []string    `json:"subOrchestrations,omitempty"`
}

// IsEmpty reports whether nothing is awaited.
func (w Waiting) IsEmpty() bool {
	return len(w.Events)+len(w.Timers)+len(w.Activities)+len(w.SubOrchestrations) == 0
}
