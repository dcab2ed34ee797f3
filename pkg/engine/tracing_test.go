package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// tracedEnv is env with a traced client and workers, recording every span in memory.
type tracedEnv struct {
	*env
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	caller trace.Tracer // the test's own spans: the callers of the client
}

func newTracedEnv(t *testing.T) *tracedEnv {
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e.client = engine.NewClient(e.b, engine.WithClientTracerProvider(tp))
	return &tracedEnv{env: e, spans: spans, tp: tp, caller: tp.Tracer("test")}
}

// startTracedWorker runs a traced worker with the approval orchestrator and its activity.
func (e *tracedEnv) startTracedWorker() {
	reg := mustRegistry(e.t, map[string]durable.OrchestratorFunc{"Approval": approval, "TwoEvents": twoEvents},
		map[string]durable.ActivityFunc{"Decide": durable.Activity(decide)})
	e.startWorker(reg, engine.WithTracerProvider(e.tp))
}

// twoEvents waits for event First, then for event Second.
func twoEvents(ctx *durable.OrchestrationContext) (any, error) {
	if err := ctx.WaitForExternalEvent("First").Await(nil); err != nil {
		return nil, err
	}
	return nil, ctx.WaitForExternalEvent("Second").Await(nil)
}

// callerSpan starts a span of the test, as the caller of the client.
func (e *tracedEnv) callerSpan(name string) (context.Context, trace.Span) {
	return e.caller.Start(context.Background(), name)
}

// ended returns the ended spans named name of instance id, in the order they started; it waits
// until there are at least n (a turn's span ends after its commit, which a waiting client may
// see first).
func (e *tracedEnv) ended(name, id string, n int) []sdktrace.ReadOnlySpan {
	e.t.Helper()
	var got []sdktrace.ReadOnlySpan
	natstest.CheckFor(e.t, 20*time.Second, 10*time.Millisecond, func() error {
		got = nil
		for _, s := range e.spans.Ended() {
			if s.Name() == name && attr(s, tracing.AttrInstanceID) == id {
				got = append(got, s)
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d %s spans of %s ended, want %d", len(got), name, id, n)
		}
		return nil
	})
	slices.SortFunc(got, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	return got
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key && kv.Value.Type() == attribute.STRINGSLICE {
			return strings.Join(kv.Value.AsStringSlice(), " ")
		}
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// turnApplying returns the turn span whose applied messages are events (AttrTurnEvents, joined
// by spaces).
func turnApplying(t *testing.T, turns []sdktrace.ReadOnlySpan, events string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range turns {
		if attr(s, tracing.AttrTurnEvents) == events {
			return s
		}
	}
	var have []string
	for _, s := range turns {
		have = append(have, attr(s, tracing.AttrTurnEvents))
	}
	t.Fatalf("no turn applied %s; turns applied %v", events, have)
	return nil
}

func wantParent(t *testing.T, what string, s sdktrace.ReadOnlySpan, parent trace.SpanContext) {
	t.Helper()
	if got := s.Parent(); got.TraceID() != parent.TraceID() || got.SpanID() != parent.SpanID() {
		t.Fatalf("%s: parent %s/%s, want %s/%s", what, got.TraceID(), got.SpanID(), parent.TraceID(), parent.SpanID())
	}
}

// A caller's start and raise, the turns they cause and the activity a turn schedules are one
// trace: start → first turn, raise → the turn that applies the event → the activity it
// schedules → the turn that applies the activity's result.
func TestTracing_OneTraceFromStartThroughTurnsAndActivity(t *testing.T) {
	e := newTracedEnv(t)
	e.startTracedWorker()
	ctx, root := e.callerSpan("caller")
	id, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("traced-1"))
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(id, "waiting for Approval", waitingForEvent("Approval"))
	if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
		t.Fatal(err)
	}
	if s := e.wait(id); string(s.Output) != `"approved"` {
		t.Fatalf("output %s, want approved", s.Output)
	}
	root.End()

	start := e.ended(tracing.SpanStart, id, 1)[0]
	raise := e.ended(tracing.SpanRaiseEvent, id, 1)[0]
	turns := e.ended(tracing.SpanTurn, id, 3)
	activity := e.ended(tracing.SpanActivity, id, 1)[0]
	traceID := root.SpanContext().TraceID()
	for _, s := range append([]sdktrace.ReadOnlySpan{start, raise, activity}, turns...) {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %s (%s) is in trace %s, want the caller's %s", s.Name(), attr(s, tracing.AttrTurnEvents), s.SpanContext().TraceID(), traceID)
		}
	}
	wantParent(t, "start", start, root.SpanContext())
	wantParent(t, "first turn", turnApplying(t, turns, "start"), start.SpanContext())
	eventTurn := turnApplying(t, turns, "event:Approval")
	wantParent(t, "event turn", eventTurn, raise.SpanContext())
	wantParent(t, "activity", activity, eventTurn.SpanContext())
	wantParent(t, "result turn", turnApplying(t, turns, "result"), activity.SpanContext())
	if got := attr(activity, tracing.AttrActivityName); got != "Decide" {
		t.Errorf("activity span name attribute %q, want Decide", got)
	}
	if got := attr(turnApplying(t, turns, "result"), tracing.AttrStatus); got != "Completed" {
		t.Errorf("last turn's status attribute %q, want Completed", got)
	}
}

// An event raised in a trace of its own parents the turn that applies it alone, and is linked
// from a turn that applies it after another message.
func TestTracing_EventFromAnotherTraceParentsOrIsLinked(t *testing.T) {
	e := newTracedEnv(t)
	startCtx, starter := e.callerSpan("starter")
	id, err := e.client.ScheduleNew(startCtx, "TwoEvents", engine.WithInstanceID("traced-2"))
	if err != nil {
		t.Fatal(err)
	}
	starter.End()
	// Raised before any worker runs: the start and the event are likely applied in one turn.
	firstCtx, first := e.callerSpan("first raiser")
	if err := e.client.RaiseEvent(firstCtx, id, "First", nil); err != nil {
		t.Fatal(err)
	}
	first.End()
	e.startTracedWorker()
	e.waitFor(id, "waiting for Second", waitingForEvent("Second"))
	secondCtx, second := e.callerSpan("second raiser")
	if err := e.client.RaiseEvent(secondCtx, id, "Second", nil); err != nil {
		t.Fatal(err)
	}
	second.End()
	e.wait(id)

	start := e.ended(tracing.SpanStart, id, 1)[0]
	raises := e.ended(tracing.SpanRaiseEvent, id, 2)
	turns := e.ended(tracing.SpanTurn, id, 2)
	if attr(turns[0], tracing.AttrTurnEvents) == "start event:First" {
		wantParent(t, "turn of start and First", turns[0], start.SpanContext())
		wantLinks(t, "turn of start and First", turns[0], raises[0].SpanContext())
	} else {
		// The worker took the start before the event came: each parents its own turn.
		wantParent(t, "turn of start", turnApplying(t, turns, "start"), start.SpanContext())
		wantParent(t, "turn of First", turnApplying(t, turns, "event:First"), raises[0].SpanContext())
	}
	wantParent(t, "turn of Second", turnApplying(t, turns, "event:Second"), raises[1].SpanContext())
	if got, want := raises[1].SpanContext().TraceID(), second.SpanContext().TraceID(); got != want {
		t.Fatalf("raise of Second in trace %s, want its caller's %s", got, want)
	}
}

// A turn that applies messages of several traces has the first one's as its parent and links
// to the others. (On the memory backend, which hands out every queued message of an instance
// in one work item, so that the batch is certain.)
func TestTracing_TurnOfSeveralMessagesLinksThem(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	b := memory.New()
	t.Cleanup(b.Close)
	client := engine.NewClient(b, engine.WithClientTracerProvider(tp))
	ctx := context.Background()
	var callers []trace.SpanContext
	send := func(call func(context.Context) error) {
		cctx, span := tp.Tracer("test").Start(ctx, "caller")
		defer span.End()
		if err := call(cctx); err != nil {
			t.Fatal(err)
		}
		callers = append(callers, span.SpanContext())
	}
	send(func(ctx context.Context) error {
		_, err := client.ScheduleNew(ctx, "TwoEvents", engine.WithInstanceID("batched"))
		return err
	})
	send(func(ctx context.Context) error { return client.RaiseEvent(ctx, "batched", "First", nil) })
	send(func(ctx context.Context) error { return client.RaiseEvent(ctx, "batched", "Second", nil) })
	reg := mustRegistry(t, map[string]durable.OrchestratorFunc{"TwoEvents": twoEvents}, nil)
	w, err := engine.NewWorker(b, reg, engine.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx2, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	defer cancel2()
	if _, err := client.WaitForCompletion(wctx2, "batched"); err != nil {
		t.Fatal(err)
	}
	var turn sdktrace.ReadOnlySpan
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for _, s := range spans.Ended() {
			if s.Name() == tracing.SpanTurn {
				turn = s
				return nil
			}
		}
		return errors.New("no turn span ended")
	})
	if got := attr(turn, tracing.AttrTurnEvents); got != "start event:First event:Second" {
		t.Fatalf("the turn applied %q, want all three messages", got)
	}
	if got := turn.Parent(); got.TraceID() != callers[0].TraceID() {
		t.Fatalf("turn's parent in trace %s, want the starter's %s", got.TraceID(), callers[0].TraceID())
	}
	var linked []trace.TraceID
	for _, l := range turn.Links() {
		linked = append(linked, l.SpanContext.TraceID())
	}
	if want := []trace.TraceID{callers[1].TraceID(), callers[2].TraceID()}; !slices.Equal(linked, want) {
		t.Fatalf("turn links traces %v, want the raisers' %v", linked, want)
	}
}

// wantLinks checks that s links to exactly the span contexts want, in order.
func wantLinks(t *testing.T, what string, s sdktrace.ReadOnlySpan, want ...trace.SpanContext) {
	t.Helper()
	links := s.Links()
	ok := len(links) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = links[i].SpanContext.TraceID() == want[i].TraceID() && links[i].SpanContext.SpanID() == want[i].SpanID()
	}
	if !ok {
		t.Fatalf("%s: links %+v, want %+v", what, links, want)
	}
}

// An event published with plain NATS and a traceparent header parents the turn that applies
// it; a malformed traceparent is ignored and the event applied all the same.
func TestTracing_PlainPublishWithTraceparent(t *testing.T) {
	e := newTracedEnv(t)
	e.startTracedWorker()
	nc, _ := natstest.Connect(t, e.srv)
	ctx := context.Background()
	publish := func(id, traceparent string) {
		msg := nats.NewMsg("jetflow.inst." + id + ".event.Approval")
		msg.Data = []byte("true")
		msg.Header.Set(backend.HeaderTraceparent, traceparent)
		// As `nats pub -H traceparent:...` does: a core publish, which the stream captures.
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"plain-1", "plain-2"} {
		if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		e.waitFor(id, "waiting for Approval", waitingForEvent("Approval"))
	}
	publish("plain-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	publish("plain-2", "not a traceparent")
	for _, id := range []string{"plain-1", "plain-2"} {
		if s := e.wait(id); string(s.Output) != `"approved"` {
			t.Fatalf("%s: output %s, want approved", id, s.Output)
		}
	}

	turn := turnApplying(t, e.ended(tracing.SpanTurn, "plain-1", 3), "event:Approval")
	if p := turn.Parent(); p.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || p.SpanID().String() != "00f067aa0ba902b7" || !p.IsRemote() {
		t.Fatalf("turn of the published event: parent %s/%s (remote %v), want the published traceparent's", p.TraceID(), p.SpanID(), p.IsRemote())
	}
	activity := e.ended(tracing.SpanActivity, "plain-1", 1)[0]
	wantParent(t, "activity", activity, turn.SpanContext())
	bad := turnApplying(t, e.ended(tracing.SpanTurn, "plain-2", 3), "event:Approval")
	if bad.Parent().IsValid() {
		t.Fatalf("turn of an event with a malformed traceparent has parent %s", bad.Parent().SpanID())
	}
}
