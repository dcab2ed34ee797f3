package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// TestNilMetricsRecordNothing: every method is safe on a nil *Metrics.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.TurnCommitted(time.Millisecond)
	m.TurnFailed()
	m.CommitConflict()
	m.Redelivered(metrics.SourceInbox)
	m.EventsRaised(1, 1)
	m.EventsDiscarded(metrics.DiscardEnded, 1)
	m.ActivityExecuted("A", metrics.OutcomeOK, time.Millisecond)
	m.TimersScheduled(1)
	m.TimersFired(1)
	m.InstanceStarted()
	m.InstanceEnded("Completed")
	m.CacheLookup(true)
	m.DeadLettered("inbox", metrics.ReasonPoisonMessage)
	m.PartitionsOwned(3)
	m.RaiserMessage("q", metrics.RaiserRaised)
	m.SetTimersPendingSource(nil)
}

// TestNewRegistersOnce: a registerer takes one Metrics; a second is refused with the
// registerer's error, and a nil registerer is refused.
func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	var already prometheus.AlreadyRegisteredError
	if _, err := metrics.New(reg); !errors.As(err, &already) {
		t.Errorf("second New = %v, want an AlreadyRegisteredError", err)
	}
	if _, err := metrics.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// TestSeriesNames: the series follow Prometheus conventions (jetflow_ prefix, _total on
// counters, _seconds on durations) and carry no instance label.
func TestSeriesNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.TurnCommitted(time.Millisecond)
	m.Redelivered(metrics.SourceInbox)
	m.EventsDiscarded(metrics.DiscardEnded, 1)
	m.ActivityExecuted("A", metrics.OutcomeOK, time.Millisecond)
	m.InstanceEnded("Completed")
	m.DeadLettered("inbox", metrics.ReasonPoisonMessage)
	m.RaiserMessage("q", metrics.RaiserRaised)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "jetflow_") {
			t.Errorf("%s: no jetflow_ prefix", name)
		}
		if f.GetType().String() == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if f.GetType().String() == "HISTOGRAM" && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("histogram %s does not end in _seconds", name)
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "instance_id" {
					t.Errorf("%s has an instance_id label", name)
				}
			}
		}
	}
}
