package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// runActivity runs one activity task and sends its result to the instance.
func (w *Worker) runActivity(ctx context.Context, task backend.ActivityTask) error {
	w.stats.activities.Add(1)
	result := backend.TaskResult{Generation: task.Generation, TaskID: task.TaskID}
	fn, ok := w.reg.Activity(task.Name)
	if !ok {
		result.Failure = &history.Failure{Type: "NotRegistered", Message: fmt.Sprintf("activity %q is not registered", task.Name)}
	} else {
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
	}
	data, _ := json.Marshal(result)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: let another worker run it
	}
	return w.b.Send(ctx, backend.Message{
		InstanceID: task.InstanceID, Kind: backend.KindResult, Data: data,
		MsgID: fmt.Sprintf("result:%s:%d:%d", task.InstanceID, task.Generation, task.TaskID) + rewindSuffix(task.Rewind),
	})
}

func callActivity(ctx context.Context, fn durable.ActivityFunc, input json.RawMessage) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("activity panicked: %v", r)
		}
	}()
	return fn(ctx, input)
}
