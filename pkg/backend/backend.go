// Package backend defines the storage and messaging interface the engine runs on, the work items
// it exchanges, and the errors it reports. Nothing in it knows NATS; backend/natsjs implements it
// on JetStream.
package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Errors returned by backends and the engine; test for them with errors.Is.
var (
	// ErrInstanceNotFound: no instance has this ID.
	ErrInstanceNotFound = errors.New("instance not found")
	// ErrInstanceExists: an instance with this ID is already pending, running or suspended.
	ErrInstanceExists = errors.New("instance already exists")
	// ErrInstanceEnded: the instance has completed, failed or been terminated.
	ErrInstanceEnded = errors.New("instance has ended")
	// ErrInstanceNotEnded: the operation needs an instance that has ended (purge).
	ErrInstanceNotEnded = errors.New("instance has not ended")
	// ErrInstanceNotFailed: the operation needs an instance that has failed (rewind).
	ErrInstanceNotFailed = errors.New("instance has not failed")
	// ErrConflict: another writer committed this turn first; reload and retry.
	ErrConflict = errors.New("conflicting write")
	// ErrInvalidName: an instance ID or event name that cannot be used (empty, too long,
	// control characters).
	ErrInvalidName = history.ErrInvalidName
	// ErrPayloadTooLarge: an input, event or result over the configured size limit.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrBadPayload: data that is not valid JSON.
	ErrBadPayload = errors.New("payload is not valid JSON")
	// ErrBadContinuationToken: a Query.ContinuationToken that no ListInstances returned.
	ErrBadContinuationToken = errors.New("invalid continuation token")
)

// Backend stores instances and carries their messages: the client side (ClientBackend) and the
// worker side (WorkerBackend). Implementations must be safe for concurrent use; backendtest holds
// the contract every implementation must pass.
type Backend interface {
	ClientBackend
	WorkerBackend
}

// ClientBackend is what clients use: create instances, send them messages, read and purge them.
type ClientBackend interface {
	// CreateInstance registers a new instance and queues its start. It returns
	// [ErrInstanceExists] if an instance with the ID is pending, running or suspended (an
	// instance that has ended is replaced), [ErrInvalidName] for a bad ID and
	// [ErrPayloadTooLarge] for an input over MaxPayload.
	CreateInstance(ctx context.Context, req StartRequest) error
	// Send queues a message for an instance (an event, terminate, suspend, resume, rewind). It
	// returns [ErrInvalidName] for a bad ID or event name and [ErrPayloadTooLarge] for data over
	// MaxPayload. It does not check that the instance exists: a message for an instance that
	// does not exist is discarded by the worker.
	Send(ctx context.Context, msg Message) error
	// GetInstance returns the instance's state, or [ErrInstanceNotFound].
	GetInstance(ctx context.Context, id string) (*Instance, error)
	// WatchInstance sends the instance's state on every change until ctx ends. The first value
	// is the current state; [ErrInstanceNotFound] if there is none.
	WatchInstance(ctx context.Context, id string) (<-chan *Instance, error)
	// GetHistory returns the history of the instance's current generation, or
	// [ErrInstanceNotFound].
	GetHistory(ctx context.Context, id string) ([]history.Event, error)
	// PurgeInstance deletes an ended instance's state and history. It returns
	// [ErrInstanceNotFound], [ErrInstanceNotEnded], or [ErrConflict] if the instance changed
	// meanwhile.
	PurgeInstance(ctx context.Context, id string) error
	// ListInstances returns a page of the instances matching q, ordered by instance ID, and a
	// continuation token for the next page (empty when there are no more). A page may hold
	// fewer than q.Top instances even when a token is returned. It returns
	// [ErrBadContinuationToken] for a token it did not issue.
	ListInstances(ctx context.Context, q Query) (Page, error)
	// DeadLetters returns up to n dead-lettered messages recorded after position `after` (0:
	// from the first), oldest first; DeadLetter.Position continues the listing.
	DeadLetters(ctx context.Context, after uint64, n int) ([]DeadLetter, error)
	// MaxPayload returns the largest input, event data or result, in bytes, that the backend
	// carries; larger ones are refused with [ErrPayloadTooLarge].
	MaxPayload() int
	// WorkerRegistry: the live workers and what they serve (workers.go).
	WorkerRegistry
}

// WorkerBackend is what workers use: orchestration and activity work items.
//
// An orchestration work item holds the new messages of one instance, in the order they must be
// applied. While an item is out, no other item of that instance is handed out by this backend;
// across backends (workers), two items of one instance may be out at once, and
// CompleteOrchestrationWorkItem lets exactly one of them commit.
type WorkerBackend interface {
	// NextOrchestrationWorkItem waits for an instance with messages to apply and returns them
	// as a work item. The first call starts delivery, which lasts until that call's ctx ends.
	// It returns ctx's error when ctx ends, or the error that stopped delivery.
	NextOrchestrationWorkItem(ctx context.Context) (*OrchestrationWorkItem, error)
	// OrchestrationHistory returns the events of the item's instance's current generation, as
	// of item.State (the engine calls it when it holds no replayed instance at that version).
	OrchestrationHistory(ctx context.Context, item *OrchestrationWorkItem) ([]history.Event, error)
	// CompleteOrchestrationWorkItem commits c atomically: its events are appended to the
	// history, its state stored, then its tasks and messages sent and the applied messages
	// consumed; messages after the first c.Applied come back in the instance's next work item.
	// It returns the state as stored. It returns [ErrConflict] if another completion for the
	// instance was committed since item.State was read; the item's messages then come back in
	// a new item read on fresh state. After any other error the caller abandons the item.
	CompleteOrchestrationWorkItem(ctx context.Context, item *OrchestrationWorkItem, c *OrchestrationCompletion) (*Instance, error)
	// AbandonOrchestrationWorkItem hands the item's messages back unapplied: they come back,
	// in order, after delay. Abandoning an item that was completed or abandoned does nothing.
	AbandonOrchestrationWorkItem(ctx context.Context, item *OrchestrationWorkItem, delay time.Duration) error

	// NextActivityWorkItem waits for a task of one of the named activities. The first call
	// starts delivery for those names, which lasts until that call's ctx ends; later calls must
	// name the same activities. It returns ctx's error when ctx ends.
	NextActivityWorkItem(ctx context.Context, names []string) (*ActivityWorkItem, error)
	// CompleteActivityWorkItem sends the task's result to its instance and consumes the task;
	// a result sent twice (after a crash) is applied once.
	CompleteActivityWorkItem(ctx context.Context, item *ActivityWorkItem, result TaskResult) error
	// AbandonActivityWorkItem hands the task back: it is delivered again after delay.
	AbandonActivityWorkItem(ctx context.Context, item *ActivityWorkItem, delay time.Duration) error
	// ExtendActivityWorkItem says that the item's activity is running (it started, or sent a
	// heartbeat): its task is not delivered again while the backend keeps extending it, which
	// it does until `until` (the attempt's deadline) and no longer, so that a worker that hangs
	// past the deadline loses the task. Extending an item that was completed or abandoned does
	// nothing.
	ExtendActivityWorkItem(ctx context.Context, item *ActivityWorkItem, until time.Time) error
	// CancelActivities tells every worker running an activity of instance c.InstanceID, of
	// generation c.Generation or an earlier one, that it is cancelled: their items' Canceled
	// channels close. It is best effort: a worker that takes such a task later runs it, and
	// its result is discarded by the instance.
	CancelActivities(ctx context.Context, c ActivityCancel) error
	// WorkerRegistry: workers announce what they serve (workers.go).
	WorkerRegistry
}

// OrchestrationWorkItem is one instance's new messages, as NextOrchestrationWorkItem returns
// them.
type OrchestrationWorkItem struct {
	InstanceID string
	// State is the instance's stored state before the messages; nil if it does not exist. When
	// it is nil, pending or ended, it is the latest committed one, so a message for the instance
	// may be discarded on its word. Its Input may be left out (the engine does not need it).
	State *Instance
	// Messages are the messages to apply, in order.
	Messages []WorkMessage
	// Token is the backend's own record of the item; the engine leaves it alone.
	Token any
}

// WorkMessage is a message in a work item.
type WorkMessage struct {
	Message
	// Deliveries counts how many times the message was handed out, 1 the first time.
	Deliveries uint64
}

// OrchestrationCompletion is the outcome of a work item: CompleteOrchestrationWorkItem stores it
// in one atomic commit.
type OrchestrationCompletion struct {
	// Applied is how many of the item's messages, from the first, this completion consumes.
	Applied int
	// DeadLetters are the applied messages that could not be applied, recorded with a reason.
	DeadLetters []DeadLetterRequest
	// NewGeneration starts a new generation with Events: the history before no longer counts.
	NewGeneration bool
	// Events are appended to the history. With none, nothing is committed: the applied
	// messages are consumed (they were stale, discarded or dead-lettered) and Messages sent.
	Events []history.Event
	// Actions are the tasks to schedule: activities, timers, sub-orchestrations, of the
	// generation State.Generation.
	Actions []history.Action
	// Messages are sent to other instances after the commit (a sub-orchestration's result).
	Messages []Message
	// State is the instance's state after the events.
	State Instance
	// Trace is the turn's trace context: the tasks and messages the completion sends carry it
	// (also when they are sent again after a crash).
	Trace TraceContext
}

// DeadLetterRequest names an applied message that is dead-lettered, and why.
type DeadLetterRequest struct {
	Index  int // in OrchestrationWorkItem.Messages
	Reason string
}

// ActivityWorkItem is one activity task, as NextActivityWorkItem returns it.
type ActivityWorkItem struct {
	Task ActivityTask
	// Canceled is closed when the task's instance has ended and its activities were cancelled
	// (CancelActivities); the activity should stop, and its result will be discarded.
	Canceled <-chan struct{}
	// Token is the backend's own record of the item; the engine leaves it alone.
	Token any
}

// DeadLetter is the record of a message that could not be processed: what the dead-letter
// store holds (its JSON is a wire format, see docs/wire.md) and DeadLetters lists.
type DeadLetter struct {
	Reason  string `json:"reason"`
	Source  string `json:"source"`          // "inbox", "activity" or "raiser"
	Queue   string `json:"queue,omitempty"` // the raiser's queue, for Source "raiser"
	Subject string `json:"subject"`
	// Seq is the message's position in the stream or queue it came from.
	Seq     uint64    `json:"seq"`
	Data    string    `json:"data"` // the payload, if it is UTF-8
	DataB64 []byte    `json:"dataBase64,omitempty"`
	Time    time.Time `json:"time"`
	// Position orders the dead letters in their store; pass the last one seen to DeadLetters
	// to continue (not stored).
	Position uint64 `json:"-"`
}

// NewDeadLetter returns the record of a message from source that could not be processed.
func NewDeadLetter(source, subject string, seq uint64, data []byte, reason string) DeadLetter {
	d := DeadLetter{Reason: reason, Source: source, Subject: subject, Seq: seq, Time: time.Now().UTC()}
	if utf8.Valid(data) {
		d.Data = string(data)
	} else {
		d.DataB64 = data
	}
	return d
}

// Query selects instances for ListInstances. The zero Query matches every instance.
type Query struct {
	// CreatedFrom and CreatedTo bound the creation time, inclusive; zero means unbounded.
	CreatedFrom, CreatedTo time.Time
	// Statuses, if not empty, keeps only instances with one of these statuses.
	Statuses []history.RuntimeStatus
	// IDPrefix, if not empty, keeps only instances whose ID starts with it.
	IDPrefix string
	// Top is the page size: DefaultTop if 0 or less, at most MaxTop.
	Top int
	// ContinuationToken continues a previous listing (Page.ContinuationToken); empty starts it.
	ContinuationToken string
}

// Page sizes of Query.Top.
const (
	DefaultTop = 100
	MaxTop     = 1000
)

// PageSize returns q.Top bounded to 1..MaxTop, DefaultTop if unset.
func (q Query) PageSize() int {
	switch {
	case q.Top <= 0:
		return DefaultTop
	case q.Top > MaxTop:
		return MaxTop
	}
	return q.Top
}

// Matches reports whether s passes q's filters (not the paging).
func (q Query) Matches(s *Instance) bool {
	if q.IDPrefix != "" && !strings.HasPrefix(s.ID, q.IDPrefix) {
		return false
	}
	if !q.CreatedFrom.IsZero() && s.CreatedAt.Before(q.CreatedFrom) {
		return false
	}
	if !q.CreatedTo.IsZero() && s.CreatedAt.After(q.CreatedTo) {
		return false
	}
	if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, s.Status) {
		return false
	}
	return true
}

// EncodeContinuation returns the continuation token of a page whose last instance is lastID.
func EncodeContinuation(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// DecodeContinuation returns the instance ID a continuation token continues after ("" for an
// empty token), or ErrBadContinuationToken.
func DecodeContinuation(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	// Strict: the unused bits of the last character must be zero, so that the one token
	// EncodeContinuation gives is the only one accepted for an ID ("QR" is not "QQ").
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(raw) == 0 || !utf8.Valid(raw) {
		return "", fmt.Errorf("%w: %q", ErrBadContinuationToken, tok)
	}
	return string(raw), nil
}

// Page is one page of ListInstances.
type Page struct {
	Instances []*Instance
	// ContinuationToken, when not empty, is passed in Query.ContinuationToken for the next page.
	// It is opaque.
	ContinuationToken string
}

// MessageKind is the kind of an instance message; it is the subject token after the instance ID.
type MessageKind string

// The message kinds.
const (
	KindStart     MessageKind = "start"
	KindEvent     MessageKind = "event"
	KindResult    MessageKind = "result"
	KindTimer     MessageKind = "timer"
	KindTerminate MessageKind = "terminate"
	KindSuspend   MessageKind = "suspend"
	KindResume    MessageKind = "resume"
	// KindRewind rewinds a failed instance; its body is a TerminateRequest with the reason.
	KindRewind MessageKind = "rewind"
)

// Message is addressed to one instance.
type Message struct {
	InstanceID string
	Kind       MessageKind
	EventName  string // events only
	Data       []byte
	// MsgID, on an event, is its event ID: an instance applies one event ID once. On other
	// kinds it is ignored; the backend deduplicates what the engine sends on its own.
	MsgID string
	// Trace is the sender's trace context, carried in the message's headers (wire.go).
	Trace TraceContext `json:"-"`
}

// StartRequest creates an instance.
type StartRequest struct {
	InstanceID string             `json:"instanceId"`
	Name       string             `json:"name"`
	Input      json.RawMessage    `json:"input,omitempty"`
	StartID    string             `json:"startId"`
	Parent     *history.ParentRef `json:"parent,omitempty"`
	Time       time.Time          `json:"time"`
	// Event, if set, is delivered with the start (engine.Client.StartWithEvent): to the
	// generation the start creates, or, if the instance is pending, running or suspended and
	// the start is therefore ignored, to that generation.
	Event *StartEvent `json:"event,omitempty"`
	// Version is the orchestrator version the instance runs; "" lets the worker that takes the
	// start choose the newest version it has of Name.
	Version string `json:"version,omitempty"`
	// StartAt, when set and in the future, is when the instance starts: it is Pending until
	// then (the start message is delivered then).
	StartAt time.Time `json:"startAt,omitzero"`
	// Trace is the caller's trace context, carried in the start message's headers (wire.go),
	// not in its body.
	Trace TraceContext `json:"-"`
}

// PayloadSize is what the start carries that the payload limit applies to: its input and the
// data of its event. Clients refuse a start over the limit with ErrPayloadTooLarge, and
// workers apply the same rule to the start messages they take (the JSON envelope around the
// payload does not count), so a start accepted at the door is never dead-lettered for its size.
func (r *StartRequest) PayloadSize() int {
	n := len(r.Input)
	if r.Event != nil {
		n += len(r.Event.Data)
	}
	return n
}

// CheckPayload returns an error wrapping ErrPayloadTooLarge if the start's PayloadSize is over
// limit.
func (r *StartRequest) CheckPayload(limit int) error {
	if n := r.PayloadSize(); n > limit {
		return fmt.Errorf("starting %q: input and event data of %d bytes: %w (limit %d)", r.InstanceID, n, ErrPayloadTooLarge, limit)
	}
	return nil
}

// StartEvent is an external event carried by a start message.
type StartEvent struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data,omitempty"`
	// ID deduplicates the event, as Message.MsgID does for events.
	ID string `json:"id,omitempty"`
}

// TerminateRequest is the body of terminate, suspend, resume and rewind messages.
type TerminateRequest struct {
	Reason string `json:"reason,omitempty"`
	// Recursive, on a terminate, says whether the instance's running sub-orchestrations are
	// terminated too (recursively); unset means true.
	Recursive *bool `json:"recursive,omitempty"`
}

// IsRecursive reports whether a terminate reaches the instance's sub-orchestrations: unless
// Recursive is set to false.
func (r TerminateRequest) IsRecursive() bool { return r.Recursive == nil || *r.Recursive }

// TaskResult is the body of a result message: an activity's or sub-orchestration's outcome.
type TaskResult struct {
	Generation uint64           `json:"generation"`
	TaskID     int              `json:"taskId"`
	Result     json.RawMessage  `json:"result,omitempty"`
	Failure    *history.Failure `json:"failure,omitempty"`
	// SubOrchestration marks the result of a sub-orchestration rather than an activity.
	SubOrchestration bool `json:"subOrchestration,omitempty"`
	// Rewind is the task's ActivityTask.Rewind (or ParentRef.Rewind): a task run again by a
	// rewind reports a result of its own.
	Rewind int `json:"rewind,omitempty"`
	// Trace is the trace context the result is sent with (the activity's span), carried in
	// the result message's headers, not in its body.
	Trace TraceContext `json:"-"`
}

// TimerFired is the body of a timer message.
type TimerFired struct {
	Generation uint64 `json:"generation"`
	TaskID     int    `json:"taskId"`
}

// ActivityTask is the body of an activity task message. Any process that can read it and publish
// a TaskResult to the instance's result subject can run activities.
type ActivityTask struct {
	InstanceID string          `json:"instanceId"`
	Generation uint64          `json:"generation"`
	TaskID     int             `json:"taskId"`
	Name       string          `json:"name"`
	Input      json.RawMessage `json:"input,omitempty"`
	// Rewind, when not 0, marks a task scheduled again by a rewind (history.Action.Rewind); its
	// result is sent with a message ID of its own.
	Rewind int `json:"rewind,omitempty"`
	// StartToCloseMs bounds one attempt, in milliseconds from when a worker starts it; 0 (omitted):
	// the worker's default (engine.DefaultStartToClose).
	StartToCloseMs int64 `json:"startToCloseMs,omitempty"`
	// ScheduleToCloseDeadline bounds every attempt of the call: a task taken after it is not run
	// but answered with a ScheduleToCloseTimeout failure; omitted if the call set none.
	ScheduleToCloseDeadline time.Time `json:"scheduleToCloseDeadline,omitzero"`
	// HeartbeatTimeoutMs is the longest an attempt may go without a heartbeat, in milliseconds;
	// 0 (omitted): no heartbeat is required.
	HeartbeatTimeoutMs int64 `json:"heartbeatTimeoutMs,omitempty"`
	// HeartbeatDetails are the last heartbeat details of the call's previous attempt (a retry);
	// omitted if none.
	HeartbeatDetails json.RawMessage `json:"heartbeatDetails,omitempty"`
	// Attempt counts deliveries of this task message, from 1.
	Attempt uint64 `json:"-"`
	// Trace is the trace context the task message carried (the turn that scheduled it), from
	// its headers.
	Trace TraceContext `json:"-"`
}

// NewActivityTask is the task message of activity action a, scheduled by generation gen of
// instance id.
func NewActivityTask(id string, gen uint64, a history.Action) ActivityTask {
	t := ActivityTask{InstanceID: id, Generation: gen, TaskID: a.TaskID, Name: a.Name, Input: a.Input, Rewind: a.Rewind, HeartbeatDetails: a.HeartbeatDetails}
	if to := a.Timeouts; to != nil {
		t.StartToCloseMs = to.StartToClose.Milliseconds()
		t.ScheduleToCloseDeadline = to.ScheduleToCloseDeadline
		t.HeartbeatTimeoutMs = to.Heartbeat.Milliseconds()
	}
	return t
}

// StartToClose returns the task's StartToCloseMs as a duration (0: the worker's default).
func (t *ActivityTask) StartToClose() time.Duration {
	return time.Duration(t.StartToCloseMs) * time.Millisecond
}

// HeartbeatTimeout returns the task's HeartbeatTimeoutMs as a duration (0: none).
func (t *ActivityTask) HeartbeatTimeout() time.Duration {
	return time.Duration(t.HeartbeatTimeoutMs) * time.Millisecond
}

// TimeoutResult is the result of task's attempt stopped by a timeout, failureType being one of
// the history.Failure*Timeout types; details are the attempt's last heartbeat details.
func TimeoutResult(t ActivityTask, failureType, message string, details json.RawMessage) TaskResult {
	return TaskResult{
		Generation: t.Generation, TaskID: t.TaskID, Rewind: t.Rewind,
		Failure: &history.Failure{Type: failureType, Message: message, Details: details},
	}
}

// ScheduleToCloseResult is the result a backend delivers to the instance at the task's
// ScheduleToCloseDeadline, whatever became of its workers: if the task has completed by then,
// the instance ignores it.
func ScheduleToCloseResult(t ActivityTask) TaskResult {
	return TimeoutResult(t, history.FailureScheduleToCloseTimeout,
		fmt.Sprintf("activity %q did not complete by its ScheduleToClose deadline %s", t.Name, t.ScheduleToCloseDeadline.UTC().Format(time.RFC3339Nano)), nil)
}

// ActivityCancel is the body of an activity-cancel message (CancelActivities): the activities
// of instance InstanceID, of generation Generation or an earlier one, are cancelled.
type ActivityCancel struct {
	InstanceID string `json:"instanceId"`
	Generation uint64 `json:"generation"`
	Reason     string `json:"reason,omitempty"`
}

// Covers reports whether the cancel applies to task.
func (c ActivityCancel) Covers(task ActivityTask) bool {
	return task.InstanceID == c.InstanceID && task.Generation <= c.Generation
}

// Instance is an instance's queryable state.
type Instance struct {
	ID           string                `json:"instanceId"`
	Name         string                `json:"name"`
	Status       history.RuntimeStatus `json:"runtimeStatus"`
	Input        json.RawMessage       `json:"input,omitempty"`
	Output       json.RawMessage       `json:"output,omitempty"`
	CustomStatus json.RawMessage       `json:"customStatus,omitempty"`
	Failure      *history.Failure      `json:"failure,omitempty"`
	CreatedAt    time.Time             `json:"createdTime"`
	UpdatedAt    time.Time             `json:"lastUpdatedTime,omitzero"`
	Waiting      *history.Waiting      `json:"waitingFor,omitempty"`
	Parent       *history.ParentRef    `json:"parent,omitempty"`

	// StartID identifies the start request of the current generation.
	StartID    string `json:"startId,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	// HistoryEvents counts the events in the current generation's history.
	HistoryEvents int `json:"historyEvents,omitempty"`
	// Warning, when set, says that the instance nears a limit and what to do about it.
	Warning string `json:"warning,omitempty"`
	// OrchestratorVersion is the orchestrator version the current generation runs ("" for an
	// unversioned orchestrator, and before the generation starts unless the start named one).
	OrchestratorVersion string `json:"orchestratorVersion,omitempty"`
	// ScheduledStartTime, on an instance created with a start time (StartRequest.StartAt), is
	// when it starts.
	ScheduledStartTime time.Time `json:"scheduledStartTime,omitzero"`
	// WaitingForVersion is set, as "name@version", while no worker serving the orchestrator
	// version the instance runs has been found (VersionRouter); Warning says so.
	WaitingForVersion string `json:"waitingForVersion,omitempty"`
	// Version changes with every completion committed for the instance; 0 until the first.
	// It lets a worker tell whether an instance it holds in memory is the stored one.
	Version uint64 `json:"-"`
}
