package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// MaxCustomStatusBytes is the largest custom status accepted, as in Durable Functions.
const MaxCustomStatusBytes = 16 << 10

// OrchestrationContext is what an orchestrator receives. It offers only calls that are safe to
// replay. Its methods must be called from the orchestrator's own goroutine.
type OrchestrationContext struct {
	e *Executor
}

// InstanceID returns the ID of the running instance.
func (c *OrchestrationContext) InstanceID() string { return c.e.instanceID }

// Name returns the orchestrator's registered name.
func (c *OrchestrationContext) Name() string { return c.e.name }

// GetInput decodes the instance's input into v.
func (c *OrchestrationContext) GetInput(v any) error {
	if len(c.e.input) == 0 {
		return nil
	}
	if err := decodeJSON(c.e.input, v); err != nil {
		return &DecodeError{What: "orchestration input", Err: err}
	}
	return nil
}

// CurrentTime returns the deterministic time of the current turn: the same value on every replay.
func (c *OrchestrationContext) CurrentTime() time.Time { return c.e.now }

// IsReplaying reports whether the orchestrator is re-executing code whose effects are already
// recorded in the history.
func (c *OrchestrationContext) IsReplaying() bool { return c.e.replaying }

// Logger returns a logger that discards everything while the orchestrator replays, so each line
// is logged once. Call it at each log line: a logger derived from it and kept in a variable
// keeps the replaying state of the moment it was derived.
func (c *OrchestrationContext) Logger() *zerolog.Logger {
	if c.e.replaying {
		nop := zerolog.Nop()
		return &nop
	}
	return &c.e.log
}

// NewUUID returns a deterministic UUID (version 5), different on each call and the same on replay.
func (c *OrchestrationContext) NewUUID() uuid.UUID {
	c.e.uuidCounter++
	return uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "jetflow:%s:%d:%d", c.e.instanceID, c.e.gen, c.e.uuidCounter))
}

// SetCustomStatus sets the instance's custom status, visible in its status as JSON; nil clears
// it. It fails if v does not encode or exceeds MaxCustomStatusBytes.
func (c *OrchestrationContext) SetCustomStatus(v any) error {
	if v == nil {
		c.e.customStatus = nil
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding custom status: %w", err)
	}
	if len(b) > MaxCustomStatusBytes {
		return fmt.Errorf("custom status is %d bytes, more than the limit of %d", len(b), MaxCustomStatusBytes)
	}
	c.e.customStatus = b
	return nil
}

// RetryPolicy retries a failed activity with durable timers between attempts.
type RetryPolicy struct {
	// MaxAttempts counts the first call; 0 or 1 means no retry.
	MaxAttempts int
	// FirstRetryInterval is the delay before the second attempt (default 1s).
	FirstRetryInterval time.Duration
	// BackoffCoefficient multiplies the delay after each attempt (default 1).
	BackoffCoefficient float64
	// MaxRetryInterval caps the delay (0 means no cap).
	MaxRetryInterval time.Duration
	// RetryTimeout stops retrying once this much time has passed since the first attempt (0 means none).
	RetryTimeout time.Duration
	// Handle decides whether an error is worth retrying (nil means every error is).
	Handle func(error) bool
}

func (p *RetryPolicy) delay(attempt int, elapsed time.Duration, err error) (time.Duration, bool) {
	if attempt >= p.MaxAttempts || (p.Handle != nil && !p.Handle(err)) {
		return 0, false
	}
	d := p.FirstRetryInterval
	if d <= 0 {
		d = time.Second
	}
	coef := p.BackoffCoefficient
	if coef < 1 {
		coef = 1
	}
	for i := 1; i < attempt; i++ {
		d = time.Duration(float64(d) * coef)
		if p.MaxRetryInterval > 0 && d > p.MaxRetryInterval {
			d = p.MaxRetryInterval
			break
		}
	}
	if p.RetryTimeout > 0 && elapsed+d > p.RetryTimeout {
		return 0, false
	}
	return d, true
}

// CallOption configures CallActivity.
type CallOption func(*callOptions)

type callOptions struct {
	retry                                    *RetryPolicy
	startToClose, scheduleToClose, heartbeat time.Duration
}

// WithRetry retries the activity according to policy.
func WithRetry(policy RetryPolicy) CallOption {
	return func(o *callOptions) { o.retry = &policy }
}

// WithStartToClose bounds each attempt of the activity to d from when a worker starts it
// (default: the worker's, engine.DefaultStartToClose, 10 minutes). When it passes, the worker
// cancels the activity's context and the attempt fails with type
// history.FailureStartToCloseTimeout, which a retry policy sees like any failure.
func WithStartToClose(d time.Duration) CallOption {
	return func(o *callOptions) { o.startToClose = max(d, 0) }
}

// WithScheduleToClose bounds the whole call, every attempt and the waits between retries, to d
// from when the orchestrator makes it (default: no bound). No attempt runs or is retried past
// it; an attempt still running then fails with type history.FailureScheduleToCloseTimeout. The
// backend delivers that failure to the instance at the deadline even if no worker is left to.
func WithScheduleToClose(d time.Duration) CallOption {
	return func(o *callOptions) { o.scheduleToClose = max(d, 0) }
}

// WithHeartbeatTimeout requires the activity to call Heartbeat at least every d (default: no
// heartbeat required); an attempt silent for longer has its context cancelled and fails with
// type history.FailureHeartbeatTimeout.
func WithHeartbeatTimeout(d time.Duration) CallOption {
	return func(o *callOptions) { o.heartbeat = max(d, 0) }
}

// timeouts returns the activity's bounds for a call made at first; nil if none was set.
func (o *callOptions) timeouts(first time.Time) *history.ActivityTimeouts {
	if o.startToClose == 0 && o.scheduleToClose == 0 && o.heartbeat == 0 {
		return nil
	}
	to := &history.ActivityTimeouts{StartToClose: o.startToClose, Heartbeat: o.heartbeat}
	if o.scheduleToClose > 0 {
		to.ScheduleToCloseDeadline = first.Add(o.scheduleToClose)
	}
	return to
}

// ActivityTimedOut reports whether err (from Await on an activity) is the failure of an attempt
// stopped by one of its timeouts, and which: history.FailureStartToCloseTimeout,
// FailureScheduleToCloseTimeout or FailureHeartbeatTimeout. A RetryPolicy's Handle can use it.
func ActivityTimedOut(err error) (string, bool) {
	var failed *TaskFailedError
	if errors.As(err, &failed) && failed.Failure != nil && history.IsActivityTimeout(failed.Failure.Type) {
		return failed.Failure.Type, true
	}
	return "", false
}

// failureDetails returns the heartbeat details carried by an activity's failure.
func failureDetails(err error) json.RawMessage {
	var failed *TaskFailedError
	if errors.As(err, &failed) && failed.Failure != nil {
		return failed.Failure.Details
	}
	return nil
}

// CallActivity schedules activity name with input (encoded as JSON) and returns its task. The
// task's result is the activity's JSON output; a failure is a *TaskFailedError.
func (c *OrchestrationContext) CallActivity(name string, input any, opts ...CallOption) *Task {
	e := c.e
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := history.CheckName("activity name", name); err != nil {
		return e.failedTask(kindActivity, name, err)
	}
	raw, err := marshalInput(input)
	if err != nil {
		return e.failedTask(kindActivity, name, fmt.Errorf("encoding input of activity %q: %w", name, err))
	}
	first := e.now
	timeouts := o.timeouts(first)
	if o.retry == nil || o.retry.MaxAttempts <= 1 {
		return e.newActivity(name, raw, timeouts, nil)
	}
	outer := &Task{e: e, kind: kindRetry, name: name}
	attempt := 1
	var details json.RawMessage // the last attempt's heartbeat details
	var schedule func()
	schedule = func() {
		a := e.newActivity(name, raw, timeouts, details)
		a.onDone = append(a.onDone, func() {
			if a.err == nil {
				outer.complete(a.result, nil)
				return
			}
			d, retry := o.retry.delay(attempt, e.now.Sub(first), a.err)
			if retry && timeouts != nil && !timeouts.ScheduleToCloseDeadline.IsZero() && !e.now.Add(d).Before(timeouts.ScheduleToCloseDeadline) {
				retry = false // the next attempt would begin past the ScheduleToClose deadline
			}
			if !retry {
				outer.complete(nil, a.err)
				return
			}
			if d := failureDetails(a.err); d != nil {
				details = d
			}
			attempt++
			timer := e.newTimer(e.now.Add(d))
			timer.onDone = append(timer.onDone, schedule)
		})
	}
	schedule()
	return outer
}

// CreateTimer returns a durable timer task that completes after d (from CurrentTime).
func (c *OrchestrationContext) CreateTimer(d time.Duration) *Task {
	return c.e.newTimer(c.e.now.Add(d))
}

// CreateTimerAt returns a durable timer task that completes at fireAt.
func (c *OrchestrationContext) CreateTimerAt(fireAt time.Time) *Task {
	return c.e.newTimer(fireAt)
}

// WaitOption configures WaitForExternalEvent.
type WaitOption func(*waitOptions)

type waitOptions struct {
	timeout    time.Duration
	hasTimeout bool
}

// WithTimeout fails the wait with ErrTimeout if no event arrives within d; the event, if it comes
// later, stays buffered for the next wait.
func WithTimeout(d time.Duration) WaitOption {
	return func(o *waitOptions) { o.timeout, o.hasTimeout = d, true }
}

// WaitForExternalEvent returns a task that completes with the data of the next event called name
// (matched case-sensitively). Events raised before the wait are buffered and delivered in the
// order they arrived, one per wait; waits on one name are served first come, first served. A
// wait that lost a WhenAny or timed out consumes no event.
func (c *OrchestrationContext) WaitForExternalEvent(name string, opts ...WaitOption) *Task {
	e := c.e
	var o waitOptions
	for _, opt := range opts {
		opt(&o)
	}
	t := &Task{e: e, kind: kindEvent, name: name}
	e.attach(t)
	if o.hasTimeout && !t.done {
		timer := e.newTimer(e.now.Add(o.timeout))
		timer.onDone = append(timer.onDone, func() {
			if !t.done {
				e.detach(t)
				t.complete(nil, fmt.Errorf("%w: event %q not received within %s", ErrTimeout, name, o.timeout))
			}
		})
		// The event came first: the timer means nothing any more. It is not awaited or listed;
		// when it fires, the firing is ignored.
		t.onDone = append(t.onDone, func() { timer.complete(nil, errCanceled) })
	}
	return t
}

// SendEvent raises event name, with payload encoded as JSON, on instance instanceID. The send is
// recorded in this instance's history (an EventSent event) and the event carries a deterministic
// event ID (history.SentEventID: this instance, its generation and the send's sequence), so a
// send that is replayed or published again is applied once. It does not wait: as in Durable
// Functions, an event for an instance that does not exist is discarded (and logged by the
// worker) and one for an instance that has ended is dropped; the sender is not told. It
// returns an error, and sends nothing, for an invalid instance ID or event name or a payload that
// does not encode.
func (c *OrchestrationContext) SendEvent(instanceID, name string, payload any) error {
	if err := history.CheckName("instance ID", instanceID); err != nil {
		return err
	}
	if err := history.CheckName("event name", name); err != nil {
		return err
	}
	raw, err := marshalInput(payload)
	if err != nil {
		return fmt.Errorf("encoding event %q for %q: %w", name, instanceID, err)
	}
	if raw == nil {
		raw = json.RawMessage("null")
	}
	e := c.e
	e.nextTaskID++
	t := &Task{e: e, kind: kindSend, id: e.nextTaskID, name: name, input: raw, childID: instanceID}
	t.complete(nil, nil)
	e.unconfirmed = append(e.unconfirmed, t)
	return nil
}

// SubOrchestratorOption configures CallSubOrchestrator.
type SubOrchestratorOption func(*subOptions)

type subOptions struct{ instanceID string }

// WithInstanceID sets the sub-orchestration's instance ID (default: a deterministic UUID).
func WithInstanceID(id string) SubOrchestratorOption {
	return func(o *subOptions) { o.instanceID = id }
}

// CallSubOrchestrator starts orchestrator name as a new instance and returns a task that
// completes with its output.
func (c *OrchestrationContext) CallSubOrchestrator(name string, input any, opts ...SubOrchestratorOption) *Task {
	e := c.e
	var o subOptions
	for _, opt := range opts {
		opt(&o)
	}
	raw, err := marshalInput(input)
	if err != nil {
		return e.failedTask(kindSubOrchestration, name, fmt.Errorf("encoding input of sub-orchestration %q: %w", name, err))
	}
	if o.instanceID == "" {
		o.instanceID = c.NewUUID().String()
	}
	for _, err := range []error{history.CheckName("sub-orchestrator name", name), history.CheckName("instance ID", o.instanceID)} {
		if err != nil {
			return e.failedTask(kindSubOrchestration, name, err)
		}
	}
	t := e.newLeaf(kindSubOrchestration, name, raw)
	t.childID = o.instanceID
	return t
}

// ContinueOption configures ContinueAsNew.
type ContinueOption func(*continueAsNew)

// DiscardUnprocessedEvents drops buffered events instead of carrying them into the new execution.
func DiscardUnprocessedEvents() ContinueOption {
	return func(c *continueAsNew) { c.discard = true }
}

type continueAsNew struct {
	input   json.RawMessage
	discard bool
}

// ContinueAsNew restarts the instance with a fresh history and input once the orchestrator
// returns (its return value is ignored). Events received but not yet consumed are carried over
// unless DiscardUnprocessedEvents is given.
func (c *OrchestrationContext) ContinueAsNew(input any, opts ...ContinueOption) error {
	raw, err := marshalInput(input)
	if err != nil {
		return fmt.Errorf("encoding continue-as-new input: %w", err)
	}
	can := &continueAsNew{input: raw}
	for _, opt := range opts {
		opt(can)
	}
	c.e.continueAsNew = can
	return nil
}

// WhenAny returns a task that completes when the first of tasks completes (successfully or not).
// Await it into a **Task to get the winner, or into an *int to get the winner's index. Event
// waits among the losers are withdrawn, so they consume no event unless awaited again.
func (c *OrchestrationContext) WhenAny(tasks ...*Task) *Task {
	e := c.e
	anyTask := &Task{e: e, kind: kindAny, children: tasks}
	win := func(t *Task) {
		if anyTask.done {
			return
		}
		anyTask.winner = t
		for _, loser := range tasks {
			if loser != t {
				e.detach(loser)
			}
		}
		anyTask.complete(nil, nil)
	}
	for _, t := range tasks {
		if t.done {
			win(t)
			return anyTask
		}
	}
	if len(tasks) == 0 {
		anyTask.complete(nil, nil)
	}
	for _, t := range tasks {
		t.onDone = append(t.onDone, func() { win(t) })
	}
	return anyTask
}

// WhenAll returns a task that completes when all tasks have completed. Its error is the first
// error among tasks, in argument order.
func (c *OrchestrationContext) WhenAll(tasks ...*Task) *Task {
	allTask := &Task{e: c.e, kind: kindAll, children: tasks}
	check := func() {
		if allTask.done {
			return
		}
		for _, t := range tasks {
			if !t.done {
				return
			}
		}
		for _, t := range tasks {
			if t.err != nil {
				allTask.complete(nil, t.err)
				return
			}
		}
		allTask.complete(nil, nil)
	}
	for _, t := range tasks {
		t.onDone = append(t.onDone, check)
	}
	check()
	return allTask
}

type taskKind int

const (
	kindActivity taskKind = iota + 1
	kindTimer
	kindSubOrchestration
	kindEvent
	kindAny
	kindAll
	kindRetry
	kindSend // SendEvent: done when scheduled, recorded as EventSent
)

func (k taskKind) String() string {
	switch k {
	case kindActivity, kindRetry:
		return "activity"
	case kindTimer:
		return "timer"
	case kindSubOrchestration:
		return "sub-orchestration"
	case kindEvent:
		return "event"
	case kindAny:
		return "WhenAny"
	case kindAll:
		return "WhenAll"
	case kindSend:
		return "sent event"
	}
	return "task"
}

// Task is the pending result of an activity, timer, event wait, sub-orchestration, WhenAny or
// WhenAll.
type Task struct {
	e      *Executor
	kind   taskKind
	id     int // scheduled tasks only
	name   string
	done   bool
	result json.RawMessage
	err    error
	onDone []func()

	input    json.RawMessage           // scheduled tasks
	timeouts *history.ActivityTimeouts // activities
	details  json.RawMessage           // activities: the previous attempt's heartbeat details
	fireAt   time.Time                 // timers
	childID  string                    // sub-orchestrations
	attached bool                      // event waits: in the waiter queue
	children []*Task                   // WhenAny, WhenAll
	winner   *Task                     // WhenAny
}

// IsDone reports whether the task has completed.
func (t *Task) IsDone() bool { return t.done }

// Await blocks the orchestrator until the task completes, then decodes its JSON result into v
// (v may be nil). It returns the task's error: a *TaskFailedError, an ErrTimeout, or a
// *DecodeError when the result does not fit v.
//
// While it waits, the orchestrator's goroutine is parked; if the worker discards the executor
// (eviction, termination), Await ends the goroutine with runtime.Goexit, running deferred calls.
func (t *Task) Await(v any) error {
	e := t.e
	if !t.done {
		e.reattach(t)
	}
	for !t.done {
		e.awaiting = t
		e.observed = e.observed[:0]
		e.yield <- struct{}{}
		if !<-e.resume {
			runtime.Goexit()
		}
	}
	e.awaiting = nil
	if t.err != nil {
		e.observe(t.err)
		return t.err
	}
	switch p := v.(type) {
	case nil:
		return nil
	case **Task:
		if t.kind == kindAny {
			*p = t.winner
			return nil
		}
	case *int:
		if t.kind == kindAny {
			*p = -1
			for i, c := range t.children {
				if c == t.winner {
					*p = i
				}
			}
			return nil
		}
	}
	if len(t.result) == 0 {
		return nil
	}
	if err := decodeJSON(t.result, v); err != nil {
		return &DecodeError{What: t.describe(), Err: err}
	}
	return nil
}

func (t *Task) describe() string {
	switch t.kind {
	case kindEvent:
		return fmt.Sprintf("event %q", t.name)
	case kindActivity, kindRetry:
		return fmt.Sprintf("result of activity %q", t.name)
	case kindSubOrchestration:
		return fmt.Sprintf("output of sub-orchestration %q", t.name)
	}
	return t.kind.String() + " result"
}

func (t *Task) complete(result json.RawMessage, err error) {
	if t.done {
		return
	}
	t.done, t.result, t.err = true, result, err
	callbacks := t.onDone
	t.onDone = nil
	for _, f := range callbacks {
		f()
	}
}

// ErrInvalidName is returned by Await on a task whose activity name, sub-orchestrator name or
// instance ID cannot be used (see history.CheckName).
var ErrInvalidName = history.ErrInvalidName

func marshalInput(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}
