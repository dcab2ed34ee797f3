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
	// Timeouts bound an activity's attempt (activities only; nil: the worker's default
	// StartToClose alone).
	Timeouts *ActivityTimeouts `json:"timeouts,omitempty"`
	// HeartbeatDetails are the last heartbeat details of the previous attempt of a retried
	// activity (its failure's Details), for the next attempt to resume from.
	HeartbeatDetails json.RawMessage `json:"heartbeatDetails,omitempty"`
}

// ActivityTimeouts bound an activity: each attempt, all attempts, and the silence between two
// heartbeats. A zero field sets no bound of its own.
type ActivityTimeouts struct {
	// StartToClose bounds one attempt, from when a worker starts it (0: the worker's default).
	StartToClose time.Duration `json:"startToClose,omitempty"`
	// ScheduleToCloseDeadline bounds every attempt of the call: none runs or is retried past it.
	ScheduleToCloseDeadline time.Time `json:"scheduleToCloseDeadline,omitzero"`
	// Heartbeat is the longest an attempt may go without a heartbeat.
	Heartbeat time.Duration `json:"heartbeat,omitempty"`
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
