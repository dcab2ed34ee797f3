// Package metrics holds jetflow's Prometheus metrics: one Metrics per registerer, shared by the
// engine's worker (engine.WithMetrics), the JetStream backend (natsjs.WithMetrics) and the queue
// raiser (raiser.WithMetrics). Nothing is registered globally: the program creates a Metrics on
// the registerer it serves (prometheus.NewRegistry, or prometheus.DefaultRegisterer if it wants).
//
// Labels are bounded: no instance IDs, no free text. Activity names are those registered with
// the worker, dead-letter reasons are a small set of classes (the Reason* constants), statuses
// are the runtime statuses, queues are the raiser's configured queues.
//
// Every method is safe on a nil *Metrics, which records nothing, so that instrumented code need
// not check whether metrics are enabled.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every series.
const Namespace = "jetflow"

// Dead-letter reason classes (the reason label of jetflow_dead_letters_total). The engine uses
// the failure kinds of the instances it fails (PoisonMessage, InvalidStart, PayloadTooLarge) and
// InvalidMessage for a message that does not decode; the backend and the raiser use the others.
const (
	ReasonPoisonMessage       = "PoisonMessage"
	ReasonInvalidStart        = "InvalidStart"
	ReasonPayloadTooLarge     = "PayloadTooLarge"
	ReasonInvalidMessage      = "InvalidMessage"
	ReasonUnusableSubject     = "UnusableSubject"
	ReasonInvalidActivityTask = "InvalidActivityTask"
	ReasonInstanceNotFound    = "InstanceNotFound"
	ReasonInstanceEnded       = "InstanceEnded"
)

// Reasons an external event is discarded (the reason label of jetflow_events_discarded_total).
const (
	DiscardNotFound = "instance_not_found"
	DiscardPending  = "instance_pending" // pending without a start
	DiscardEnded    = "instance_ended"
	DiscardIgnored  = "ignored" // left out by the orchestration: an event ID seen before, or after its end
	DiscardInvalid  = "invalid" // data that is not JSON: dead-lettered
)

// Activity outcomes (the outcome label of the activity series).
const (
	OutcomeOK     = "ok"
	OutcomeFailed = "failed"
)

// Raiser outcomes (the outcome label of jetflow_raiser_messages_total).
const (
	RaiserRaised       = "raised"
	RaiserDeadLettered = "dead_lettered"
	RaiserDropped      = "dropped"
	RaiserRetried      = "retried"
)

// Redelivery sources (the source label of jetflow_redeliveries_total).
const (
	SourceInbox    = "inbox"
	SourceActivity = "activity"
)

// Metrics is jetflow's set of Prometheus collectors on one registerer.
type Metrics struct {
	turns, turnErrors, conflicts prometheus.Counter
	turnDuration                 prometheus.Histogram
	redeliveries                 *prometheus.CounterVec
	eventsRaised, eventsBuffered prometheus.Counter
	eventsDiscarded              *prometheus.CounterVec
	activities                   *prometheus.CounterVec
	activityDuration             *prometheus.HistogramVec
	timersScheduled, timersFired prometheus.Counter
	timersRefired                prometheus.Counter
	timersPending                *pendingTimers
	started                      prometheus.Counter
	ended                        *prometheus.CounterVec
	cacheHits, cacheMisses       prometheus.Counter
	deadLetters                  *prometheus.CounterVec
	partitions                   prometheus.Gauge
	raiser                       *prometheus.CounterVec
}

// New creates jetflow's metrics and registers them on reg. It fails if reg holds them already
// (create one Metrics per registerer and share it).
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: no registerer")
	}
	m := newMetrics()
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering jetflow's metrics: %w", err)
		}
	}
	return m, nil
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
}

// durationBuckets span 1ms to about 16s.
var durationBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

func newMetrics() *Metrics {
	return &Metrics{
		turns:      counter("turns_total", "Orchestration turns committed."),
		turnErrors: counter("turn_errors_total", "Orchestration turns that failed and whose messages were handed back."),
		conflicts:  counter("commit_conflicts_total", "Turns lost to another writer at commit (retried on fresh state)."),
		turnDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "turn_duration_seconds",
			Help: "Duration of committed orchestration turns, from taking the work item to the commit.", Buckets: durationBuckets}),
		redeliveries:    counterVec("redeliveries_total", "Messages handed out again by JetStream (delivery count above 1).", "source"),
		eventsRaised:    counter("events_raised_total", "External events applied to running instances."),
		eventsBuffered:  counter("events_buffered_total", "External events applied while no wait for them was pending (kept for a later wait)."),
		eventsDiscarded: counterVec("events_discarded_total", "External events not applied, by reason.", "reason"),
		activities:      counterVec("activity_executions_total", "Activity executions, by activity and outcome.", "name", "outcome"),
		activityDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "activity_duration_seconds",
			Help: "Duration of activity executions, by activity and outcome.", Buckets: durationBuckets}, []string{"name", "outcome"}),
		timersScheduled: counter("timers_scheduled_total", "Durable timers scheduled."),
		timersFired:     counter("timers_fired_total", "Durable timers fired and applied to their instance."),
		timersRefired:   counter("timers_refired_total", "Durable timers the server had not fired well after their time, fired by a worker."),
		timersPending:   newPendingTimers(),
		started:         counter("instances_started_total", "Instances started (a new generation from a start message)."),
		ended:           counterVec("instances_ended_total", "Instances ended, by runtime status.", "status"),
		cacheHits:       counter("executor_cache_hits_total", "Turns that found their instance replayed in the executor cache."),
		cacheMisses:     counter("executor_cache_misses_total", "Turns that replayed their instance from its history."),
		deadLetters:     counterVec("dead_letters_total", "Messages dead-lettered, by source (inbox, activity, raiser) and reason class.", "source", "reason"),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "partitions_owned",
			Help: "Inbox partitions this worker reads."}),
		raiser: counterVec("raiser_messages_total", "Queue messages handled by the raiser, by queue and outcome.", "queue", "outcome"),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.turns, m.turnErrors, m.conflicts, m.turnDuration, m.redeliveries,
		m.eventsRaised, m.eventsBuffered, m.eventsDiscarded, m.activities, m.activityDuration,
		m.timersScheduled, m.timersFired, m.timersRefired, m.timersPending, m.started, m.ended,
		m.cacheHits, m.cacheMisses, m.deadLetters, m.partitions, m.raiser,
	}
}

// TurnCommitted records a committed turn that took d.
func (m *Metrics) TurnCommitted(d time.Duration) {
	if m != nil {
		m.turns.Inc()
		m.turnDuration.Observe(d.Seconds())
	}
}

// TurnFailed records a turn that failed for another reason than a conflict.
func (m *Metrics) TurnFailed() {
	if m != nil {
		m.turnErrors.Inc()
	}
}

// CommitConflict records a turn lost to another writer.
func (m *Metrics) CommitConflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

// Redelivered records a message of source (SourceInbox, SourceActivity) handed out again.
func (m *Metrics) Redelivered(source string) {
	if m != nil {
		m.redeliveries.WithLabelValues(source).Inc()
	}
}

// EventsRaised records n external events applied, of which buffered found no pending wait.
func (m *Metrics) EventsRaised(n, buffered int) {
	if m != nil {
		m.eventsRaised.Add(float64(n))
		m.eventsBuffered.Add(float64(buffered))
	}
}

// EventsDiscarded records n external events not applied, for reason (a Discard* constant).
func (m *Metrics) EventsDiscarded(reason string, n int) {
	if m != nil && n > 0 {
		m.eventsDiscarded.WithLabelValues(reason).Add(float64(n))
	}
}

// ActivityExecuted records an execution of activity name (a registered name) that took d.
func (m *Metrics) ActivityExecuted(name, outcome string, d time.Duration) {
	if m != nil {
		m.activities.WithLabelValues(name, outcome).Inc()
		m.activityDuration.WithLabelValues(name, outcome).Observe(d.Seconds())
	}
}

// TimersScheduled records n durable timers scheduled.
func (m *Metrics) TimersScheduled(n int) {
	if m != nil {
		m.timersScheduled.Add(float64(n))
	}
}

// TimersFired records n durable timers applied to their instances.
func (m *Metrics) TimersFired(n int) {
	if m != nil {
		m.timersFired.Add(float64(n))
	}
}

// TimerRefired records a durable timer that a worker fired because the server had not.
func (m *Metrics) TimerRefired() {
	if m != nil {
		m.timersRefired.Inc()
	}
}

// InstanceStarted records an instance started.
func (m *Metrics) InstanceStarted() {
	if m != nil {
		m.started.Inc()
	}
}

// InstanceEnded records an instance that ended with status (a runtime status).
func (m *Metrics) InstanceEnded(status string) {
	if m != nil {
		m.ended.WithLabelValues(status).Inc()
	}
}

// CacheLookup records an executor cache hit or miss.
func (m *Metrics) CacheLookup(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.cacheHits.Inc()
	default:
		m.cacheMisses.Inc()
	}
}

// DeadLettered records a message dead-lettered by source ("inbox", "activity", "raiser") for a
// reason class (a Reason* constant).
func (m *Metrics) DeadLettered(source, reason string) {
	if m != nil {
		m.deadLetters.WithLabelValues(source, reason).Inc()
	}
}

// PartitionsOwned sets the number of inbox partitions this worker reads.
func (m *Metrics) PartitionsOwned(n int) {
	if m != nil {
		m.partitions.Set(float64(n))
	}
}

// RaiserMessage records a raiser message of queue handled with outcome (a Raiser* constant).
func (m *Metrics) RaiserMessage(queue, outcome string) {
	if m != nil {
		m.raiser.WithLabelValues(queue, outcome).Inc()
	}
}

// SetTimersPendingSource sets the function that counts the durable timers scheduled and not yet
// fired, across all workers (the backend reads them from its store); jetflow_timers_pending
// reports its result, read at most every TimersPendingMaxAge. Without one the series is absent.
func (m *Metrics) SetTimersPendingSource(count func(context.Context) (int, error)) {
	if m != nil {
		m.timersPending.setSource(count)
	}
}

// TimersPendingMaxAge is how long a count of pending timers is reused by scrapes.
const TimersPendingMaxAge = 10 * time.Second

// timersPendingTimeout bounds one count of pending timers.
const timersPendingTimeout = 5 * time.Second

// pendingTimers is the collector of jetflow_timers_pending: it counts at scrape time, through
// the source the backend set, and caches the count for TimersPendingMaxAge.
type pendingTimers struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	source func(context.Context) (int, error)
	value  int
	at     time.Time
}

func newPendingTimers() *pendingTimers {
	return &pendingTimers{desc: prometheus.NewDesc(Namespace+"_timers_pending",
		"Durable timers scheduled and not yet fired, across all workers (read from the backend).", nil, nil)}
}

func (p *pendingTimers) setSource(count func(context.Context) (int, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.source, p.at = count, time.Time{}
}

// Describe implements prometheus.Collector.
func (p *pendingTimers) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector; when counting fails, the series is left out.
func (p *pendingTimers) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.source == nil {
		return
	}
	if time.Since(p.at) > TimersPendingMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), timersPendingTimeout)
		n, err := p.source(ctx)
		cancel()
		if err != nil {
			return
		}
		p.value, p.at = n, time.Now()
	}
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(p.value))
}
