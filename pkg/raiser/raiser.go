// Package raiser raises events on orchestration instances from queue messages: the Durable
// Functions pattern of a queue-triggered function that calls RaiseEventAsync.
//
// Each configured Queue is a JetStream subject captured by a work-queue stream. A Raiser reads it
// through a durable pull consumer, so several raiser processes share a queue's messages, and acks
// a message only once engine.Client.RaiseEvent has accepted its event. A queue carries one of two
// message shapes:
//
//   - With Queue.Event set, the body is an instance ID, and the queue raises Event with Data on it
//     (for example approval-queue raising "Approval" with true).
//   - Without Queue.Event, the body is a JSON notification
//     {"instanceId": "...", "eventName": "...", "eventData": ...} (eventData defaults to null).
//
// The event ID that deduplicates a raised event is the message's Jetflow-Event-Id header, else
// its Nats-Msg-Id header (backend.EventID, the rule of every path that raises events), else
// "<stream>:<sequence>" of the queue message (so a redelivered message is applied once).
// docs/wire.md documents these and the dead-letter record.
//
// A message that can never be raised (an empty or non-UTF-8 body, bad JSON, missing fields,
// invalid names) is published as a backend.DeadLetter record to DeadLetterSubject and acked. So is an event
// for an instance that does not exist or has ended, unless Config.OnUnknown is OnUnknownDrop: then
// it is logged, counted and acked. Other errors (timeouts, a lost connection) naks the message
// with a delay so that it is tried again.
package raiser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

const (
	// DefaultStream is the stream that captures the queues when Queue.Stream is empty.
	DefaultStream = "JETFLOW_QUEUES"
	// DeadLetterSubject receives a backend.DeadLetter record for each message that cannot be raised. The
	// JETFLOW_DLQ stream created by the natsjs backend captures it.
	DeadLetterSubject = "jetflow.dlq.raiser"
	// HeaderEventID is the header that sets a message's event ID; it wins over Nats-Msg-Id.
	HeaderEventID = backend.HeaderEventID

	// OnUnknownDeadLetter dead-letters events for unknown or ended instances (the default).
	OnUnknownDeadLetter = "deadletter"
	// OnUnknownDrop logs, counts and drops them, as Durable Functions does.
	OnUnknownDrop = "drop"
)

// ErrInvalidConfig is returned by New for a Config or option that cannot be used.
var ErrInvalidConfig = errors.New("invalid raiser config")

// Queue is one queue the raiser consumes.
type Queue struct {
	// Name is the queue: the subject messages are published to, e.g. "approval-queue".
	Name string `json:"name"`
	// Stream captures the queue (default DefaultStream). The raiser creates it if it is missing, as
	// a work-queue stream on file storage, and adds Name to its subjects if needed.
	Stream string `json:"stream,omitempty"`
	// Event, if set, makes the body an instance ID to raise Event on; else the body is a
	// notification {"instanceId", "eventName", "eventData"}.
	Event string `json:"event,omitempty"`
	// Data is the event data raised with Event (JSON; default null). Only with Event.
	Data json.RawMessage `json:"data,omitempty"`
	// Consumer is the durable consumer's name (default "raiser-" + Name, with '.', '*', '>' and
	// white space replaced by '_'). Raisers using the same name share the messages.
	Consumer string `json:"consumer,omitempty"`
}

// Config lists the queues and says what happens to events for unknown instances.
type Config struct {
	Queues []Queue `json:"queues"`
	// OnUnknown is OnUnknownDeadLetter (default) or OnUnknownDrop; it applies to events for
	// instances that do not exist or have ended. Malformed messages are always dead-lettered.
	OnUnknown string `json:"onUnknown,omitempty"`
}

// Stats counts what a Raiser did with the messages it received.
type Stats struct {
	Raised       uint64 // events raised (and messages acked)
	DeadLettered uint64 // messages published to DeadLetterSubject
	Dropped      uint64 // events for unknown or ended instances dropped (OnUnknownDrop)
	Retried      uint64 // messages nak'ed after a transient error
}

// Option configures New.
type Option func(*options) error

type options struct {
	log      zerolog.Logger
	nakDelay time.Duration
	replicas int
	batch    int
	timeout  time.Duration
	dlq      string
	metrics  *metrics.Metrics
	// tracerProvider and propagator trace each message (tracing.go); nil: none.
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
}

// WithLogger sets the logger (default: disabled).
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithMetrics makes the raiser count its messages by queue and outcome, and its dead letters by
// reason class, in m (default: none).
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) error { o.metrics = m; return nil }
}

// WithNakDelay sets how long a message waits before redelivery after a transient error (default
// 2s).
func WithNakDelay(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: nak delay must be > 0", ErrInvalidConfig)
		}
		o.nakDelay = d
		return nil
	}
}

// WithReplicas sets the replicas of streams the raiser creates, 1..5 (default 1).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("%w: replicas must be 1..5, got %d", ErrInvalidConfig, n)
		}
		o.replicas = n
		return nil
	}
}

// WithBatch sets how many messages of a queue a raiser holds at once (default 16). A small batch
// spreads the messages more evenly over raisers sharing a queue.
func WithBatch(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: batch must be >= 1, got %d", ErrInvalidConfig, n)
		}
		o.batch = n
		return nil
	}
}

// WithTimeout bounds each RaiseEvent and dead-letter publish (default 10s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout must be > 0", ErrInvalidConfig)
		}
		o.timeout = d
		return nil
	}
}

// WithDeadLetterSubject sets the subject of dead letters (default DeadLetterSubject); use it when
// the backend has another subject prefix than "jetflow".
func WithDeadLetterSubject(subject string) Option {
	return func(o *options) error {
		if subject == "" || strings.ContainsAny(subject, " \t\r\n*>") {
			return fmt.Errorf("%w: dead-letter subject %q", ErrInvalidConfig, subject)
		}
		o.dlq = subject
		return nil
	}
}

// Raiser consumes the queues and raises their events. Create it with New and call Run.
type Raiser struct {
	js     jetstream.JetStream
	client *engine.Client
	cfg    Config
	opt    options

	setupDone                              atomic.Bool
	raised, deadLettered, dropped, retried atomic.Uint64
	tracing                                *tracing.Tracing // nil: off
}

// New checks cfg and returns a Raiser over js that raises events through client. It does no I/O.
func New(js jetstream.JetStream, client *engine.Client, cfg Config, opts ...Option) (*Raiser, error) {
	o := options{log: zerolog.Nop(), nakDelay: 2 * time.Second, replicas: 1, batch: 16, timeout: 10 * time.Second, dlq: DeadLetterSubject}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if js == nil || client == nil {
		return nil, fmt.Errorf("%w: JetStream and client are required", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Raiser{js: js, client: client, cfg: cfg, opt: o, tracing: tracing.New(o.tracerProvider, o.propagator)}, nil
}

// Validate reports the first problem with c: no queues, a queue without a name or with a name
// used twice, data that is not JSON or is given without an event, or an unknown OnUnknown.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns a copy of c with defaults filled in, or the first problem with it.
func (c Config) withDefaults() (Config, error) {
	switch c.OnUnknown {
	case "":
		c.OnUnknown = OnUnknownDeadLetter
	case OnUnknownDeadLetter, OnUnknownDrop:
	default:
		return Config{}, invalid("onUnknown must be %q or %q, got %q", OnUnknownDeadLetter, OnUnknownDrop, c.OnUnknown)
	}
	if len(c.Queues) == 0 {
		return Config{}, invalid("no queues")
	}
	queues := make([]Queue, len(c.Queues))
	seen := map[string]bool{}      // queue names
	consumers := map[string]bool{} // stream/consumer
	for i, q := range c.Queues {
		if !isSubject(q.Name) {
			return Config{}, invalid("queue %d: name %q is not a NATS subject", i+1, q.Name)
		}
		if seen[q.Name] {
			return Config{}, invalid("queue %q is listed twice", q.Name)
		}
		seen[q.Name] = true
		q, err := q.withStreamAndConsumer()
		if err != nil {
			return Config{}, err
		}
		if consumers[q.Stream+"/"+q.Consumer] {
			return Config{}, invalid("queue %q: consumer %q is used by another queue of stream %s", q.Name, q.Consumer, q.Stream)
		}
		consumers[q.Stream+"/"+q.Consumer] = true
		if queues[i], err = q.withEventData(); err != nil {
			return Config{}, err
		}
	}
	c.Queues = queues
	return c, nil
}

// invalid returns an ErrInvalidConfig that says what is wrong.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// isSubject reports whether name can be a queue's subject: not empty, without whitespace or
// empty tokens.
func isSubject(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t\r\n") && !strings.HasPrefix(name, ".") &&
		!strings.HasSuffix(name, ".") && !strings.Contains(name, "..")
}

// withStreamAndConsumer returns q with its stream (DefaultStream) and consumer ("raiser-" and
// the queue name) defaulted, or an error if either is not a valid name.
func (q Queue) withStreamAndConsumer() (Queue, error) {
	if q.Stream == "" {
		q.Stream = DefaultStream
	}
	if strings.ContainsAny(q.Stream, " \t\r\n.*>/\\") {
		return q, invalid("queue %q: stream name %q", q.Name, q.Stream)
	}
	if q.Consumer == "" {
		q.Consumer = "raiser-" + strings.Map(func(r rune) rune {
			switch r {
			case '.', '*', '>', ' ', '\t', '\r', '\n', '/', '\\':
				return '_'
			}
			return r
		}, q.Name)
	}
	if strings.ContainsAny(q.Consumer, " \t\r\n.*>/\\") {
		return q, invalid("queue %q: consumer name %q", q.Name, q.Consumer)
	}
	return q, nil
}

// withEventData returns q with its data (for an event: null unless given) copied, or an error
// for data without an event, an event name that RaiseEvent refuses, or data that is not JSON.
func (q Queue) withEventData() (Queue, error) {
	if q.Event == "" {
		if len(q.Data) > 0 {
			return q, invalid("queue %q: data given without an event", q.Name)
		}
		return q, nil
	}
	// The rule RaiseEvent applies (history.CheckName): an event it would refuse would make
	// every message of the queue a dead letter.
	if err := history.CheckName("event name", q.Event); err != nil {
		return q, invalid("queue %q: %v", q.Name, err)
	}
	if len(q.Data) == 0 {
		q.Data = json.RawMessage("null")
	}
	if !json.Valid(q.Data) {
		return q, invalid("queue %q: data %q is not valid JSON", q.Name, q.Data)
	}
	q.Data = append(json.RawMessage(nil), q.Data...)
	return q, nil
}

// Config returns the configuration with its defaults filled in.
func (r *Raiser) Config() Config { return r.cfg }

// Stats returns the counters so far. It is safe to call while Run runs.
func (r *Raiser) Stats() Stats {
	return Stats{
		Raised:       r.raised.Load(),
		DeadLettered: r.deadLettered.Load(),
		Dropped:      r.dropped.Load(),
		Retried:      r.retried.Load(),
	}
}

// Setup creates the queue streams (or adds missing queues to their subjects) and the durable
// consumers. Run does it too; call Setup first to have the queues in place before Run starts,
// e.g. before telling users to publish. It is idempotent and safe to run in several processes.
func (r *Raiser) Setup(ctx context.Context) error {
	if err := r.setup(ctx); err != nil {
		return err
	}
	r.setupDone.Store(true)
	return nil
}

// Run creates the streams and consumers (idempotently, unless Setup did) and consumes the queues until
// ctx ends; then it returns nil once the messages in hand are settled. It returns an error if the
// streams or consumers cannot be set up.
func (r *Raiser) Run(ctx context.Context) error {
	if !r.setupDone.Load() {
		if err := r.setup(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while setting up
			}
			return err
		}
	}
	var wg sync.WaitGroup
	for _, q := range r.cfg.Queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.consume(ctx, q)
		}()
	}
	r.opt.log.Info().Int("queues", len(r.cfg.Queues)).Msg("raiser running")
	wg.Wait()
	return nil
}

// setup creates or extends the streams and creates the consumers.
func (r *Raiser) setup(ctx context.Context) error {
	subjects := map[string][]string{} // stream → queue names
	var streams []string
	for _, q := range r.cfg.Queues {
		if _, ok := subjects[q.Stream]; !ok {
			streams = append(streams, q.Stream)
		}
		subjects[q.Stream] = append(subjects[q.Stream], q.Name)
	}
	for _, s := range streams {
		if err := r.ensureStream(ctx, s, subjects[s]); err != nil {
			return err
		}
	}
	for _, q := range r.cfg.Queues {
		if _, err := r.ensureConsumer(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// ensureStream creates stream name capturing subjects, or adds the missing subjects to it. Several
// raisers may do this at once: a lost race is retried.
func (r *Raiser) ensureStream(ctx context.Context, name string, subjects []string) error {
	var err error
	for range 5 {
		if err = r.tryEnsureStream(ctx, name, subjects); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && !errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
	}
	return fmt.Errorf("setting up queue stream %s: %w", name, err)
}

func (r *Raiser) tryEnsureStream(ctx context.Context, name string, subjects []string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.timeout)
	defer cancel()
	s, err := r.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "jetflow queues: messages that raise events on orchestration instances",
			Subjects:    subjects,
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    r.opt.replicas,
		})
		if err == nil {
			r.opt.log.Info().Str("stream", name).Strs("subjects", subjects).Msg("created queue stream")
		}
		return err
	}
	if err != nil {
		return err
	}
	sc := s.CachedInfo().Config
	have := map[string]bool{}
	for _, sub := range sc.Subjects {
		have[sub] = true
	}
	added := false
	for _, sub := range subjects {
		if !have[sub] {
			sc.Subjects = append(sc.Subjects, sub)
			added = true
		}
	}
	if !added {
		return nil
	}
	if _, err := r.js.UpdateStream(ctx, sc); err != nil {
		return err
	}
	r.opt.log.Info().Str("stream", name).Strs("subjects", sc.Subjects).Msg("added queues to stream")
	return nil
}

func (r *Raiser) ensureConsumer(ctx context.Context, q Queue) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opt.timeout)
	defer cancel()
	c, err := r.js.CreateOrUpdateConsumer(ctx, q.Stream, jetstream.ConsumerConfig{
		Durable:       q.Consumer,
		Description:   "jetflow raiser for queue " + q.Name,
		FilterSubject: q.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       max(30*time.Second, 3*r.opt.timeout),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("setting up consumer %s for queue %s: %w", q.Consumer, q.Name, err)
	}
	return c, nil
}

// consume handles q's messages until ctx ends, reopening the consumer if it goes away.
func (r *Raiser) consume(ctx context.Context, q Queue) {
	log := r.opt.log.With().Str("queue", q.Name).Logger()
	for ctx.Err() == nil {
		err := r.consumeOnce(ctx, q, log)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Dur("retry_in", r.opt.nakDelay).Msg("queue consumer stopped; reopening")
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.opt.nakDelay):
		}
	}
}

func (r *Raiser) consumeOnce(ctx context.Context, q Queue, log zerolog.Logger) error {
	c, err := r.ensureConsumer(ctx, q)
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(r.opt.batch))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		switch {
		case err == nil:
			r.handleTraced(ctx, q, msg, log) // tracing.go
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return err
		default:
			log.Debug().Err(err).Msg("reading the queue")
		}
	}
}

// permanentError is a message that can never be raised.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

func permanent(format string, args ...any) error {
	return &permanentError{reason: fmt.Sprintf(format, args...)}
}

// event is what a message asks to raise.
type event struct {
	instanceID string
	name       string
	data       json.RawMessage
	id         string
}

// parse turns a message into an event, or returns a *permanentError.
func parse(q Queue, msg jetstream.Msg, meta *jetstream.MsgMetadata) (event, error) {
	body := msg.Data()
	if !utf8.Valid(body) {
		return event{}, permanent("body is not valid UTF-8")
	}
	ev := event{id: eventID(msg, meta)}
	if q.Event != "" {
		ev.instanceID = strings.TrimSpace(string(body))
		if ev.instanceID == "" {
			return event{}, permanent("body is empty; want an instance ID")
		}
		ev.name, ev.data = q.Event, q.Data
		return ev, nil
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return event{}, permanent(`body is empty; want {"instanceId": ..., "eventName": ..., "eventData": ...}`)
	}
	var n struct {
		InstanceID string          `json:"instanceId"`
		EventName  string          `json:"eventName"`
		EventData  json.RawMessage `json:"eventData"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return event{}, permanent("body is not a notification object: %v", err)
	}
	switch {
	case n.InstanceID == "":
		return event{}, permanent("notification has no instanceId")
	case n.EventName == "":
		return event{}, permanent("notification has no eventName")
	}
	ev.instanceID, ev.name, ev.data = n.InstanceID, n.EventName, n.EventData
	if len(ev.data) == 0 {
		ev.data = json.RawMessage("null")
	}
	return ev, nil
}

// eventID is the event ID in the message's headers (backend.EventID: Jetflow-Event-Id, else
// Nats-Msg-Id), else <stream>:<seq>.
func eventID(msg jetstream.Msg, meta *jetstream.MsgMetadata) string {
	if id := backend.EventID(msg.Headers().Get); id != "" {
		return id
	}
	return fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
}

// handle raises msg's event and settles the message: ack, dead-letter and ack, or nak.
func (r *Raiser) handle(ctx context.Context, q Queue, msg jetstream.Msg, log zerolog.Logger) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: it cannot be acked either.
		log.Warn().Err(err).Msg("message without JetStream metadata")
		return
	}
	log = log.With().Uint64("seq", meta.Sequence.Stream).Logger()
	ev, err := parse(q, msg, meta)
	if err == nil {
		log = log.With().Str("instance_id", ev.instanceID).Str("event_name", ev.name).Str("event_id", ev.id).Logger()
		rctx, cancel := context.WithTimeout(ctx, r.opt.timeout)
		err = r.client.RaiseEvent(rctx, ev.instanceID, ev.name, ev.data, engine.WithEventID(ev.id))
		cancel()
	}
	switch outcomeOf(err) {
	case raised:
		r.raised.Add(1)
		r.opt.metrics.RaiserMessage(q.Name, metrics.RaiserRaised)
		log.Debug().Msg("raised")
		r.ack(ctx, msg, log)
	case unraisable:
		r.deadLetter(ctx, q, msg, meta, deadLetterClass(err), err.Error(), log)
	case unknownInstance:
		reason := fmt.Sprintf("raising %q on %q: %v", ev.name, ev.instanceID, err)
		if r.cfg.OnUnknown == OnUnknownDrop {
			r.dropped.Add(1)
			r.opt.metrics.RaiserMessage(q.Name, metrics.RaiserDropped)
			log.Warn().Str("reason", reason).Msg("dropped an event for an unknown or ended instance")
			r.ack(ctx, msg, log)
			return
		}
		r.deadLetter(ctx, q, msg, meta, deadLetterClass(err), reason, log)
	default:
		r.retry(ctx, q, msg, err, log)
	}
}

// outcome is what becomes of a message, by the error of its parse or raise.
type outcome int

const (
	raised          outcome = iota // acked
	unraisable                     // it never can be: dead-lettered and acked
	unknownInstance                // the instance does not exist or has ended: by Config.OnUnknown
	transient                      // nak'ed, to be tried again
)

// outcomeOf classifies err, which parse or RaiseEvent returned (nil: raised).
func outcomeOf(err error) outcome {
	var perm *permanentError
	switch {
	case err == nil:
		return raised
	case errors.As(err, &perm), errors.Is(err, engine.ErrInvalidName), errors.Is(err, engine.ErrBadPayload),
		errors.Is(err, engine.ErrPayloadTooLarge):
		return unraisable
	case errors.Is(err, engine.ErrInstanceNotFound), errors.Is(err, engine.ErrInstanceEnded):
		return unknownInstance
	}
	return transient
}

// deadLetterClass is the reason class of a message dead-lettered for err (the reason label of
// jetflow_dead_letters_total).
func deadLetterClass(err error) string {
	switch {
	case errors.Is(err, engine.ErrPayloadTooLarge):
		return metrics.ReasonPayloadTooLarge
	case errors.Is(err, engine.ErrInstanceNotFound):
		return metrics.ReasonInstanceNotFound
	case errors.Is(err, engine.ErrInstanceEnded):
		return metrics.ReasonInstanceEnded
	}
	return metrics.ReasonInvalidMessage // malformed: body, JSON, names, data
}

func (r *Raiser) ack(ctx context.Context, msg jetstream.Msg, log zerolog.Logger) {
	actx, cancel := context.WithTimeout(ctx, r.opt.timeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		// The message comes back after AckWait; its event ID makes raising it again harmless.
		log.Warn().Err(err).Msg("acking a message")
	}
}

func (r *Raiser) retry(ctx context.Context, q Queue, msg jetstream.Msg, cause error, log zerolog.Logger) {
	r.retried.Add(1)
	r.opt.metrics.RaiserMessage(q.Name, metrics.RaiserRetried)
	delay := r.opt.nakDelay
	if ctx.Err() != nil {
		delay = 0 // shutting down: let another raiser take it at once
	}
	log.Warn().Err(cause).Dur("retry_in", delay).Msg("raising failed; will retry")
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		log.Warn().Err(err).Msg("nak'ing a message")
	}
}

// deadLetter publishes a backend.DeadLetter record for msg and acks it; if publishing fails, msg is nak'ed.
func (r *Raiser) deadLetter(ctx context.Context, q Queue, msg jetstream.Msg, meta *jetstream.MsgMetadata, class, reason string, log zerolog.Logger) {
	rec := backend.NewDeadLetter("raiser", msg.Subject(), meta.Sequence.Stream, msg.Data(), reason)
	rec.Queue = q.Name
	body, err := json.Marshal(rec)
	if err != nil {
		r.retry(ctx, q, msg, err, log)
		return
	}
	dl := nats.NewMsg(r.opt.dlq)
	dl.Data = body
	dl.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:raiser:%s:%d", meta.Stream, meta.Sequence.Stream))
	pctx, cancel := context.WithTimeout(ctx, r.opt.timeout)
	_, err = r.js.PublishMsg(pctx, dl)
	cancel()
	if err != nil {
		r.retry(ctx, q, msg, fmt.Errorf("dead-lettering (%s): %w", reason, err), log)
		return
	}
	r.deadLettered.Add(1)
	r.opt.metrics.RaiserMessage(q.Name, metrics.RaiserDeadLettered)
	r.opt.metrics.DeadLettered("raiser", class)
	log.Warn().Str("reason", reason).Msg("dead-lettered")
	r.ack(ctx, msg, log)
}
