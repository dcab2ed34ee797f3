// Package timeline turns the history of an instance's generation into a timeline people read:
// every event in order, grouped into turns, and what the events mean together: each activity
// call with its attempts (retries and reruns after a rewind) and their durations, each durable
// timer and whether it fired, each raised event and the turn that consumed it, each
// sub-orchestration and its outcome.
//
// `jetflow history` prints a Timeline as text (WriteText) and the HTTP API serves it as JSON for
// the web UI, so both show the same model, built by Build.
//
// The history records what the orchestrator decided and received, not what it waited for, so
// two things are inferred (and named as such on the fields): which failed attempt a retried
// activity call continues, and in which turn a raised event was consumed.
package timeline

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Outcome says how a task ended, or that it has not.
type Outcome string

// The outcomes.
const (
	Pending   Outcome = "pending"   // scheduled, no result yet
	Completed Outcome = "completed" // an activity or sub-orchestration succeeded
	Failed    Outcome = "failed"    // an activity or sub-orchestration failed
	Fired     Outcome = "fired"     // a timer fired
)

// Timeline is the model of one generation's history. Its slices are never nil, so the JSON
// has [] rather than null.
type Timeline struct {
	// Start is the time of the first event (zero for an empty history); offsets count from it.
	Start time.Time `json:"start,omitzero"`
	// Entries are the events, one each, in history order.
	Entries []Entry `json:"entries"`
	// Turns are the orchestrator's turns, in order; Turn.Number is 1-based.
	Turns []Turn `json:"turns"`
	// Activities are the activity calls in the order they were first scheduled.
	Activities []Activity `json:"activities"`
	// Timers are the durable timers in the order they were created.
	Timers []Timer `json:"timers"`
	// Events are the raised events in the order they arrived.
	Events []RaisedEvent `json:"events"`
	// SubOrchestrations are the sub-orchestrations in the order they were created.
	SubOrchestrations []SubOrchestration `json:"subOrchestrations"`
}

// Entry is one history event with what matters about it.
type Entry struct {
	Time time.Time `json:"time"`
	// Offset is the time since Timeline.Start.
	Offset Duration          `json:"offsetMs"`
	Turn   int               `json:"turn"` // 0 for events before the first turn
	Type   history.EventType `json:"type"`
	TaskID int               `json:"taskId,omitempty"`
	Name   string            `json:"name,omitempty"`
	// InstanceID is a sub-orchestration's instance.
	InstanceID string `json:"instanceId,omitempty"`
	// Summary is the one-line description `jetflow history` prints (long values shortened).
	Summary string `json:"summary"`
}

// Turn is one run of the orchestrator: the events it received and what it decided.
type Turn struct {
	Number int `json:"number"`
	// Time is the turn's OrchestratorStarted time: the orchestrator's CurrentTime in the turn.
	Time time.Time `json:"time"`
	// FirstEntry indexes Timeline.Entries; the turn holds Entries events from there.
	FirstEntry int `json:"firstEntry"`
	Entries    int `json:"entries"`
	// Progressed reports that the orchestrator went on in this turn: it scheduled an activity,
	// a timer or a sub-orchestration, or its generation ended.
	Progressed bool `json:"progressed"`
}

// Activity is one activity call: one attempt, or several when a retry policy retried it or a
// rewind ran it again.
type Activity struct {
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input,omitempty"`
	// Outcome is the last attempt's.
	Outcome  Outcome   `json:"outcome"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one run of an activity task.
type Attempt struct {
	TaskID      int       `json:"taskId"`
	Turn        int       `json:"turn"` // the turn that scheduled it
	ScheduledAt time.Time `json:"scheduledAt"`
	EndedAt     time.Time `json:"endedAt,omitzero"`
	EndedTurn   int       `json:"endedTurn,omitempty"`
	// Duration runs from the schedule to the result (queueing included); 0 while pending.
	Duration Duration         `json:"durationMs,omitempty"`
	Outcome  Outcome          `json:"outcome"`
	Result   json.RawMessage  `json:"result,omitempty"`
	Failure  *history.Failure `json:"failure,omitempty"`
	// RetryTimer is the durable timer that delayed this attempt after the previous one failed
	// (inferred: a timer created in the turn the previous attempt's failure arrived, fired in
	// the turn this attempt was scheduled, for an activity of the same name).
	RetryTimer int `json:"retryTimer,omitempty"`
	// Rewound reports that a rewind disregarded this attempt's failure and ran the task again
	// (the next attempt, with the same task ID).
	Rewound bool `json:"rewound,omitempty"`
}

// Timer is one durable timer.
type Timer struct {
	TaskID    int       `json:"taskId"`
	Turn      int       `json:"turn"`
	CreatedAt time.Time `json:"createdAt"`
	FireAt    time.Time `json:"fireAt"`
	FiredAt   time.Time `json:"firedAt,omitzero"`
	FiredTurn int       `json:"firedTurn,omitempty"`
	Outcome   Outcome   `json:"outcome"`
	// RetryOf is the failed activity task this timer delayed the retry of (inferred, see
	// Attempt.RetryTimer); 0 for other timers.
	RetryOf int `json:"retryOf,omitempty"`
}

// RaisedEvent is one external event the instance received.
type RaisedEvent struct {
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data,omitempty"`
	EventID   string          `json:"eventId,omitempty"`
	ArrivedAt time.Time       `json:"arrivedAt"`
	Turn      int             `json:"turn"` // the turn that recorded it
	// ConsumedTurn is the turn in which the orchestrator went on after the event arrived: the
	// event's own turn if the orchestrator progressed in it, else the next turn that
	// progressed; 0 if none has yet (the event is buffered, or awaited together with others
	// still to come). Inferred: the history records no waits.
	ConsumedTurn int       `json:"consumedTurn,omitempty"`
	ConsumedAt   time.Time `json:"consumedAt,omitzero"`
}

// SubOrchestration is one sub-orchestration the instance started.
type SubOrchestration struct {
	TaskID     int              `json:"taskId"`
	Name       string           `json:"name"`
	InstanceID string           `json:"instanceId"`
	Input      json.RawMessage  `json:"input,omitempty"`
	Turn       int              `json:"turn"`
	CreatedAt  time.Time        `json:"createdAt"`
	EndedAt    time.Time        `json:"endedAt,omitzero"`
	EndedTurn  int              `json:"endedTurn,omitempty"`
	Duration   Duration         `json:"durationMs,omitempty"`
	Outcome    Outcome          `json:"outcome"`
	Result     json.RawMessage  `json:"result,omitempty"`
	Failure    *history.Failure `json:"failure,omitempty"`
	// Rewinds counts the rewinds that ran it again after it failed.
	Rewinds int `json:"rewinds,omitempty"`
}

// Duration is a time.Duration that is JSON-encoded as a number of milliseconds.
type Duration time.Duration

// MarshalJSON encodes d as milliseconds (with a fraction below one millisecond).
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/float64(time.Millisecond), 'f', -1, 64), nil
}

// UnmarshalJSON decodes a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return err
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}
