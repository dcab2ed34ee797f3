package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// The traceparent of a start request and of a raise request parent the API's server spans; the
// client calls are their children, and the turns that apply the start and the event continue
// each request's trace.
func TestTracing_RequestTraceparentReachesTheTurn(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	st := examplestack.Start(t, examplestack.Options{Worker: []engine.WorkerOption{engine.WithTracerProvider(tp)}})
	b, err := natsjs.New(context.Background(), st.JS)
	if err != nil {
		t.Fatal(err)
	}
	client := engine.NewClient(b, engine.WithClientTracerProvider(tp))
	srv := httptest.NewServer(httpapi.New(client, httpapi.Options{TracerProvider: tp}))
	t.Cleanup(srv.Close)

	const id = "http-traced"
	const startTrace, raiseTrace = "4bf92f3577b34da6a3ce929d0e0e4736", "5bf92f3577b34da6a3ce929d0e0e4737"
	r := do(t, "POST", api(srv, "orchestrators/BudgetApproval/"+id), `{"amountCents": 500000, "requester": "ana"}`,
		"traceparent", "00-"+startTrace+"-00f067aa0ba902b7-01")
	expectCode(t, r, http.StatusAccepted, "start")
	examplestack.WaitFor(t, st.Client, id, "waiting for Approval", examplestack.WaitingFor(orchestration.EventApproval))
	r = do(t, "POST", inst(srv, id, "/raiseEvent/Approval"), "true", "traceparent", "00-"+raiseTrace+"-00f067aa0ba902b8-01")
	expectCode(t, r, http.StatusAccepted, "raise")
	examplestack.WaitEnded(t, st.Client, id)

	for _, c := range []struct {
		trace, remoteParent, call, turnEvents string
	}{
		{startTrace, "00f067aa0ba902b7", tracing.SpanStart, "start"},
		{raiseTrace, "00f067aa0ba902b8", tracing.SpanRaiseEvent, "event:Approval"},
	} {
		server := waitSpan(t, spans, func(s sdktrace.ReadOnlySpan) bool {
			return strings.HasPrefix(s.Name(), tracing.SpanHTTPPrefix) && s.SpanContext().TraceID().String() == c.trace
		})
		if server.Parent().SpanID().String() != c.remoteParent {
			t.Fatalf("server span %s: parent %s, want the request's %s", server.Name(), server.Parent().SpanID(), c.remoteParent)
		}
		call := waitSpan(t, spans, func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == c.call && s.Parent().SpanID() == server.SpanContext().SpanID()
		})
		turn := waitSpan(t, spans, func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == tracing.SpanTurn && s.Parent().SpanID() == call.SpanContext().SpanID()
		})
		if got := turn.SpanContext().TraceID().String(); got != c.trace {
			t.Fatalf("turn of %s in trace %s, want the request's %s", c.turnEvents, got, c.trace)
		}
		if got := fmt.Sprint(attrValue(turn, tracing.AttrTurnEvents)); got != "["+c.turnEvents+"]" {
			t.Fatalf("turn after %s applied %s, want [%s]", c.call, got, c.turnEvents)
		}
	}
}

// waitSpan waits until an ended span satisfies ok and returns it.
func waitSpan(t *testing.T, spans *tracetest.SpanRecorder, ok func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	natstest.CheckFor(t, examplestack.WaitTimeout, 10*time.Millisecond, func() error {
		for _, s := range spans.Ended() {
			if ok(s) {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no such span among %d ended", len(spans.Ended()))
	})
	return found
}

// attrValue returns the value of s's attribute key, nil if it has none.
func attrValue(s sdktrace.ReadOnlySpan, key attribute.Key) any {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.AsInterface()
		}
	}
	return nil
}
