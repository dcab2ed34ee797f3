package main

// Traces: `dev`, `worker`, `api` and `raiser` export OpenTelemetry traces over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and trace nothing
// otherwise. The exporter and the SDK take the rest of their settings from the standard OTEL_*
// variables (headers, timeout, sampler, batch sizes, service name and resource attributes).
//
// OTLP over HTTP rather than gRPC: the exporter sends over net/http (proxies, TLS and retries as
// for any HTTP client, port 4318 of every collector) and needs no gRPC client connection. It
// does not keep google.golang.org/grpc out of the binary, though: the OTLP protobuf package both
// exporters share (go.opentelemetry.io/proto/otlp/collector/trace/v1) holds the generated gRPC
// service and links part of grpc anyway.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The environment variables that turn tracing on (either one; read, like every OTEL_* setting,
// from the process environment, where the exporter reads them).
const (
	envOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// tracesFlushTimeout bounds how long a stopping process spends exporting its last spans.
const tracesFlushTimeout = 5 * time.Second

// traces is a process's tracer provider, or none (a nil *traces: tracing is off).
type traces struct {
	provider *sdktrace.TracerProvider
	log      zerolog.Logger
}

// startTraces returns the process's tracer provider when the OTLP endpoint is configured, nil
// otherwise. It installs the provider and the W3C Trace Context propagator as OpenTelemetry's
// globals too, so that activities using otel.Tracer make their spans children of jetflow's.
// service names the process (service.name jetflow-<service>, unless OTEL_SERVICE_NAME is set).
func startTraces(ctx context.Context, service string, log zerolog.Logger) (*traces, error) {
	if os.Getenv(envOTLPEndpoint) == "" && os.Getenv(envOTLPTracesEndpoint) == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("traces: creating the OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "jetflow-"+service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("traces: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	log.Info().Str("component", "traces").Msg("exporting traces over OTLP/HTTP")
	return &traces{provider: tp, log: log}, nil
}

// Provider returns the tracer provider to pass to the engine, the API and the raiser: nil when
// tracing is off (a nil interface, which they take as "no tracing").
func (t *traces) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Stop exports the spans not exported yet and shuts the provider down (within
// tracesFlushTimeout); call it once the services have stopped.
func (t *traces) Stop() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracesFlushTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		t.log.Warn().Err(err).Str("component", "traces").Msg("flushing the last traces")
	}
}
