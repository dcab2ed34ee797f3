package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

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
	log := w.log.With().Str(fieldInstance, task.InstanceID).Str("activity", task.Name).Logger()
	began := time.Now()
	result := w.activityResult(ctx, task)
	w.recordActivity(task.Name, result, time.Since(began))
	if ctx.Err() != nil {
		// Stopped and past the drain grace period: another worker runs it.
		if err := w.b.AbandonActivityWorkItem(context.WithoutCancel(ctx), item, 0); err != nil {
			log.Warn().Err(err).Msg("handing back an activity")
		}
		return
	}
	if err := w.b.CompleteActivityWorkItem(ctx, item, result); err != nil {
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

// activityResult runs the task's activity and returns its outcome.
func (w *Worker) activityResult(ctx context.Context, task backend.ActivityTask) backend.TaskResult {
	var result backend.TaskResult
	fn, ok := w.reg.Activity(task.Name)
	if !ok {
		result.Failure = &history.Failure{Type: "NotRegistered", Message: fmt.Sprintf("activity %q is not registered", task.Name)}
		return result
	}
	actx := durable.WithActivityInfo(ctx, durable.ActivityInfo{InstanceID: task.InstanceID, Name: task.Name, TaskID: task.TaskID, Generation: task.Generation})
	out, err := callActivity(actx, fn, task.Input)
	if err == nil {
		result.Result, err = json.Marshal(out)
		if err == nil && len(result.Result) > w.opts.maxPayload {
			err = fmt.Errorf("result of %d bytes: %w (limit %d)", len(result.Result), ErrPayloadTooLarge, w.opts.maxPayload)
		}
	}
	if err != nil {
		result.Result = nil
		result.Failure = &history.Failure{Type: durable.FailureType(err), Message: err.Error()}
	}
	return result
}

func callActivity(ctx context.Context, fn durable.ActivityFunc, input json.RawMessage) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("activity panicked: %v", r)
		}
	}()
	return fn(ctx, input)
}
