// Package engine runs orchestrations on a backend: the Worker executes turns and activities, the
// Client starts instances, raises events and queries them.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// The errors of backend, re-exported for callers of the engine.
var (
	ErrInstanceNotFound = backend.ErrInstanceNotFound
	ErrInstanceExists   = backend.ErrInstanceExists
	ErrInstanceEnded    = backend.ErrInstanceEnded
	ErrInstanceNotEnded = backend.ErrInstanceNotEnded
	// ErrInstanceNotFailed: Rewind of an instance that is pending, running or suspended.
	ErrInstanceNotFailed = backend.ErrInstanceNotFailed
	ErrInvalidName       = backend.ErrInvalidName
	ErrPayloadTooLarge   = backend.ErrPayloadTooLarge
	ErrBadPayload        = backend.ErrBadPayload
	// ErrBadContinuationToken: a Query.ContinuationToken that ListInstances did not return.
	ErrBadContinuationToken = backend.ErrBadContinuationToken
	// ErrInvalidVersion: an orchestrator version that cannot be used (WithVersion).
	ErrInvalidVersion = durable.ErrInvalidVersion
)

// Query selects instances for ListInstances and PurgeInstances; see backend.Query.
type Query = backend.Query

// Client starts and manages instances. It is safe for concurrent use.
type Client struct {
	b backend.ClientBackend
	// names, if set, refuses orchestrators no live worker serves (registry.go).
	names *nameCache
	// tracing traces the client's calls; nil: off.
	tracing *tracing.Tracing
}

// NewClient returns a client over b.
func NewClient(b backend.ClientBackend, opts ...ClientOption) *Client {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	t := tracing.New(o.tracerProvider, o.propagator)
	if t != nil {
		b = tracedClientBackend{ClientBackend: b, t: t}
	}
	c := &Client{b: b, tracing: t}
	if o.knownOnly {
		c.names = &nameCache{b: b}
	}
	return c
}

// StartOption configures ScheduleNew.
type StartOption func(*backend.StartRequest) error

// WithInstanceID sets the new instance's ID (default: a random UUID).
func WithInstanceID(id string) StartOption {
	return func(r *backend.StartRequest) error { r.InstanceID = id; return nil }
}

// WithInput sets the input, encoded as JSON (a json.RawMessage is used as it is, once checked).
func WithInput(v any) StartOption {
	return func(r *backend.StartRequest) error {
		raw, err := encodePayload(v)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		r.Input = raw
		return nil
	}
}

func encodePayload(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, ErrBadPayload
		}
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return raw, nil
}

// ScheduleNew starts orchestrator name as a new instance and returns its ID. It returns
// ErrInstanceExists if an instance with the ID is pending, running or suspended; one that ended is
// replaced. A client made WithKnownOrchestratorsOnly returns ErrUnknownOrchestrator if no live
// worker serves name.
func (c *Client) ScheduleNew(ctx context.Context, name string, opts ...StartOption) (_ string, err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanStart, "")
	defer func() { tracing.End(span, err) }()
	req, err := newStartRequest(name, opts)
	if err != nil {
		return "", err
	}
	if err := c.checkName(ctx, name); err != nil {
		return "", err
	}
	if err := c.b.CreateInstance(ctx, req); err != nil {
		return "", err
	}
	return req.InstanceID, nil
}

// RaiseOption configures RaiseEvent.
type RaiseOption func(*backend.Message)

// WithEventID deduplicates the event: an instance applies one event ID once.
func WithEventID(id string) RaiseOption {
	return func(m *backend.Message) { m.MsgID = id }
}

// HeaderEventID is the header that carries a raised event's ID (backend.HeaderEventID).
const HeaderEventID = backend.HeaderEventID

// EventID returns the event ID carried by a message's headers, read with get: header
// Jetflow-Event-Id if set, else Nats-Msg-Id, else "" (backend.EventID, the one rule for every
// path that raises events).
func EventID(get func(key string) string) string { return backend.EventID(get) }

// RaiseEvent sends event name with data (encoded as JSON) to an instance. It returns
// ErrInstanceNotFound or ErrInstanceEnded when the instance cannot take it.
func (c *Client) RaiseEvent(ctx context.Context, id, name string, data any, opts ...RaiseOption) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanRaiseEvent, id)
	defer func() { tracing.End(span, err) }()
	if err := history.CheckName("event name", name); err != nil {
		return err
	}
	raw, err := encodePayload(data)
	if err != nil {
		return fmt.Errorf("raising %q on %q: %w", name, id, err)
	}
	// The state is read before the event is sent: read after, it could show the event's own
	// effect (an instance the event completed would be reported as ended).
	if _, err := c.alive(ctx, id); err != nil {
		return err
	}
	msg := backend.Message{InstanceID: id, Kind: backend.KindEvent, EventName: name, Data: raw}
	for _, opt := range opts {
		opt(&msg)
	}
	return c.b.Send(ctx, msg)
}

// alive returns the instance's state, or an error if it does not exist or has ended.
func (c *Client) alive(ctx context.Context, id string) (*backend.Instance, error) {
	s, err := c.b.GetInstance(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.Status.IsTerminal() {
		return nil, fmt.Errorf("%q: %w (status %s)", id, ErrInstanceEnded, s.Status)
	}
	return s, nil
}

// GetStatus returns an instance's state, or ErrInstanceNotFound.
func (c *Client) GetStatus(ctx context.Context, id string) (*Status, error) {
	s, err := c.b.GetInstance(ctx, id)
	if err != nil {
		return nil, err
	}
	return statusOf(s), nil
}

// GetHistory returns the history of an instance's current generation.
func (c *Client) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	return c.b.GetHistory(ctx, id)
}

// WaitForCompletion blocks until the instance has completed, failed or been terminated, or ctx
// ends, and returns its final state.
func (c *Client) WaitForCompletion(ctx context.Context, id string) (*Status, error) {
	return c.WaitFor(ctx, id, func(s *Status) bool { return s.Status.IsTerminal() })
}

// WaitFor blocks until the instance's state satisfies done, or ctx ends.
func (c *Client) WaitFor(ctx context.Context, id string, done func(*Status) bool) (*Status, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates, err := c.b.WatchInstance(wctx, id)
	if err != nil {
		return nil, err
	}
	var last *Status
	for inst := range updates {
		s := statusOf(inst)
		last = s
		if done(s) {
			return s, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return last, fmt.Errorf("waiting for %q: %w", id, err)
	}
	return last, fmt.Errorf("waiting for %q: watch ended", id)
}

// TerminateOption configures Terminate.
type TerminateOption func(*backend.TerminateRequest)

// WithRecursiveTerminate says whether Terminate also terminates the instance's running
// sub-orchestrations, and theirs (default true).
func WithRecursiveTerminate(recursive bool) TerminateOption {
	return func(r *backend.TerminateRequest) { r.Recursive = &recursive }
}

// Terminate ends an instance with status Terminated; its output is reason. Its running
// sub-orchestrations are terminated too, recursively, unless WithRecursiveTerminate(false) is
// given; its pending timers are cancelled. It returns ErrInstanceNotFound or ErrInstanceEnded.
func (c *Client) Terminate(ctx context.Context, id, reason string, opts ...TerminateOption) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanTerminate, id)
	defer func() { tracing.End(span, err) }()
	req := backend.TerminateRequest{Reason: reason}
	for _, opt := range opts {
		opt(&req)
	}
	return c.send(ctx, id, backend.KindTerminate, req)
}

// Suspend pauses an instance: events and results are kept until Resume.
func (c *Client) Suspend(ctx context.Context, id, reason string) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanSuspend, id)
	defer func() { tracing.End(span, err) }()
	return c.control(ctx, id, backend.KindSuspend, reason)
}

// Resume continues a suspended instance.
func (c *Client) Resume(ctx context.Context, id, reason string) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanResume, id)
	defer func() { tracing.End(span, err) }()
	return c.control(ctx, id, backend.KindResume, reason)
}

func (c *Client) control(ctx context.Context, id string, kind backend.MessageKind, reason string) error {
	return c.send(ctx, id, kind, backend.TerminateRequest{Reason: reason})
}

// send sends a terminate, suspend or resume request to an instance that has not ended.
func (c *Client) send(ctx context.Context, id string, kind backend.MessageKind, req backend.TerminateRequest) error {
	if _, err := c.alive(ctx, id); err != nil {
		return err
	}
	data, _ := json.Marshal(req)
	return c.b.Send(ctx, backend.Message{InstanceID: id, Kind: kind, Data: data})
}

// Purge deletes an ended instance's state and history, and those of its sub-orchestrations,
// recursively (see PurgeInstance). It returns ErrInstanceNotFound or ErrInstanceNotEnded.
func (c *Client) Purge(ctx context.Context, id string, opts ...PurgeOption) (err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanPurge, id)
	defer func() { tracing.End(span, err) }()
	_, err = c.PurgeInstance(ctx, id, opts...)
	return err
}

// ListInstances returns a page of the instances matching q, ordered by instance ID. Pass the
// page's ContinuationToken in the next query to get the next page; it is empty after the last.
// A page may hold fewer than q.Top instances even when there are more. It returns
// ErrBadContinuationToken for a token it did not issue. On JetStream every page lists all the
// instance keys (see natsjs.Backend.ListInstances for the cost).
func (c *Client) ListInstances(ctx context.Context, q Query) (Page, error) {
	p, err := c.b.ListInstances(ctx, q)
	if err != nil {
		return Page{}, err
	}
	page := Page{Instances: make([]*Status, len(p.Instances)), ContinuationToken: p.ContinuationToken}
	for i, s := range p.Instances {
		page.Instances[i] = statusOf(s)
	}
	return page, nil
}

// PurgeInstances purges every ended instance matching q (q.Top and q.ContinuationToken are
// ignored: it goes through all the pages) and returns how many it purged. It does not recurse:
// a sub-orchestration is purged if it matches q itself. Instances that have
// not ended are skipped, as are instances purged or restarted meanwhile. On an error it returns
// the number purged so far with the error.
func (c *Client) PurgeInstances(ctx context.Context, q Query) (int, error) {
	q.Top, q.ContinuationToken = backend.MaxTop, ""
	n := 0
	for {
		page, err := c.b.ListInstances(ctx, q)
		if err != nil {
			return n, err
		}
		for _, s := range page.Instances {
			if !s.Status.IsTerminal() {
				continue
			}
			err := c.Purge(ctx, s.ID, WithRecursivePurge(false))
			switch {
			case err == nil:
				n++
			case errors.Is(err, ErrInstanceNotFound), errors.Is(err, ErrInstanceNotEnded):
			default:
				return n, err
			}
		}
		if page.ContinuationToken == "" {
			return n, nil
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

// Restart schedules instance id's orchestrator again with the instance's input (that of its
// current generation) and returns the ID of the new instance. With newInstanceID the new
// instance gets a random ID and the old one is left as it is; otherwise it reuses id, which
// replaces the instance if it has ended and returns ErrInstanceExists if it is pending, running
// or suspended. The restarted instance has no parent. It returns ErrInstanceNotFound for an
// unknown id.
func (c *Client) Restart(ctx context.Context, id string, newInstanceID bool) (_ string, err error) {
	ctx, span := c.startSpan(ctx, tracing.SpanRestart, id)
	defer func() { tracing.End(span, err) }()
	s, err := c.b.GetInstance(ctx, id)
	if err != nil {
		return "", err
	}
	var opts []StartOption
	if len(s.Input) > 0 {
		opts = append(opts, WithInput(s.Input))
	}
	if !newInstanceID {
		opts = append(opts, WithInstanceID(id))
	}
	newID, err := c.ScheduleNew(ctx, s.Name, opts...)
	if err != nil {
		return "", fmt.Errorf("restarting %q: %w", id, err)
	}
	return newID, nil
}

// WithVersion starts the instance on version v of the orchestrator (durable.WithVersion). By
// default the worker that takes the start chooses the newest version it has of the name.
func WithVersion(v string) StartOption {
	return func(r *backend.StartRequest) error {
		if err := durable.ValidateVersion(v); err != nil {
			return err
		}
		r.Version = v
		return nil
	}
}

// WithStartTime schedules the start at t: the instance is Pending, with its scheduled start
// time in its status, until then. A time that has passed starts the instance at once. Events
// raised to the instance before it starts are discarded, as for any instance that does not run.
func WithStartTime(t time.Time) StartOption {
	return func(r *backend.StartRequest) error {
		if t.After(time.Now()) {
			r.StartAt = t.UTC()
		}
		return nil
	}
}
