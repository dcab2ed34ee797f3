package natsjs

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// ErrInvalidOption is wrapped by errors about bad options.
var ErrInvalidOption = errors.New("invalid option")

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
	log             zerolog.Logger
}

func defaultOptions() options {
	return options{
		prefix:          DefaultPrefix,
		replicas:        1,
		maxPayload:      1 << 20,
		duplicateWindow: 2 * time.Minute,
		inboxAckWait:    30 * time.Second,
		activityAckWait: 30 * time.Second,
		fetchBatch:      256,
		maxAckPending:   20000,
		activityWorkers: 64,
		deadLetterAge:   14 * 24 * time.Hour,
		partitions:      DefaultPartitions,
		leaseTTL:        4 * time.Second,
		log:             zerolog.Nop(),
	}
}

// WithPrefix sets the prefix of every subject, stream, bucket and consumer (default "jetflow").
func WithPrefix(prefix string) Option {
	return func(o *options) error { o.prefix = prefix; return nil }
}

// WithReplicas sets the replica count of streams and buckets (default 1; 3 in a cluster).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("%w: replicas must be 1..5, got %d", ErrInvalidOption, n)
		}
		o.replicas = n
		return nil
	}
}

// WithMaxPayload sets the largest input, event or result accepted, in bytes (default 1 MiB).
func WithMaxPayload(n int) Option {
	return func(o *options) error {
		if n < 1024 {
			return fmt.Errorf("%w: max payload must be >= 1024 bytes, got %d", ErrInvalidOption, n)
		}
		o.maxPayload = n
		return nil
	}
}

// WithDuplicateWindow sets JetStream's deduplication window for published messages (default 2m).
func WithDuplicateWindow(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: duplicate window must be > 0", ErrInvalidOption)
		}
		o.duplicateWindow = d
		return nil
	}
}

// WithInboxAckWait sets how long an instance message stays unacknowledged before it is
// redelivered to another worker (default 30s).
func WithInboxAckWait(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("%w: inbox ack wait must be >= 1s", ErrInvalidOption)
		}
		o.inboxAckWait = d
		return nil
	}
}

// WithActivityAckWait sets how long an activity may run without a heartbeat before its task is
// redelivered (default 30s; running activities send heartbeats every third of it).
func WithActivityAckWait(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("%w: activity ack wait must be >= 1s", ErrInvalidOption)
		}
		o.activityAckWait = d
		return nil
	}
}

// WithActivityConcurrency sets how many activities one worker runs at once (default 64).
func WithActivityConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: activity concurrency must be >= 1", ErrInvalidOption)
		}
		o.activityWorkers = n
		return nil
	}
}

// DefaultPartitions is the number of instance partitions unless WithPartitions says otherwise.
const DefaultPartitions = 16

// WithPartitions sets the number of partitions instances are spread over (default 16). Each
// partition is consumed by one worker at a time, so it bounds how many workers share the
// orchestration work. The count is fixed when the instance stream is created; New refuses to
// change it while the stream holds messages.
func WithPartitions(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("%w: partitions must be 1..1024, got %d", ErrInvalidOption, n)
		}
		o.partitions = n
		return nil
	}
}

// WithLeaseTTL sets how long a worker may go without a heartbeat before the others take over
// its partitions (default 4s; heartbeats go every quarter of it).
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 400*time.Millisecond {
			return fmt.Errorf("%w: lease TTL must be >= 400ms, got %s", ErrInvalidOption, d)
		}
		o.leaseTTL = d
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(log zerolog.Logger) Option {
	return func(o *options) error { o.log = log; return nil }
}
