package natsjs

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// ErrInvalidOption is wrapped by errors about bad options (it is backend.ErrInvalidOption).
var ErrInvalidOption = backend.ErrInvalidOption

// The defaults of the options below and the ranges they accept (DefaultPrefix is in names.go).
const (
	DefaultReplicas            = 1                                  // WithReplicas
	MaxReplicas                = 5                                  // WithReplicas: JetStream's limit
	DefaultMaxPayload          = backend.DefaultMaxPayload          // WithMaxPayload: 1 MiB
	DefaultDuplicateWindow     = 2 * time.Minute                    // WithDuplicateWindow
	DefaultInboxAckWait        = DefaultLeaseTTL                    // WithInboxAckWait: the lease TTL (WithLeaseTTL)
	DefaultActivityAckWait     = 30 * time.Second                   // WithActivityAckWait
	MinAckWait                 = time.Second                        // WithInboxAckWait, WithActivityAckWait
	DefaultActivityConcurrency = backend.DefaultActivityConcurrency // WithActivityConcurrency
	DefaultPartitions          = 16                                 // WithPartitions
	MaxPartitions              = 1024                               // WithPartitions
	DefaultLeaseTTL            = 4 * time.Second                    // WithLeaseTTL
	MinLeaseTTL                = 400 * time.Millisecond             // WithLeaseTTL
	MinRetention               = time.Second                        // WithRetention (0: off, the default)
	DefaultWorkerTTL           = 15 * time.Second                   // WithWorkerTTL
	MinWorkerTTL               = time.Second                        // WithWorkerTTL
)

// Settings without options.
const (
	fetchBatch    = 256                 // inbox messages a partition consumer pulls at once
	maxAckPending = 20000               // unacknowledged messages per consumer (a partition: a share, at least 1000)
	deadLetterAge = 14 * 24 * time.Hour // how long dead letters are kept
)

// Option configures New.
type Option func(*options) error

type options struct {
	prefix          string
	replicas        int
	maxPayload      int
	duplicateWindow time.Duration
	inboxAckWait    time.Duration
	activityAckWait time.Duration
	fetchBatch      int
	maxAckPending   int
	activityWorkers int
	deadLetterAge   time.Duration
	partitions      int
	leaseTTL        time.Duration
	retention       time.Duration // 0: ended instances are kept
	workerTTL       time.Duration
	log             zerolog.Logger
	metrics         *metrics.Metrics
}

func defaultOptions() options {
	return options{
		prefix:          DefaultPrefix,
		replicas:        DefaultReplicas,
		maxPayload:      DefaultMaxPayload,
		duplicateWindow: DefaultDuplicateWindow,
		inboxAckWait:    0, // the lease TTL, once the options are applied
		activityAckWait: DefaultActivityAckWait,
		fetchBatch:      fetchBatch,
		maxAckPending:   maxAckPending,
		activityWorkers: DefaultActivityConcurrency,
		deadLetterAge:   deadLetterAge,
		partitions:      DefaultPartitions,
		leaseTTL:        DefaultLeaseTTL,
		workerTTL:       DefaultWorkerTTL,
		log:             zerolog.Nop(),
	}
}

// CheckOptions returns the errors of opts (each wrapping ErrInvalidOption), as New would: it
// applies them to the defaults and does no I/O. A program can check its configuration with it
// before connecting.
func CheckOptions(opts ...Option) error {
	o := defaultOptions()
	var errs []error
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WithMetrics makes the backend record redeliveries, the dead letters it makes itself, the
// partitions it reads and (at scrape time, from the instance stream) the pending timers in m
// (default: none). Share m with the engine's worker (engine.WithMetrics).
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options) error { o.metrics = m; return nil }
}

// WithPrefix sets the prefix of every subject, stream, bucket and consumer (default "jetflow").
func WithPrefix(prefix string) Option {
	return func(o *options) error { o.prefix = prefix; return nil }
}

// WithReplicas sets the replica count of streams and buckets, 1..MaxReplicas (default
// DefaultReplicas, 1; 3 in a cluster).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxReplicas {
			return fmt.Errorf("%w: replicas must be 1..%d, got %d", ErrInvalidOption, MaxReplicas, n)
		}
		o.replicas = n
		return nil
	}
}

// WithMaxPayload sets the largest input, event or result accepted, in bytes, at least
// backend.MinMaxPayload (default DefaultMaxPayload, 1 MiB). Workers apply their own limit
// (engine.WithMaxPayload): configure both alike.
func WithMaxPayload(n int) Option {
	return func(o *options) error {
		if err := backend.CheckMaxPayload(n); err != nil {
			return err
		}
		o.maxPayload = n
		return nil
	}
}

// WithDuplicateWindow sets JetStream's deduplication window for published messages (default
// DefaultDuplicateWindow, 2m).
func WithDuplicateWindow(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: duplicate window must be > 0", ErrInvalidOption)
		}
		o.duplicateWindow = d
		return nil
	}
}

// WithInboxAckWait sets how long a delivered instance message may go without an ack or an
// extension before the server delivers it again, at least MinAckWait (default: the lease TTL,
// DefaultInboxAckWait unless WithLeaseTTL changes it). A worker extends the messages it holds every quarter
// of it, so this bounds how long a delivery lost on its way (a server failing over) waits.
func WithInboxAckWait(d time.Duration) Option {
	return func(o *options) error {
		if d < MinAckWait {
			return fmt.Errorf("%w: inbox ack wait must be >= %s, got %s", ErrInvalidOption, MinAckWait, d)
		}
		o.inboxAckWait = d
		return nil
	}
}

// WithActivityAckWait sets how long an activity may run without a heartbeat before its task is
// redelivered, at least MinAckWait (default DefaultActivityAckWait, 30s; running activities
// send heartbeats every third of it).
func WithActivityAckWait(d time.Duration) Option {
	return func(o *options) error {
		if d < MinAckWait {
			return fmt.Errorf("%w: activity ack wait must be >= %s, got %s", ErrInvalidOption, MinAckWait, d)
		}
		o.activityAckWait = d
		return nil
	}
}

// WithActivityConcurrency sets how many activity tasks one worker holds at once, ready for the
// activities it runs (default DefaultActivityConcurrency, 64; give the engine's
// WithActivityConcurrency the same value).
func WithActivityConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: activity concurrency must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.activityWorkers = n
		return nil
	}
}

// WithPartitions sets the number of partitions instances are spread over, 1..MaxPartitions
// (default DefaultPartitions, 16). Each
// partition is consumed by one worker at a time, so it bounds how many workers share the
// orchestration work. The count is fixed when the instance stream is created; New refuses to
// change it while the stream holds messages.
func WithPartitions(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxPartitions {
			return fmt.Errorf("%w: partitions must be 1..%d, got %d", ErrInvalidOption, MaxPartitions, n)
		}
		o.partitions = n
		return nil
	}
}

// WithLeaseTTL sets how long a worker may go without a heartbeat before the others take over
// its partitions, at least MinLeaseTTL (default DefaultLeaseTTL, 4s; heartbeats go every
// quarter of it).
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < MinLeaseTTL {
			return fmt.Errorf("%w: lease TTL must be >= %s, got %s", ErrInvalidOption, MinLeaseTTL, d)
		}
		o.leaseTTL = d
		return nil
	}
}

// WithRetention makes the workers of this backend purge every instance that ends d after it
// ended (retention.go), unless it was started again meanwhile; 0, the default, keeps ended
// instances until they are purged by hand. Set it on the workers' backends.
func WithRetention(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || (d > 0 && d < MinRetention) {
			return fmt.Errorf("%w: retention must be 0 (off) or >= %s, got %s", ErrInvalidOption, MinRetention, d)
		}
		o.retention = d
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(log zerolog.Logger) Option {
	return func(o *options) error { o.log = log; return nil }
}
