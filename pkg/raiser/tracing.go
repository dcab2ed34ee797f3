package raiser

// Traces: each queue message is handled in a span whose parent is the trace context of the
// message's headers (traceparent, tracestate), so that the event it raises, and the turn that
// applies it, continue the trace of whoever published to the queue.

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// WithTracerProvider makes the raiser trace each message it handles with tp (default: none).
// The event is raised within that span: give the raiser's engine.Client the same provider
// (engine.WithClientTracerProvider) so that the event carries it.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) error { o.tracerProvider = tp; return nil }
}

// WithPropagator sets how the raiser reads the trace context of queue messages (default: W3C
// Trace Context).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) error { o.propagator = p; return nil }
}

// handleTraced handles msg within a span of the message's trace.
func (r *Raiser) handleTraced(ctx context.Context, q Queue, msg jetstream.Msg, log zerolog.Logger) {
	if r.tracing == nil {
		r.handle(ctx, q, msg, log)
		return
	}
	ctx = r.tracing.ExtractHeaders(ctx, msg.Headers().Get)
	ctx, span := r.tracing.Start(ctx, tracing.SpanRaiserMessage, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.AttrQueue.String(q.Name)))
	defer span.End()
	r.handle(ctx, q, msg, log)
}
