package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// Event is an external event for StartWithEvent.
type Event struct {
	Name string
	// Data is encoded as JSON (a json.RawMessage is used as it is, once checked); nil is null.
	Data any
	// ID, if not empty, deduplicates the event as WithEventID does.
	ID string
}

// StartWithEvent is Temporal's signal-with-start: it starts orchestrator name as a new instance
// unless the instance (WithInstanceID; without it a random ID, so always a new instance) is
// pending, running or suspended, and delivers ev to it either way. It returns the instance ID,
// and, when the instance existed (its event goes to it all the same), an error wrapping
// ErrInstanceExists: of concurrent calls for one ID, exactly one returns no error.
//
// It is atomic: the event travels in the start message itself. The worker that applies the
// message either starts a new generation with the event right after its ExecutionStarted, or,
// when a generation is running, ignores the start and raises the event on that generation in a
// turn of its own. The event is never lost to a generation that ends in between, never applied
// to an older one, and never discarded as addressed to an instance that does not exist yet.
// Whether a new generation started is decided by the worker; read the status or history to know.
// Racing another start of the same ID, the start recorded first (the caller told nil) is the one
// whose generation runs, with this start's event raised on it, whichever message a worker
// reaches first.
//
// The input and the event data together must fit in the backend's payload limit.
func (c *Client) StartWithEvent(ctx context.Context, name string, ev Event, opts ...StartOption) (_ string, err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanStartWithEvent, "")
	defer func() { tracing.End(span, err) }()
	req, err := newStartRequest(name, opts)
	if err != nil {
		return "", err
	}
	if err := history.CheckName("event name", ev.Name); err != nil {
		return "", fmt.Errorf("starting %s with an event: %w", name, err)
	}
	data, err := encodePayload(ev.Data)
	if err != nil {
		return "", fmt.Errorf("starting %s with event %q: data: %w", name, ev.Name, err)
	}
	req.Event = &backend.StartEvent{Name: ev.Name, Data: data, ID: ev.ID}
	if err := c.checkName(ctx, name); err != nil {
		return "", err
	}
	if err := c.b.CreateInstance(ctx, req); err != nil {
		if errors.Is(err, ErrInstanceExists) {
			// The start message is stored: the worker raises its event on the generation
			// that exists.
			return req.InstanceID, fmt.Errorf("starting %s with event %q: its event goes to the instance that exists: %w", name, ev.Name, err)
		}
		return "", err
	}
	return req.InstanceID, nil
}

// newStartRequest builds the request of ScheduleNew and StartWithEvent.
func newStartRequest(name string, opts []StartOption) (backend.StartRequest, error) {
	if name == "" {
		return backend.StartRequest{}, fmt.Errorf("scheduling: orchestrator name: %w", ErrInvalidName)
	}
	req := backend.StartRequest{Name: name, StartID: uuid.NewString(), Time: time.Now().UTC()}
	for _, opt := range opts {
		if err := opt(&req); err != nil {
			return req, fmt.Errorf("scheduling %s: %w", name, err)
		}
	}
	if req.InstanceID == "" {
		req.InstanceID = uuid.NewString()
	}
	return req, nil
}

// validStartEvent reports whether a start message's event, if any, can be raised.
func validStartEvent(ev *backend.StartEvent) bool {
	return ev == nil || (history.CheckName("event name", ev.Name) == nil && (len(ev.Data) == 0 || json.Valid(ev.Data)))
}

// startEvent is the EventRaised of a start message's event.
func startEvent(now time.Time, ev *backend.StartEvent) history.Event {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return history.NewEventRaised(now, ev.Name, data, ev.ID)
}

// addStartEvent takes a start-with-event message for an instance with a running generation: the
// start is ignored and the event raised on that generation. The message begins its turn (see
// add), so the generation cannot end in this turn before the event.
func (b *turnBuilder) addStartEvent(m backend.WorkMessage, req *backend.StartRequest) bool {
	b.w.log.Debug().Str(fieldInstance, b.id).Str("start_id", req.StartID).Str(fieldEvent, req.Event.Name).
		Msg("start-with-event for an instance that is running: start ignored, event raised")
	b.events = append(b.events, startEvent(b.now, req.Event))
	b.applied++
	b.bytes += len(m.Data)
	return true
}
