package tracing_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

func TestInjectExtractRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	tr := tracing.New(tp, nil)
	ctx, span := tr.Start(context.Background(), "caller")
	defer span.End()
	tc := tr.Inject(ctx)
	if tc[backend.HeaderTraceparent] == "" {
		t.Fatalf("Inject = %v, want a traceparent", tc)
	}
	got := tr.SpanContext(tc)
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want the caller's span %v as remote", got, span.SpanContext())
	}
}

func TestMalformedOrMissingTraceContextIsIgnored(t *testing.T) {
	tr := tracing.New(sdktrace.NewTracerProvider(), nil)
	for name, tc := range map[string]backend.TraceContext{
		"nil":         nil,
		"garbage":     {backend.HeaderTraceparent: "not a traceparent"},
		"zero trace":  {backend.HeaderTraceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		"state alone": {backend.HeaderTracestate: "k=v"},
	} {
		if sc := tr.SpanContext(tc); sc.IsValid() {
			t.Errorf("%s: span context %v, want none", name, sc)
		}
	}
	if tc := tr.Inject(context.Background()); tc != nil {
		t.Errorf("Inject without a span = %v, want nil", tc)
	}
}

// A nil Tracing (no provider) traces nothing and carries nothing, without failing.
func TestNilTracingIsOff(t *testing.T) {
	var tr *tracing.Tracing = tracing.New(nil, nil)
	if tr != nil {
		t.Fatalf("New(nil, nil) = %v, want nil", tr)
	}
	ctx, span := tr.Start(context.Background(), "x")
	span.End()
	if span.SpanContext().IsValid() || tr.Inject(ctx) != nil {
		t.Fatal("a nil Tracing made a span or a trace context")
	}
	tc := backend.TraceContext{backend.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	if tr.SpanContext(tc).IsValid() {
		t.Fatal("a nil Tracing extracted a span context")
	}
}
