package raiser_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// A queue message's traceparent parents the raiser's span for it, whose client call raises the
// event, whose turn continues the same trace.
func TestTracing_QueueMessageTraceparentReachesTheTurn(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	st := examplestack.Start(t, examplestack.Options{Worker: []engine.WorkerOption{engine.WithTracerProvider(tp)}})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	b, err := natsjs.New(ctx, st.JS)
	if err != nil {
		t.Fatal(err)
	}
	client := engine.NewClient(b, engine.WithClientTracerProvider(tp))
	r, err := raiser.New(st.JS, client, devQueues, raiser.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	examplestack.RunInBackground(t, "raiser", r.Run)

	const id, traceID, parentID = "queue-traced", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	examplestack.StartWaiting(t, st.Client, "BudgetApproval", id, map[string]any{"amountCents": 500000, "requester": "ana"}, orchestration.EventApproval)
	m := nats.NewMsg("approval-queue")
	m.Data = []byte(id)
	m.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := st.JS.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	examplestack.WaitEnded(t, st.Client, id)

	handled := endedSpan(t, spans, tracing.SpanRaiserMessage, parentID)
	if got := handled.SpanContext().TraceID().String(); got != traceID {
		t.Fatalf("raiser span in trace %s, want the message's %s", got, traceID)
	}
	raise := endedSpan(t, spans, tracing.SpanRaiseEvent, handled.SpanContext().SpanID().String())
	turn := endedSpan(t, spans, tracing.SpanTurn, raise.SpanContext().SpanID().String())
	if got := turn.SpanContext().TraceID().String(); got != traceID {
		t.Fatalf("turn in trace %s, want the message's %s", got, traceID)
	}
	for _, kv := range turn.Attributes() {
		if kv.Key == tracing.AttrTurnEvents && fmt.Sprint(kv.Value.AsStringSlice()) != "[event:Approval]" {
			t.Fatalf("turn applied %v, want the event", kv.Value.AsStringSlice())
		}
	}
	if got := handledQueue(handled); got != "approval-queue" {
		t.Fatalf("raiser span queue %q, want approval-queue", got)
	}
}

// endedSpan waits for the ended span named name whose parent is span parentID.
func endedSpan(t *testing.T, spans *tracetest.SpanRecorder, name, parentID string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	natstest.CheckFor(t, waitTimeout, 10*time.Millisecond, func() error {
		for _, s := range spans.Ended() {
			if s.Name() == name && s.Parent().SpanID().String() == parentID {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no %s span with parent %s ended", name, parentID)
	})
	return found
}

func handledQueue(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(tracing.AttrQueue) {
			return kv.Value.AsString()
		}
	}
	return ""
}
