package metrics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

// startStack starts the example stack with its backend and worker recording into a fresh
// registry.
func startStack(t *testing.T) (*examplestack.Stack, *prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := examplestack.Start(t, examplestack.Options{
		Backend: []natsjs.Option{natsjs.WithMetrics(m)},
		Worker:  []engine.WorkerOption{engine.WithMetrics(m)},
	})
	return s, reg, m
}

// value sums the series of name whose labels include want (counters, gauges, and histogram
// sample counts); -1 if there is none.
func value(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	sum, found := 0.0, false
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			found = true
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// expect waits until the series has a value that ok accepts.
func expect(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, what string, ok func(float64) bool) {
	t.Helper()
	natstest.CheckFor(t, examplestack.WaitTimeout, 20*time.Millisecond, func() error {
		if v := value(t, g, name, labels); !ok(v) {
			return fmt.Errorf("%s%v: want %s, got %v", name, labels, what, v)
		}
		return nil
	})
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
func exactly(n float64) func(float64) bool { return func(v float64) bool { return v == n } }

// TestMetricsBudgetApproval runs one BudgetApproval instance, approved through the queue
// raiser, and checks the series it moves; then an event published to the ended instance is
// discarded, and a queue message for an instance that does not exist is dead-lettered.
func TestMetricsBudgetApproval(t *testing.T) {
	s, reg, m := startStack(t)
	s.StartRaiser(t, examplestack.DevRaiserConfig(), raiser.WithMetrics(m))
	ctx, cancel := context.WithTimeout(context.Background(), examplestack.WaitTimeout)
	defer cancel()

	examplestack.StartWaiting(t, s.Client, "BudgetApproval", "budget-1",
		activities.BudgetRequest{AmountCents: 500000, Requester: "ana"}, orchestration.EventApproval)
	if _, err := s.JS.Publish(ctx, "approval-queue", []byte("budget-1")); err != nil {
		t.Fatal(err)
	}
	if st := examplestack.WaitEnded(t, s.Client, "budget-1"); string(st.Output) != `"approved"` {
		t.Fatalf("output %s, want \"approved\"", st.Output)
	}
	expect(t, reg, "jetflow_turns_total", nil, ">= 3", atLeast(3))
	expect(t, reg, "jetflow_turn_duration_seconds", nil, ">= 3 samples", atLeast(3))
	expect(t, reg, "jetflow_activity_executions_total", map[string]string{"name": activities.ApproveBudget, "outcome": "ok"}, "1", exactly(1))
	expect(t, reg, "jetflow_activity_duration_seconds", map[string]string{"name": activities.ApproveBudget, "outcome": "ok"}, "1 sample", exactly(1))
	expect(t, reg, "jetflow_instances_started_total", nil, "1", exactly(1))
	expect(t, reg, "jetflow_instances_ended_total", map[string]string{"status": "Completed"}, "1", exactly(1))
	expect(t, reg, "jetflow_events_raised_total", nil, "1", exactly(1))
	expect(t, reg, "jetflow_events_buffered_total", nil, "0", exactly(0))
	expect(t, reg, "jetflow_raiser_messages_total", map[string]string{"queue": "approval-queue", "outcome": "raised"}, "1", exactly(1))
	expect(t, reg, "jetflow_executor_cache_misses_total", nil, "0", exactly(0))
	expect(t, reg, "jetflow_executor_cache_hits_total", nil, ">= 2", atLeast(2))
	expect(t, reg, "jetflow_partitions_owned", nil, "all 16", exactly(natsjs.DefaultPartitions))

	// An event published to the ended instance is discarded; a queue message for an unknown
	// instance is dead-lettered by the raiser.
	if _, err := s.JS.Publish(ctx, "jetflow.inst.budget-1.event.Approval", []byte("true")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JS.Publish(ctx, "approval-queue", []byte("no-such-instance")); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, "jetflow_events_discarded_total", map[string]string{"reason": metrics.DiscardEnded}, "1", exactly(1))
	expect(t, reg, "jetflow_raiser_messages_total", map[string]string{"queue": "approval-queue", "outcome": "dead_lettered"}, "1", exactly(1))
	expect(t, reg, "jetflow_dead_letters_total", map[string]string{"source": "raiser", "reason": metrics.ReasonInstanceNotFound}, "1", exactly(1))
}

// TestMetricsTimers runs a PhoneVerification whose code times out: one timer is scheduled, is
// pending (counted from the instance stream) until it fires, then fired.
func TestMetricsTimers(t *testing.T) {
	s, reg, m := startStack(t)
	examplestack.StartWaiting(t, s.Client, "PhoneVerification", "phone-1",
		orchestration.PhoneVerificationInput{Phone: "+15550100", TimeoutSeconds: 2}, orchestration.EventSmsChallengeResponse)
	expect(t, reg, "jetflow_timers_scheduled_total", nil, "1", exactly(1))
	// The timer is published right after the turn's commit; the count is cached.
	expect(t, reg, "jetflow_timers_pending", nil, "1 while the instance waits", func(v float64) bool {
		metrics.ExpireTimersPending(m)
		return v == 1
	})
	examplestack.WaitEnded(t, s.Client, "phone-1")
	expect(t, reg, "jetflow_timers_fired_total", nil, "1", exactly(1))
	expect(t, reg, "jetflow_activity_executions_total", map[string]string{"name": activities.SendSmsChallenge, "outcome": "ok"}, "1", exactly(1))
	expect(t, reg, "jetflow_timers_pending", nil, "0 once it fired", func(v float64) bool {
		metrics.ExpireTimersPending(m)
		return v == 0
	})
}
