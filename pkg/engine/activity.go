package engine

// Activities: each task is run as one attempt, bounded by its deadline (StartToClose from when
// the attempt starts, ScheduleToClose for the whole call) and its heartbeat timeout. The attempt's
// context is cancelled when a bound passes or its instance ends; the attempt is then answered at
// once, without waiting for a function that ignores its context.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// extendEvery is the least time between two extensions of a task that a stream of heartbeats
// asks for: heartbeats are cheap however often an activity sends them.
const extendEvery = time.Second

// activityLoop runs one activity after another until the backend stops delivering (ctx ends).
// The activities run in running, which outlives ctx by the drain grace period.
func (w *Worker) activityLoop(ctx, running context.Context, names []string) error {
	for {
		item, err := w.b.NextActivityWorkItem(ctx, names)
		if err != nil {
			return fmt.Errorf("next activity work item: %w", err)
		}
		w.runActivity(running, item)
	}
}

// runActivity runs one activity task and completes its work item with the result.
func (w *Worker) runActivity(ctx context.Context, item *backend.ActivityWorkItem) {
	ctx, span := w.startActivitySpan(ctx, item.Task) // tracing.go
	defer span.End()
	w.stats.activities.Add(1)
	task := item.Task
	log := w.log.With().Str(fieldInstance, task.InstanceID).Str("activity", task.Name).Int("task_id", task.TaskID).Logger()
	began := time.Now()
	result, stop := w.activityResult(ctx, item, began)
	w.recordActivity(task.Name, result, time.Since(began))
	switch {
	case errors.Is(stop, errInstanceEnded):
		w.stats.activitiesCanceled.Add(1)
		log.Info().Msg("activity cancelled: its instance has ended; its result is discarded")
	case stop != nil:
		w.stats.activitiesTimedOut.Add(1)
		log.Warn().Err(stop).Msg("activity attempt timed out")
	case ctx.Err() != nil:
		// Stopped and past the drain grace period: another worker runs it.
		if err := w.b.AbandonActivityWorkItem(context.WithoutCancel(ctx), item, 0); err != nil {
			log.Warn().Err(err).Msg("handing back an activity")
		}
		return
	}
	if err := w.b.CompleteActivityWorkItem(context.WithoutCancel(ctx), item, result); err != nil {
		log.Warn().Err(err).Msg("activity result not delivered; the task runs again")
		if err := w.b.AbandonActivityWorkItem(context.WithoutCancel(ctx), item, time.Second); err != nil {
			log.Warn().Err(err).Msg("handing back an activity")
		}
	}
}

// recordActivity records an execution of activity name in the metrics; a name that is not
// registered is recorded as "unregistered", so that the label stays bounded.
func (w *Worker) recordActivity(name string, result backend.TaskResult, d time.Duration) {
	if w.opts.metrics == nil {
		return
	}
	if _, ok := w.reg.Activity(name); !ok {
		name = "unregistered"
	}
	outcome := metrics.OutcomeOK
	if result.Failure != nil {
		outcome = metrics.OutcomeFailed
	}
	w.opts.metrics.ActivityExecuted(name, outcome, d)
}

// activityResult runs the task's activity as one attempt begun at began and returns its outcome,
// and, if the attempt was stopped (a timeout, or its instance ended), why.
func (w *Worker) activityResult(ctx context.Context, item *backend.ActivityWorkItem, began time.Time) (backend.TaskResult, error) {
	task := item.Task
	var result backend.TaskResult
	fn, ok := w.reg.Activity(task.Name)
	if !ok {
		result.Failure = &history.Failure{Type: "NotRegistered", Message: fmt.Sprintf("activity %q is not registered", task.Name)}
		return result, nil
	}
	if task.Attempt > w.opts.poisonAfter {
		// Taken that many times and never answered: it likely stops the workers that run it.
		result.Failure = &history.Failure{Type: FailurePoisonMessage, Details: task.HeartbeatDetails,
			Message: fmt.Sprintf("activity %q was delivered %d times without an answer; not run again", task.Name, task.Attempt)}
		return result, nil
	}
	if d := task.ScheduleToCloseDeadline; !d.IsZero() && !began.Before(d) {
		stop := &timeoutError{failureType: history.FailureScheduleToCloseTimeout, message: fmt.Sprintf("taken at %s, past its ScheduleToClose deadline %s", began.UTC().Format(time.RFC3339Nano), d.UTC().Format(time.RFC3339Nano))}
		return backend.TimeoutResult(task, stop.failureType, stop.message, task.HeartbeatDetails), stop
	}
	a := w.newAttempt(ctx, item, began)
	defer a.end()
	out, err := a.run(fn, task.Input)
	stop := a.stopped()
	if err == nil {
		result.Result, err = json.Marshal(out)
		if err == nil && len(result.Result) > w.opts.maxPayload {
			err = fmt.Errorf("result of %d bytes: %w (limit %d)", len(result.Result), ErrPayloadTooLarge, w.opts.maxPayload)
		}
	}
	switch {
	case err != nil && stop != nil && errors.Is(stop, errInstanceEnded):
		result.Result = nil
		result.Failure = &history.Failure{Type: history.FailureActivityCanceled, Message: stop.Error(), Details: a.lastDetails()}
	case err != nil && stop != nil:
		var to *timeoutError
		errors.As(stop, &to)
		return backend.TimeoutResult(task, to.failureType, to.message, a.lastDetails()), stop
	case err != nil:
		result.Result = nil
		result.Failure = &history.Failure{Type: durable.FailureType(err), Message: err.Error(), Details: a.lastDetails()}
	case !errors.Is(stop, errInstanceEnded):
		stop = nil // it returned its result as a bound passed: the result stands
	}
	return result, stop
}

// errInstanceEnded stops the activities of an instance that has ended (CancelActivities).
var errInstanceEnded = errors.New("the activity's instance has ended")

// timeoutError is why an attempt was stopped by one of its bounds.
type timeoutError struct {
	failureType string // history.Failure*Timeout
	message     string
}

func (e *timeoutError) Error() string { return e.failureType + ": " + e.message }

// attempt is one run of an activity task: its context, deadline and heartbeats.
type attempt struct {
	w        *Worker
	item     *backend.ActivityWorkItem
	deadline time.Time
	ctx      context.Context // the activity's
	cancel   context.CancelCauseFunc
	stopTime context.CancelFunc // releases the deadline's timer
	beat     chan struct{}      // a heartbeat came (for the watch)
	done     chan struct{}      // closed by end

	mu         sync.Mutex
	details    json.RawMessage // the last heartbeat's details
	lastExtend time.Time
}

// newAttempt prepares the attempt of item begun at began, in ctx (the worker's running context).
func (w *Worker) newAttempt(ctx context.Context, item *backend.ActivityWorkItem, began time.Time) *attempt {
	task := item.Task
	startToClose := task.StartToClose()
	if startToClose <= 0 {
		startToClose = w.opts.startToClose
	}
	deadline := began.Add(startToClose)
	bound := &timeoutError{history.FailureStartToCloseTimeout, fmt.Sprintf("attempt %d of activity %q ran longer than its StartToClose timeout of %s", task.Attempt, task.Name, startToClose)}
	if d := task.ScheduleToCloseDeadline; !d.IsZero() && d.Before(deadline) {
		deadline = d
		bound = &timeoutError{history.FailureScheduleToCloseTimeout, fmt.Sprintf("activity %q did not complete by its ScheduleToClose deadline %s", task.Name, d.UTC().Format(time.RFC3339Nano))}
	}
	a := &attempt{w: w, item: item, deadline: deadline, beat: make(chan struct{}, 1), done: make(chan struct{}), lastExtend: began, details: task.HeartbeatDetails}
	timed, stopTime := context.WithDeadlineCause(ctx, deadline, bound)
	actx, cancel := context.WithCancelCause(timed)
	actx = durable.WithActivityInfo(actx, durable.ActivityInfo{
		InstanceID: task.InstanceID, Name: task.Name, TaskID: task.TaskID, Generation: task.Generation,
		Attempt: task.Attempt, Deadline: deadline, HeartbeatDetails: task.HeartbeatDetails,
	})
	a.ctx, a.cancel, a.stopTime = durable.WithHeartbeatFunc(actx, a.heartbeat), cancel, stopTime
	if err := w.b.ExtendActivityWorkItem(ctx, item, deadline); err != nil {
		w.log.Warn().Err(err).Str(fieldInstance, task.InstanceID).Msg("extending an activity task")
	}
	go a.watch()
	return a
}

// run calls fn and returns its outcome, or the cause that stopped the attempt as soon as it is
// stopped: a function that ignores its context is left to finish on its own, its result unused.
func (a *attempt) run(fn durable.ActivityFunc, input json.RawMessage) (any, error) {
	type outcome struct {
		out any
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		out, err := callActivity(a.ctx, fn, input)
		res <- outcome{out, err}
	}()
	select {
	case r := <-res:
		if r.err != nil && a.stopped() != nil {
			return nil, a.stopped() // most likely the context's error: report why
		}
		return r.out, r.err
	case <-a.ctx.Done():
		return nil, context.Cause(a.ctx)
	}
}

// stopped returns why the attempt was stopped by a bound or a cancel, nil if it was not (or only
// by the worker stopping).
func (a *attempt) stopped() error {
	cause := context.Cause(a.ctx)
	var to *timeoutError
	if errors.As(cause, &to) || errors.Is(cause, errInstanceEnded) {
		return cause
	}
	return nil
}

// watch cancels the attempt when its heartbeat timeout passes or its instance ends.
func (a *attempt) watch() {
	timeout := a.item.Task.HeartbeatTimeout()
	var silence <-chan time.Time
	var timer *time.Timer
	if timeout > 0 {
		timer = time.NewTimer(timeout)
		defer timer.Stop()
		silence = timer.C
	}
	for {
		select {
		case <-a.beat:
			if timer != nil {
				timer.Reset(timeout)
			}
			continue
		case <-silence:
			a.cancel(&timeoutError{history.FailureHeartbeatTimeout, fmt.Sprintf("activity %q sent no heartbeat for %s", a.item.Task.Name, timeout)})
		case <-a.item.Canceled:
			a.cancel(errInstanceEnded)
		case <-a.ctx.Done():
		case <-a.done:
		}
		return
	}
}

// heartbeat records a heartbeat of the activity (durable.Heartbeat).
func (a *attempt) heartbeat(details json.RawMessage) {
	now := time.Now()
	a.mu.Lock()
	if details != nil {
		a.details = details
	}
	extend := now.Sub(a.lastExtend) >= extendEvery
	if extend {
		a.lastExtend = now
	}
	a.mu.Unlock()
	select {
	case a.beat <- struct{}{}:
	default:
	}
	if extend && a.ctx.Err() == nil {
		if err := a.w.b.ExtendActivityWorkItem(a.ctx, a.item, a.deadline); err != nil {
			a.w.log.Debug().Err(err).Str(fieldInstance, a.item.Task.InstanceID).Msg("extending an activity task on a heartbeat")
		}
	}
}

func (a *attempt) lastDetails() json.RawMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.details
}

// end releases the attempt's watch and timers.
func (a *attempt) end() {
	close(a.done)
	a.cancel(context.Canceled)
	a.stopTime()
}

func callActivity(ctx context.Context, fn durable.ActivityFunc, input json.RawMessage) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("activity panicked: %v", r)
		}
	}()
	return fn(ctx, input)
}

// cancelActivities is the hook a turn calls when it ends instance id, of generation gen (with
// status), while activities of it are outstanding: their workers cancel them, and their
// results are discarded.
func (w *Worker) cancelActivities(ctx context.Context, id string, gen uint64, status history.RuntimeStatus) {
	c := backend.ActivityCancel{InstanceID: id, Generation: gen, Reason: "instance " + string(status)}
	if err := w.b.CancelActivities(ctx, c); err != nil {
		w.log.Warn().Err(err).Str(fieldInstance, id).Msg("cancelling the activities of an ended instance; their results will be discarded")
	}
}
