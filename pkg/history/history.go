// Package history defines the events that make up an orchestration instance's history.
//
// A history is an append-only list of events. The engine replays an orchestrator against it to
// rebuild the orchestrator's state; every decision the orchestrator made (an activity scheduled,
// a timer created) and every input it received (an activity result, a raised event, a timer
// firing) is one event.
package history

import (
	"encoding/json"
	"strconv"
	"time"
)

// EventType names the kind of a history event. The names match the Durable Task Framework's.
type EventType string

// The event types.
const (
	OrchestratorStarted               EventType = "OrchestratorStarted"
	ExecutionStarted                  EventType = "ExecutionStarted"
	ExecutionCompleted                EventType = "ExecutionCompleted"
	ExecutionTerminated               EventType = "ExecutionTerminated"
	ExecutionSuspended                EventType = "ExecutionSuspended"
	ExecutionResumed                  EventType = "ExecutionResumed"
	ExecutionRewound                  EventType = "ExecutionRewound"
	ContinuedAsNew                    EventType = "ContinueAsNew"
	TaskScheduled                     EventType = "TaskScheduled"
	TaskCompleted                     EventType = "TaskCompleted"
	TaskFailed                        EventType = "TaskFailed"
	TimerCreated                      EventType = "TimerCreated"
	TimerFired                        EventType = "TimerFired"
	SubOrchestrationInstanceCreated   EventType = "SubOrchestrationInstanceCreated"
	SubOrchestrationInstanceCompleted EventType = "SubOrchestrationInstanceCompleted"
	SubOrchestrationInstanceFailed    EventType = "SubOrchestrationInstanceFailed"
	EventRaised                       EventType = "EventRaised"
	// PatchMarker records that the orchestrator took the patched branch of change Name
	// (OrchestrationContext.IsPatched) in the turn it is recorded in.
	PatchMarker EventType = "PatchMarker"
	// EventSent records an event the orchestrator sent to another instance (SendEvent).
	EventSent EventType = "EventSent"
)

// Event is one entry of a history. Which fields are set depends on Type; the constructors below
// are the supported way to build events.
type Event struct {
	Type      EventType `json:"type"`
	Timestamp time.Time `json:"ts"`
	// TaskID identifies the task an event schedules or completes (activities, timers,
	// sub-orchestrations), numbered from 1 within one generation of an instance.
	TaskID int `json:"taskId,omitempty"`
	// Name is the orchestrator, activity or event name.
	Name string `json:"name,omitempty"`
	// InstanceID is a sub-orchestration's instance ID.
	InstanceID string          `json:"instanceId,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Failure    *Failure        `json:"failure,omitempty"`
	FireAt     time.Time       `json:"fireAt,omitzero"`
	// TaskIDs, on an ExecutionRewound event, are the tasks whose failures the rewind disregards.
	TaskIDs []int `json:"taskIds,omitempty"`
	// EventID is the caller's deduplication ID of a raised event.
	EventID string `json:"eventId,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Status is the final runtime status of an ExecutionCompleted event.
	Status     RuntimeStatus `json:"status,omitempty"`
	Parent     *ParentRef    `json:"parent,omitempty"`
	Generation uint64        `json:"generation,omitempty"`
	// Version, on an ExecutionStarted event, is the orchestrator version the generation runs
	// ("" for an unversioned orchestrator).
	Version string `json:"version,omitempty"`
}

// Failure describes why an activity, sub-orchestration or orchestration failed.
type Failure struct {
	Type    string `json:"type,omitempty"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
	// Details are the last heartbeat details of the activity attempt that failed (JSON; omitted
	// if it sent none). A retry of the activity receives them.
	Details json.RawMessage `json:"details,omitempty"`
}

// The failure types of an activity attempt stopped by one of its timeouts (ActivityTimeouts);
// the type says which timeout fired.
const (
	FailureStartToCloseTimeout    = "StartToCloseTimeout"
	FailureScheduleToCloseTimeout = "ScheduleToCloseTimeout"
	FailureHeartbeatTimeout       = "HeartbeatTimeout"
	// FailureActivityCanceled is the outcome of an attempt cancelled because its instance ended;
	// the instance discards it.
	FailureActivityCanceled = "ActivityCanceled"
)

// IsActivityTimeout reports whether a failure type is one of the activity timeouts.
func IsActivityTimeout(failureType string) bool {
	switch failureType {
	case FailureStartToCloseTimeout, FailureScheduleToCloseTimeout, FailureHeartbeatTimeout:
		return true
	}
	return false
}

// Error implements error so a Failure can be returned and wrapped.
func (f *Failure) Error() string {
	if f.Type == "" {
		return f.Message
	}
	return f.Type + ": " + f.Message
}

// ParentRef points from a sub-orchestration to the task of its parent that waits for it.
type ParentRef struct {
	InstanceID string `json:"instanceId"`
	Generation uint64 `json:"generation"`
	TaskID     int    `json:"taskId"`
	// Rewind is the rewind that scheduled the sub-orchestration again (Action.Rewind), 0 for
	// its first run.
	Rewind int `json:"rewind,omitempty"`
}

// RuntimeStatus is an instance's status, named as in Durable Functions.
type RuntimeStatus string

// The runtime statuses.
const (
	StatusPending        RuntimeStatus = "Pending"
	StatusRunning        RuntimeStatus = "Running"
	StatusCompleted      RuntimeStatus = "Completed"
	StatusContinuedAsNew RuntimeStatus = "ContinuedAsNew"
	StatusFailed         RuntimeStatus = "Failed"
	StatusCanceled       RuntimeStatus = "Canceled"
	StatusTerminated     RuntimeStatus = "Terminated"
	StatusSuspended      RuntimeStatus = "Suspended"
)

// IsTerminal reports whether an instance in status s has ended and accepts no more events.
func (s RuntimeStatus) IsTerminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusTerminated:
		return true
	}
	return false
}

// NewOrchestratorStarted marks the start of a turn; its timestamp is the orchestrator's
// CurrentTime for that turn.
func NewOrchestratorStarted(now time.Time) Event {
	return Event{Type: OrchestratorStarted, Timestamp: now}
}

// NewExecutionStarted starts generation gen of an orchestration.
func NewExecutionStarted(now time.Time, name string, input json.RawMessage, gen uint64, parent *ParentRef) Event {
	return Event{Type: ExecutionStarted, Timestamp: now, Name: name, Input: input, Generation: gen, Parent: parent}
}

// NewExecutionCompleted records the orchestration's end with status Completed or Failed.
func NewExecutionCompleted(now time.Time, status RuntimeStatus, result json.RawMessage, failure *Failure) Event {
	return Event{Type: ExecutionCompleted, Timestamp: now, Status: status, Result: result, Failure: failure}
}

// NewExecutionTerminated records a terminate request.
func NewExecutionTerminated(now time.Time, reason string) Event {
	return Event{Type: ExecutionTerminated, Timestamp: now, Reason: reason}
}

// NewExecutionSuspended records a suspend request.
func NewExecutionSuspended(now time.Time, reason string) Event {
	return Event{Type: ExecutionSuspended, Timestamp: now, Reason: reason}
}

// NewExecutionResumed records a resume request.
func NewExecutionResumed(now time.Time, reason string) Event {
	return Event{Type: ExecutionResumed, Timestamp: now, Reason: reason}
}

// NewExecutionRewound records a rewind of a failed generation: the failures of tasks taskIDs
// recorded before it, and the generation's failed end, no longer count; those tasks, and every
// other task still pending, run again.
func NewExecutionRewound(now time.Time, reason string, taskIDs []int) Event {
	return Event{Type: ExecutionRewound, Timestamp: now, Reason: reason, TaskIDs: taskIDs}
}

// NewContinuedAsNew records that the orchestration restarted itself with a new input.
func NewContinuedAsNew(now time.Time, input json.RawMessage) Event {
	return Event{Type: ContinuedAsNew, Timestamp: now, Input: input}
}

// NewTaskScheduled records that the orchestrator called activity name as task id.
func NewTaskScheduled(now time.Time, id int, name string, input json.RawMessage) Event {
	return Event{Type: TaskScheduled, Timestamp: now, TaskID: id, Name: name, Input: input}
}

// NewTaskCompleted records an activity's result.
func NewTaskCompleted(now time.Time, id int, result json.RawMessage) Event {
	return Event{Type: TaskCompleted, Timestamp: now, TaskID: id, Result: result}
}

// NewTaskFailed records an activity's failure.
func NewTaskFailed(now time.Time, id int, failure *Failure) Event {
	return Event{Type: TaskFailed, Timestamp: now, TaskID: id, Failure: failure}
}

// NewTimerCreated records a durable timer that fires at fireAt.
func NewTimerCreated(now time.Time, id int, fireAt time.Time) Event {
	return Event{Type: TimerCreated, Timestamp: now, TaskID: id, FireAt: fireAt}
}

// NewTimerFired records that timer id fired.
func NewTimerFired(now time.Time, id int) Event {
	return Event{Type: TimerFired, Timestamp: now, TaskID: id}
}

// NewSubOrchestrationCreated records that the orchestrator started a sub-orchestration.
func NewSubOrchestrationCreated(now time.Time, id int, name, instanceID string, input json.RawMessage) Event {
	return Event{Type: SubOrchestrationInstanceCreated, Timestamp: now, TaskID: id, Name: name, InstanceID: instanceID, Input: input}
}

// NewSubOrchestrationCompleted records a sub-orchestration's output.
func NewSubOrchestrationCompleted(now time.Time, id int, result json.RawMessage) Event {
	return Event{Type: SubOrchestrationInstanceCompleted, Timestamp: now, TaskID: id, Result: result}
}

// NewSubOrchestrationFailed records a sub-orchestration's failure.
func NewSubOrchestrationFailed(now time.Time, id int, failure *Failure) Event {
	return Event{Type: SubOrchestrationInstanceFailed, Timestamp: now, TaskID: id, Failure: failure}
}

// NewEventRaised records an external event; eventID is the caller's deduplication ID, if any.
func NewEventRaised(now time.Time, name string, data json.RawMessage, eventID string) Event {
	return Event{Type: EventRaised, Timestamp: now, Name: name, Input: data, EventID: eventID}
}

// NewPatchMarker records that the orchestrator took the patched branch of change patchID.
func NewPatchMarker(now time.Time, patchID string) Event {
	return Event{Type: PatchMarker, Timestamp: now, Name: patchID}

}

// NewEventSent records that the orchestrator sent event name with data to instance instanceID, as
// task id; eventID is the event's deterministic ID (see SentEventID).
func NewEventSent(now time.Time, id int, instanceID, name string, data json.RawMessage, eventID string) Event {
	return Event{Type: EventSent, Timestamp: now, TaskID: id, InstanceID: instanceID, Name: name, Input: data, EventID: eventID}
}

// SentEventID is the event ID of the event that task taskID of generation gen of instance
// sender sends: the same on every replay of the send, so the receiver applies it once.
func SentEventID(sender string, gen uint64, taskID int) string {
	return sender + ":" + strconv.FormatUint(gen, 10) + ":send:" + strconv.Itoa(taskID)
}
