package engine

// Traces (package tracing): the options that turn them on, the spans of turns and activities,
// and the seam where a span becomes the trace context of what is sent. The client's and the
// worker's backends are wrapped (only when tracing is on) so that every start, message, task and
// result sent within a span carries that span's context as plain data (backend.TraceContext);
// the backend maps it to headers.

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// WithTracerProvider makes the worker trace its turns and activity executions with tp (default:
// none). See package tracing for the spans and how they link up.
func WithTracerProvider(tp trace.TracerProvider) WorkerOption {
	return func(o *workerOptions) error { o.tracerProvider = tp; return nil }
}

// WithPropagator sets how the worker reads and writes trace context in messages (default: W3C
// Trace Context, propagation.TraceContext). Messages carry only the traceparent and tracestate
// headers.
func WithPropagator(p propagation.TextMapPropagator) WorkerOption {
	return func(o *workerOptions) error { o.propagator = p; return nil }
}

// ClientOption configures NewClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	knownOnly      bool // WithKnownOrchestratorsOnly
}

// WithClientTracerProvider makes the client trace its calls with tp (default: none): each call
// that sends a message is a span, and the message carries it, so the turn that applies the
// message continues the caller's trace.
func WithClientTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(o *clientOptions) { o.tracerProvider = tp }
}

// WithClientPropagator sets how the client writes trace context into messages (default: W3C
// Trace Context).
func WithClientPropagator(p propagation.TextMapPropagator) ClientOption {
	return func(o *clientOptions) { o.propagator = p }
}

// startSpan starts the span of a client call on instance id ("" if not known yet).
func (c *Client) startSpan(ctx context.Context, name, id string) (context.Context, trace.Span) {
	if c.tracing == nil {
		return ctx, noop.Span{}
	}
	attrs := []attribute.KeyValue{}
	if id != "" {
		attrs = append(attrs, tracing.AttrInstanceID.String(id))
	}
	return c.tracing.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}

// tracedClientBackend sends what the client sends with the trace context of the call's span.
type tracedClientBackend struct {
	backend.ClientBackend
	t *tracing.Tracing
}

// CreateInstance implements backend.ClientBackend.
func (b tracedClientBackend) CreateInstance(ctx context.Context, req backend.StartRequest) error {
	trace.SpanFromContext(ctx).SetAttributes(tracing.AttrInstanceID.String(req.InstanceID),
		tracing.AttrOrchestrator.String(req.Name), tracing.AttrMessageKind.String(string(backend.KindStart)))
	if req.Trace == nil {
		req.Trace = b.t.Inject(ctx)
	}
	return b.ClientBackend.CreateInstance(ctx, req)
}

// Send implements backend.ClientBackend.
func (b tracedClientBackend) Send(ctx context.Context, m backend.Message) error {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(tracing.AttrInstanceID.String(m.InstanceID), tracing.AttrMessageKind.String(string(m.Kind)))
	if m.Kind == backend.KindEvent {
		span.SetAttributes(tracing.AttrEventName.String(m.EventName))
	}
	if m.Trace == nil {
		m.Trace = b.t.Inject(ctx)
	}
	return b.ClientBackend.Send(ctx, m)
}

// tracedWorkerBackend completes the worker's items with the trace context of the turn's or the
// activity's span.
type tracedWorkerBackend struct {
	backend.WorkerBackend
	t *tracing.Tracing
}

// CompleteOrchestrationWorkItem implements backend.WorkerBackend.
func (b tracedWorkerBackend) CompleteOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, c *backend.OrchestrationCompletion) (*backend.Instance, error) {
	if len(c.Events) > 0 {
		trace.SpanFromContext(ctx).SetAttributes(tracing.AttrStatus.String(string(c.State.Status)),
			tracing.AttrGeneration.Int64(int64(c.State.Generation)))
	}
	if c.Trace == nil {
		c.Trace = b.t.Inject(ctx)
	}
	return b.WorkerBackend.CompleteOrchestrationWorkItem(ctx, item, c)
}

// CompleteActivityWorkItem implements backend.WorkerBackend.
func (b tracedWorkerBackend) CompleteActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, result backend.TaskResult) error {
	if f := result.Failure; f != nil {
		trace.SpanFromContext(ctx).SetStatus(codes.Error, f.Type+": "+f.Message)
	}
	if result.Trace == nil {
		result.Trace = b.t.Inject(ctx)
	}
	return b.WorkerBackend.CompleteActivityWorkItem(ctx, item, result)
}

// startActivitySpan starts the span of one execution of an activity task, a child of the turn
// that scheduled it.
func (w *Worker) startActivitySpan(ctx context.Context, task backend.ActivityTask) (context.Context, trace.Span) {
	return w.tracing.Start(w.tracing.Extract(ctx, task.Trace), tracing.SpanActivity,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			tracing.AttrInstanceID.String(task.InstanceID), tracing.AttrActivityName.String(task.Name),
			tracing.AttrTaskID.Int(task.TaskID), tracing.AttrGeneration.Int64(int64(task.Generation)),
			tracing.AttrAttempt.Int64(int64(task.Attempt))))
}

// startSpan starts the span of the turn, once its messages are collected: its parent is the
// first applied message that carries a trace context, and it links to the others (a turn that
// applies a fan-in of results, or an event from another trace, shows each of them).
func (b *turnBuilder) startSpan(ctx context.Context) (context.Context, trace.Span) {
	t := b.w.tracing
	if t == nil {
		return t.Start(ctx, tracing.SpanTurn)
	}
	msgs := b.item.Messages[:max(1, min(b.applied, len(b.item.Messages)))]
	var parent trace.SpanContext
	var links []trace.Link
	kinds := make([]string, 0, min(len(msgs), tracing.MaxListedMessages))
	for _, m := range msgs {
		if len(kinds) < tracing.MaxListedMessages {
			kinds = append(kinds, messageLabel(m.Message))
		}
		sc := t.SpanContext(m.Trace)
		switch {
		case !sc.IsValid() || sc.Equal(parent):
		case !parent.IsValid():
			parent = sc
		case len(links) < tracing.MaxListedMessages:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	name := b.orchestratorName()
	return t.Start(ctx, tracing.SpanTurn, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(b.began),
		trace.WithLinks(links...), trace.WithAttributes(
			tracing.AttrInstanceID.String(b.id), tracing.AttrOrchestrator.String(name),
			tracing.AttrTurnMessages.Int(b.applied), tracing.AttrTurnEvents.StringSlice(kinds)))
}

// orchestratorName is the name of the instance the turn runs, "" if not known.
func (b *turnBuilder) orchestratorName() string {
	switch {
	case b.start != nil:
		return b.start.Name
	case b.state != nil:
		return b.state.Name
	}
	return ""
}

// messageLabel names a message in a turn span's AttrTurnEvents: its kind, "event:<name>" for an
// event.
func messageLabel(m backend.Message) string {
	if m.Kind == backend.KindEvent {
		return "event:" + m.EventName
	}
	return string(m.Kind)
}
