package httpapi

// Traces (Options.TracerProvider): a server span per request, continuing the trace of the
// request's traceparent header, so that the engine client's spans and the messages they send
// (and the turns that apply them) are part of the caller's trace.

import (
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// serveTraced serves r, routed to pattern, within a server span.
func (a *api) serveTraced(w http.ResponseWriter, r *http.Request, pattern string) {
	ctx := a.tracing.ExtractHeaders(r.Context(), r.Header.Get)
	ctx, span := a.tracing.Start(ctx, tracing.SpanHTTPPrefix+pattern, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", pattern)))
	defer span.End()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	req := r.WithContext(ctx)
	a.mux.ServeHTTP(rec, req)
	if id := req.PathValue("instanceId"); id != "" { // set by the mux as it routes req
		span.SetAttributes(tracing.AttrInstanceID.String(id))
	}
	span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
	if rec.status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", rec.status))
	}
}

// statusRecorder remembers the status code a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records code and writes it.
func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
