// Package natsjs implements backend.Backend on NATS JetStream.
//
// Layout (prefix "jetflow"):
//   - stream JETFLOW_INST, work queue, subjects jetflow.inst.> (every message addressed to an
//     instance) and jetflow.sched.> (durable timers, as scheduled messages that the server
//     publishes to jetflow.inst.<id>.timer when due). A subject transform files each instance
//     message under its partition: jetflow.inst.<id>.<kind> is stored as
//     jetflow.part.<p>.<id>.<kind>, and each partition is read by one worker at a time through
//     a consumer of its own (see partitions.go);
//   - stream JETFLOW_ACT, work queue, subjects jetflow.activity.<name>;
//   - stream JETFLOW_DLQ, limits, subjects jetflow.dlq.<reason>;
//   - stream JETFLOW_HIST, limits, one subject per instance, jetflow.hist.<id>: its pending
//     record and one record per committed turn, each with the state it leaves, so the last is
//     the instance's state (see history.go). A record is published with the subject's expected
//     last sequence, so that exactly one writer commits each turn;
//   - KV bucket jetflow-leases: worker heartbeats and partition ownership.
package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// fieldInstance is the log field of an instance ID.
const fieldInstance = "instance_id"

// Header names jetflow reads on instance messages.
const (
	// HeaderEventID carries a raised event's deduplication ID (Nats-Msg-Id works too; see
	// backend.EventID).
	HeaderEventID = backend.HeaderEventID
)

const defaultTimeout = 10 * time.Second

// Backend is the JetStream backend.
type Backend struct {
	js    jetstream.JetStream
	names Names
	opts  options
	log   zerolog.Logger
	inst  jetstream.Stream
	// hist is the history stream: every instance's records.
	hist jetstream.Stream
	// leases is the lease bucket; nil until a worker needs it (Open does not bind it).
	leases jetstream.KeyValue
	// direct reads the inbox with batched direct gets.
	direct *directGets
	// partitions is the instance stream's partition count.
	partitions int
	// epochs numbers the partition ownerships this backend takes, so that inboxMessage.epoch
	// is unique per exclusive consumer.
	epochs atomic.Uint64
	// items hands out orchestration work items; activities, activity work items.
	items      *workItems
	activities *activityItems
	// timerGuard fires the durable timers the server leaves unfired (timerguard.go).
	timerGuard *timerGuard
	// ackErrors counts acks the server did not confirm; conflicts, work items read again
	// because what a worker held was stale (see Stats).
	ackErrors, conflicts atomic.Uint64
}

// Stats counts what the backend's worker side met.
type Stats struct {
	// Conflicts counts work items built or completed on stale state and read again: another
	// worker had committed a turn, or applied a message, first.
	Conflicts uint64
	// AckErrors counts acks of messages that the server did not confirm (the message comes back
	// and is skipped as applied).
	AckErrors uint64
}

// Stats returns the backend's counters.
func (b *Backend) Stats() Stats {
	return Stats{Conflicts: b.conflicts.Load(), AckErrors: b.ackErrors.Load()}
}

var _ backend.Backend = (*Backend)(nil)

// New creates (or updates) jetflow's streams and buckets and returns a backend over them.
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Backend, error) {
	b, err := newBackend(js, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := checkPartitions(ctx, js, b.names.InstanceStream(), b.opts.partitions); err != nil {
		return nil, err
	}
	b.partitions = b.opts.partitions
	streams := map[string]jetstream.Stream{}
	for _, cfg := range streamConfigs(b.names, b.opts) {
		s, err := ensureStream(ctx, js, cfg)
		if err != nil {
			return nil, err
		}
		streams[cfg.Name] = s
	}
	b.inst, b.hist = streams[b.names.InstanceStream()], streams[b.names.HistoryStream()]
	if b.leases, err = b.leaseBucket(ctx); err != nil {
		return nil, err
	}
	if b.items.deliveries, err = b.deliveryBucket(ctx); err != nil {
		return nil, err
	}
	b.opts.metrics.SetTimersPendingSource(b.pendingTimers)
	return b, nil
}

// pendingTimers counts the timers scheduled and not yet fired: the scheduled messages under
// jetflow.sched.> (each timer is one, removed when it fires).
func (b *Backend) pendingTimers(ctx context.Context) (int, error) {
	info, err := b.inst.Info(ctx, jetstream.WithSubjectFilter(b.names.ScheduleSubjects()))
	if err != nil {
		return 0, fmt.Errorf("counting pending timers: %w", err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// Ready reports whether the backend can work: the connection to NATS is up and jetflow's
// instance, history and dead-letter streams exist. It makes one request per stream.
func (b *Backend) Ready(ctx context.Context) error {
	if nc := b.js.Conn(); nc == nil || !nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for _, name := range []string{b.names.InstanceStream(), b.names.HistoryStream(), b.names.DeadLetterStream()} {
		if _, err := b.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}

// ensureStream returns the stream of cfg, creating it or updating its configuration only when
// it differs in what jetflow sets: workers starting together then leave an existing stream alone
// (an update also makes the server pause the stream's consumers).
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if err == nil && sameStreamConfig(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("reading stream %s: %w", cfg.Name, err)
	}
	if s, err = js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// sameStreamConfig reports whether have has what want sets (the server fills in the rest).
func sameStreamConfig(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		(want.Duplicates == 0 || have.Duplicates == want.Duplicates) && have.MaxAge == want.MaxAge &&
		have.AllowDirect == want.AllowDirect && have.AllowMsgSchedules == want.AllowMsgSchedules &&
		reflect.DeepEqual(have.SubjectTransform, want.SubjectTransform)
}

// streamConfigs returns the configurations of jetflow's streams.
func streamConfigs(names Names, o options) []jetstream.StreamConfig {
	src, dest := names.PartitionTransform(o.partitions)
	return []jetstream.StreamConfig{{
		Name:              names.InstanceStream(),
		Description:       "jetflow: messages addressed to orchestration instances, and their timers",
		Subjects:          []string{names.InstanceSubjects(), names.ScheduleSubjects()},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          o.replicas,
		Duplicates:        o.duplicateWindow,
		AllowDirect:       true,
		AllowMsgSchedules: true,
		SubjectTransform:  &jetstream.SubjectTransformConfig{Source: src, Destination: dest},
	}, {
		Name:        names.ActivityStream(),
		Description: "jetflow: activity tasks",
		Subjects:    []string{names.ActivitySubjects()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		Duplicates:  o.duplicateWindow,
	}, {
		Name:        names.DeadLetterStream(),
		Description: "jetflow: messages that could not be processed, with the reason",
		Subjects:    []string{names.DeadLetterSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		MaxAge:      o.deadLetterAge,
		Duplicates:  o.duplicateWindow,
	}, {
		Name:        names.HistoryStream(),
		Description: "jetflow: instance records (pending, one per committed turn), the last being the state",
		Subjects:    []string{names.HistorySubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		AllowDirect: true,
	}}
}

// Open binds to jetflow's existing streams and buckets without changing them, which suits
// clients (it needs no admin permission and never alters the replica count); if any is missing,
// it provisions them as New does.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Backend, error) {
	b, err := newBackend(js, opts)
	if err != nil {
		return nil, err
	}
	names := b.names
	lctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	b.inst, err = js.Stream(lctx, names.InstanceStream())
	if err == nil {
		b.partitions = partitionCount(b.inst.CachedInfo().Config)
		if b.partitions == 0 {
			return New(ctx, js, opts...) // made by a jetflow without partitions
		}
	}
	if err == nil {
		b.hist, err = js.Stream(lctx, names.HistoryStream())
	}
	if err == nil {
		_, err = js.Stream(lctx, names.DeadLetterStream())
	}
	switch {
	case err == nil:
		b.opts.metrics.SetTimersPendingSource(b.pendingTimers)
		return b, nil
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
		return New(ctx, js, opts...)
	}
	return nil, fmt.Errorf("opening jetflow's streams: %w", err)
}

// newBackend applies opts and returns a backend not yet bound to its streams.
func newBackend(js jetstream.JetStream, opts []Option) (*Backend, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.inboxAckWait == 0 {
		o.inboxAckWait = o.leaseTTL
	}
	names, err := NewNames(o.prefix)
	if err != nil {
		return nil, err
	}
	b := &Backend{js: js, names: names, opts: o, log: o.log, direct: &directGets{nc: js.Conn()}}
	b.items = newWorkItems(b)
	b.activities = newActivityItems(b)
	b.timerGuard = newTimerGuard()
	return b, nil
}

var partitionRE = regexp.MustCompile(`\{\{\s*partition\(\s*(\d+)\s*,`)

// partitionCount returns the partition count of an instance stream's configuration, 0 if it has
// no partition transform.
func partitionCount(cfg jetstream.StreamConfig) int {
	if cfg.SubjectTransform == nil {
		return 0
	}
	m := partitionRE.FindStringSubmatch(cfg.SubjectTransform.Destination)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkPartitions refuses to change the partition count of an instance stream that holds
// messages: they would stay filed under partitions that no longer match their instances.
func checkPartitions(ctx context.Context, js jetstream.JetStream, stream string, want int) error {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", stream, err)
	}
	info := s.CachedInfo()
	have := partitionCount(info.Config)
	if have == want || info.State.Msgs == 0 {
		return nil
	}
	if have == 0 {
		return fmt.Errorf("%w: stream %s holds %d messages from a jetflow without partitions; let them drain or purge the stream first",
			ErrInvalidOption, stream, info.State.Msgs)
	}
	return fmt.Errorf("%w: stream %s has %d partitions, not %d, and holds %d messages; keep %d partitions or let the stream drain first",
		ErrInvalidOption, stream, have, want, info.State.Msgs, have)
}

// Partitions returns the number of instance partitions.
func (b *Backend) Partitions() int { return b.partitions }

// Names returns the backend's naming scheme.
func (b *Backend) Names() Names { return b.names }

// MaxPayload returns the largest payload the backend accepts.
func (b *Backend) MaxPayload() int { return b.opts.maxPayload }

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

func (b *Backend) idToken(id string) (string, error) { return EncodeInstanceID(id) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("natsjs: encoding %T: %v", v, err)) // only our own plain structs are encoded
	}
	return b
}

// isRevisionConflict reports whether a KV write or a publish with an expected last subject
// sequence failed because another write came first (ErrKeyExists on a single server; a
// replicated stream reports only the wrong-last-sequence API error, with a code of its own).
func isRevisionConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return true
		}
	}
	return false
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
