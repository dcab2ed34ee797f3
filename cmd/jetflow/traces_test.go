package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// otlpCollector is an OTLP/HTTP trace receiver: it records the names and service of the spans
// exported to it.
type otlpCollector struct {
	mu       sync.Mutex
	names    []string
	services []string
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services = append(c.services, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names = append(c.names, s.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, `jetflow dev` exports the spans of its client calls,
// turns and activities over OTLP/HTTP, and flushes them when it stops.
func TestDevExportsTracesWhenTheEndpointIsSet(t *testing.T) {
	collector := &otlpCollector{}
	srv := httptest.NewServer(collector)
	t.Cleanup(srv.Close)
	t.Setenv(envOTLPEndpoint, srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000") // nothing is exported before the flush on Stop
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	d := startTestDev(t, zerolog.WarnLevel)
	if d.traces == nil {
		t.Fatal("tracing is off although the endpoint is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	examplestack.StartWaiting(t, d.w.client, "BudgetApproval", "traced", map[string]any{"amountCents": 500000, "requester": "ana"}, orchestration.EventApproval)
	if err := d.w.client.RaiseEvent(ctx, "traced", orchestration.EventApproval, true); err != nil {
		t.Fatal(err)
	}
	examplestack.WaitEnded(t, d.w.client, "traced")
	d.Stop()

	collector.mu.Lock()
	defer collector.mu.Unlock()
	for _, name := range []string{tracing.SpanStart, tracing.SpanRaiseEvent, tracing.SpanTurn, tracing.SpanActivity} {
		if !slices.Contains(collector.names, name) {
			t.Errorf("no %s span exported; got %v", name, collector.names)
		}
	}
	if len(collector.services) == 0 || collector.services[0] != "jetflow-dev" {
		t.Errorf("service names %v, want jetflow-dev", collector.services)
	}
}

// Without an OTLP endpoint nothing is traced: the provider the services get is a nil interface.
func TestTracesOffWithoutEndpoint(t *testing.T) {
	t.Setenv(envOTLPEndpoint, "")
	t.Setenv(envOTLPTracesEndpoint, "")
	tr, err := startTraces(context.Background(), "worker", zerolog.Nop())
	if err != nil || tr != nil {
		t.Fatalf("startTraces = %v, %v; want nil, nil", tr, err)
	}
	if tp := tr.Provider(); tp != nil {
		t.Fatalf("provider %v, want nil", tp)
	}
	tr.Stop() // safe on nil
}
