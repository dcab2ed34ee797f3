// Package backend defines the storage and messaging interface the engine runs on, the work items
// it exchanges, and the errors it reports. Nothing in it knows NATS; backend/natsjs implements it
// on JetStream.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

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

// Backend stores instances and carries their messages. Implementations must be safe for
// concurrent use.
type Backend interface {
	// CreateInstance registers a new instance and queues its start message. It returns
	// [ErrInstanceExists] if an instance with the ID is pending, running or suspended; an
	// instance that has ended is replaced.
	CreateInstance(ctx context.Context, req StartRequest) error
	// Send queues a message for an instance (an event, result, terminate, suspend, resume). It
	// returns [ErrInvalidName] for a bad ID or event name and [ErrPayloadTooLarge] for big data.
	// It does not check that the instance exists.
	Send(ctx context.Context, msg Message) error
	// GetInstance returns the instance's state, or [ErrInstanceNotFound].
	GetInstance(ctx context.Context, id string) (*Instance, error)
	// WatchInstance sends the instance's state on every change until ctx ends. The first value
	// is the current state; [ErrInstanceNotFound] if there is none.
	WatchInstance(ctx context.Context, id string) (<-chan *Instance, error)
	// GetHistory returns the history of the instance's current generation, or [ErrInstanceNotFound].
	GetHistory(ctx context.Context, id string) ([]history.Event, error)
	// PurgeInstance deletes an ended instance's state and history. It returns
	// [ErrInstanceNotFound] or [ErrInstanceNotEnded].
	PurgeInstance(ctx context.Context, id string) error
	// ListInstances returns a page of the instances matching q, ordered by instance ID, and a
	// continuation token for the next page (empty when there are no more). A page may hold
	// fewer than q.Top instances even when a token is returned. It returns
	// [ErrBadContinuationToken] for a token it did not issue.
	ListInstances(ctx context.Context, q Query) (Page, error)

	// ConsumeInbox delivers instance messages to handle, one call per message, in the order of
	// the inbox, until ctx ends. A handler must eventually Ack or Nak each message.
	ConsumeInbox(ctx context.Context, handle func(InboxMessage)) error
	// LoadInstance reads an instance's state and the turns of its current generation. With
	// beyond, it also looks for committed turns beyond the state, whose tasks may not have been
	// published (a worker died in between, see PublishTurn); the engine asks for them after a
	// commit conflict, which is how such a turn shows itself.
	LoadInstance(ctx context.Context, id string, beyond bool) (*Snapshot, error)
	// ReadInbox returns the instance's queued messages with after < Seq < before, in order. The
	// engine calls it to apply messages that were delivered to another worker in stream order.
	// Message `before` is one the caller holds; a read that cannot see it (applied and acked by
	// another worker, or a lagging replica answered) fails with [ErrConflict] rather than return
	// a list that may lack earlier messages.
	ReadInbox(ctx context.Context, id string, after, before uint64) ([]InboxMessage, error)
	// CommitTurn appends a turn to the instance's history. Exactly one writer can commit a given
	// turn number; the others get [ErrConflict].
	CommitTurn(ctx context.Context, turn *Turn) error
	// PublishTurn publishes a committed turn's tasks (idempotently) and then updates the
	// instance's state; it is repeated after a crash, so it must be safe to call twice.
	PublishTurn(ctx context.Context, turn *Turn) (*Instance, error)
	// ConsumeActivities runs handle for each task of the named activities, acking a task when
	// handle returns nil and redelivering it otherwise, until ctx ends.
	ConsumeActivities(ctx context.Context, names []string, handle func(context.Context, ActivityTask) error) error
	// DeadLetter records a message the engine cannot process, with the reason, and acks it.
	DeadLetter(ctx context.Context, msg InboxMessage, reason string) error
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
	// MsgID deduplicates the message (Nats-Msg-Id on NATS); for events it is the event ID.
	MsgID string
}

// InboxMessage is a Message as the worker receives it.
type InboxMessage struct {
	Message
	Seq       uint64 // position in the inbox; the order of application
	Delivered uint64 // delivery count, 1 on first delivery
	Time      time.Time
	Subject   string // raw subject, for dead-letter records
	// Err is set when the message could not be parsed (bad subject); such messages are
	// dead-lettered.
	Err error
	// Epoch identifies the exclusive delivery the message came through: messages with the same
	// non-zero Epoch came, in inbox order, through a consumer that no other worker read from
	// while it existed. 0 means no such promise (the message was read, or shared).
	Epoch uint64

	Ack func() error              `json:"-"`
	Nak func(time.Duration) error `json:"-"`
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
}

// TaskResult is the body of a result message: an activity's or sub-orchestration's outcome.
type TaskResult struct {
	Generation uint64           `json:"generation"`
	TaskID     int              `json:"taskId"`
	Result     json.RawMessage  `json:"result,omitempty"`
	Failure    *history.Failure `json:"failure,omitempty"`
	// SubOrchestration marks the result of a sub-orchestration rather than an activity.
	SubOrchestration bool `json:"subOrchestration,omitempty"`
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
	// Attempt counts deliveries of this task message, from 1.
	Attempt uint64 `json:"-"`
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
	UpdatedAt    time.Time             `json:"lastUpdatedTime"`
	Waiting      *history.Waiting      `json:"waitingFor,omitempty"`
	Parent       *history.ParentRef    `json:"parent,omitempty"`

	// Bookkeeping of the engine.
	StartID    string `json:"startId,omitempty"`
	Generation uint64 `json:"generation"`
	FirstTurn  uint64 `json:"firstTurn"` // first turn of the current generation
	Turn       uint64 `json:"turn"`      // last turn reflected in this state
	LastSeq    uint64 `json:"lastSeq"`   // last inbox message applied

	// Revision is the storage revision this state was read at (not stored).
	Revision uint64 `json:"-"`
}

// Snapshot is what LoadInstance returns.
type Snapshot struct {
	// Instance is nil if the instance does not exist.
	Instance *Instance
	// Turns are the committed turns of the current generation, in order. Those with a Number
	// above Instance.Turn were committed but may not have been published.
	Turns []*Turn
}

// Turn is one committed step of an instance: the events it appended, the tasks it scheduled and
// the state it leaves.
type Turn struct {
	InstanceID string `json:"instanceId"`
	Number     uint64 `json:"turn"`
	// Reset starts a new generation: the history before this turn no longer counts.
	Reset   bool             `json:"reset,omitempty"`
	LastSeq uint64           `json:"lastSeq"`
	Events  []history.Event  `json:"events"`
	Actions []history.Action `json:"actions,omitempty"`
	// Generation the turn belongs to; actions are tagged with it.
	Generation uint64 `json:"generation"`
	// Messages are sent to other instances after the commit (a sub-orchestration's result).
	Messages []Message `json:"messages,omitempty"`
	// PrevFirstTurn, on a Reset turn, is where the previous generation's history began, so
	// that it can be deleted.
	PrevFirstTurn uint64 `json:"prevFirstTurn,omitempty"`
	// State is the instance's state after the turn. Its Input is set on Reset turns only; other
	// turns keep the stored input.
	State Instance `json:"state"`
}
