package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotInActivity is returned by Heartbeat and LastHeartbeatDetails when ctx is not the context
// of a running activity.
var ErrNotInActivity = errors.New("not called from a running activity")

// HeartbeatFunc records a heartbeat of a running activity with its details (JSON, nil for none).
// The worker that runs the activity provides it (WithHeartbeatFunc).
type HeartbeatFunc func(details json.RawMessage)

type heartbeatKey struct{}

// WithHeartbeatFunc returns a context whose activity heartbeats go to fn; the worker calls it
// before running an activity.
func WithHeartbeatFunc(ctx context.Context, fn HeartbeatFunc) context.Context {
	return context.WithValue(ctx, heartbeatKey{}, fn)
}

// Heartbeat tells the worker that the activity running with ctx is alive, with details (encoded
// as JSON; nil for none) from which a later attempt may resume (LastHeartbeatDetails). It
// resets the attempt's heartbeat timeout (WithHeartbeatTimeout) and keeps its task from being
// delivered again. Call it from a long activity every so often; it is cheap (the worker
// throttles what it sends). It returns ErrNotInActivity outside an activity and an error if
// details do not encode.
func Heartbeat(ctx context.Context, details any) error {
	fn, ok := ctx.Value(heartbeatKey{}).(HeartbeatFunc)
	if !ok {
		return ErrNotInActivity
	}
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return fmt.Errorf("encoding heartbeat details: %w", err)
		}
		raw = b
	}
	fn(raw)
	return nil
}

// LastHeartbeatDetails decodes into v the details of the last heartbeat of the activity's
// previous attempt (a retry after a timeout or a failure), and reports whether there were any.
// It returns ErrNotInActivity outside an activity and a *DecodeError if the details do not fit v.
func LastHeartbeatDetails(ctx context.Context, v any) (bool, error) {
	info, ok := ActivityInfoFrom(ctx)
	if !ok {
		return false, ErrNotInActivity
	}
	if len(info.HeartbeatDetails) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(info.HeartbeatDetails, v); err != nil {
		return false, &DecodeError{What: "heartbeat details", Err: err}
	}
	return true, nil
}
