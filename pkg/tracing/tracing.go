// Package tracing holds what jetflow's OpenTelemetry traces are made of: the span names and
// attributes, and a Tracing that starts spans and carries their context in messages as
// backend.TraceContext (the W3C traceparent and tracestate headers, docs/wire.md).
//
// Nothing here touches OpenTelemetry's global state: each component (engine.Client,
// engine.Worker, httpapi, raiser) takes a trace.TracerProvider and a propagator by option and
// makes its Tracing from them; without them it traces nothing. The program installs an SDK
// provider (cmd/jetflow does when OTEL_EXPORTER_OTLP_ENDPOINT is set) and passes it in.
//
// How spans link up: a client call's span is carried by the message it sends (start, event,
// terminate, ...); the turn that applies messages has the first applied message's context as its
// parent and links to the other applied messages' contexts; the tasks the turn schedules carry
// the turn's span, each activity execution is a child of it, and the activity's result carries
// the activity's span to the next turn. So an instance driven by one caller is one trace, and a
// message from elsewhere (an event raised by another service, in its own trace) either parents
// the turn it starts or is linked from it.
//
// Every method is safe on a nil *Tracing, which traces nothing.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// ScopeName is the instrumentation scope of jetflow's tracers.
const ScopeName = "github.com/jetflow-dev/jetflow"

// Span names. Client spans are named by the call; each is the parent of the message it sends.
const (
	SpanStart          = "jetflow.start"            // engine.Client.ScheduleNew
	SpanStartWithEvent = "jetflow.start_with_event" // engine.Client.StartWithEvent
	SpanRaiseEvent     = "jetflow.raise_event"      // engine.Client.RaiseEvent
	SpanTerminate      = "jetflow.terminate"        // engine.Client.Terminate
	SpanSuspend        = "jetflow.suspend"          // engine.Client.Suspend
	SpanResume         = "jetflow.resume"           // engine.Client.Resume
	SpanRewind         = "jetflow.rewind"           // engine.Client.Rewind
	SpanRestart        = "jetflow.restart"          // engine.Client.Restart
	SpanPurge          = "jetflow.purge"            // engine.Client.Purge
	// SpanTurn is one orchestration turn of one instance (engine.Worker).
	SpanTurn = "jetflow.turn"
	// SpanActivity is one execution (attempt) of an activity task (engine.Worker).
	SpanActivity = "jetflow.activity"
	// SpanRaiserMessage is the raiser's handling of one queue message.
	SpanRaiserMessage = "jetflow.raiser.message"
	// SpanHTTPPrefix prefixes the HTTP API's server spans: "jetflow.http " + the route pattern.
	SpanHTTPPrefix = "jetflow.http "
)

// Attribute keys.
const (
	AttrInstanceID   = attribute.Key("jetflow.instance.id")
	AttrOrchestrator = attribute.Key("jetflow.orchestrator.name")
	AttrGeneration   = attribute.Key("jetflow.instance.generation")
	// AttrStatus is the instance's runtime status after a turn.
	AttrStatus    = attribute.Key("jetflow.instance.status")
	AttrEventName = attribute.Key("jetflow.event.name")
	// AttrMessageKind is the kind of message a client call sends (start, event, terminate, ...).
	AttrMessageKind = attribute.Key("jetflow.message.kind")
	// AttrTurnMessages counts the messages a turn applied.
	AttrTurnMessages = attribute.Key("jetflow.turn.messages")
	// AttrTurnEvents lists what a turn applied, in order: the message kind, and for events
	// "event:<name>" (at most MaxListedMessages entries).
	AttrTurnEvents   = attribute.Key("jetflow.turn.events")
	AttrActivityName = attribute.Key("jetflow.activity.name")
	AttrTaskID       = attribute.Key("jetflow.task.id")
	// AttrAttempt counts deliveries of an activity task, from 1.
	AttrAttempt = attribute.Key("jetflow.activity.attempt")
	AttrQueue   = attribute.Key("jetflow.raiser.queue")
)

// MaxListedMessages bounds the entries of AttrTurnEvents and the links of a turn span.
const MaxListedMessages = 128

// Tracing starts the spans of one component and carries their context in messages.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New returns a Tracing that makes spans with tp and carries their context with prop. A nil tp
// traces nothing (New returns nil); a nil prop is W3C Trace Context (propagation.TraceContext).
// Whatever the propagator, messages carry only the traceparent and tracestate headers.
func New(tp trace.TracerProvider, prop propagation.TextMapPropagator) *Tracing {
	if tp == nil {
		return nil
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	return &Tracing{tracer: tp.Tracer(ScopeName), prop: prop}
}

// Start starts span name as a child of ctx's span.
func (t *Tracing) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noop.Span{}
	}
	return t.tracer.Start(ctx, name, opts...)
}

// Inject returns the trace context of ctx's span, to be carried by a message; nil if ctx has
// no valid span.
func (t *Tracing) Inject(ctx context.Context) backend.TraceContext {
	if t == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	t.prop.Inject(ctx, carrier)
	return backend.TraceFrom(carrier.Get)
}

// Extract returns ctx with the span context a message carried as its remote parent. A missing
// or malformed trace context leaves ctx as it is.
func (t *Tracing) Extract(ctx context.Context, tc backend.TraceContext) context.Context {
	if t == nil || len(tc) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier(tc))
}

// SpanContext returns the span context a message carried; invalid if none or malformed.
func (t *Tracing) SpanContext(tc backend.TraceContext) trace.SpanContext {
	return trace.SpanContextFromContext(t.Extract(context.Background(), tc))
}

// End ends span, recording err (if not nil) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ExtractHeaders returns ctx with the span context that a message's or request's headers carry
// (traceparent, tracestate), read with get (the Get method of nats.Header or http.Header), as
// its remote parent. Headers without a valid traceparent leave ctx as it is.
func (t *Tracing) ExtractHeaders(ctx context.Context, get func(key string) string) context.Context {
	return t.Extract(ctx, backend.TraceFrom(get))
}
