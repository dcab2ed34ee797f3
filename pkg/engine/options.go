package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// ErrInvalidOption is wrapped by errors about option values out of range (it is
// backend.ErrInvalidOption).
var ErrInvalidOption = backend.ErrInvalidOption

// WorkerOption configures a Worker.
type WorkerOption func(*workerOptions) error

type workerOptions struct {
	log         zerolog.Logger
	cacheSize   int
	concurrency int
	maxBatch    int
	maxPayload  int
	poisonAfter uint64
	// maxHistory and maxPending are the limits of limits.go.
	maxHistory, maxPending int
	drainGrace             time.Duration
	// activityConcurrency is how many activities run at once.
	activityConcurrency int
	noActivities        bool
	// skipActivities are registered activities this worker does not serve (WithoutActivity).
	skipActivities   []string
	noOrchestrations bool
	// metrics records what the worker does; nil records nothing.
	metrics *metrics.Metrics
	// startToClose bounds an activity attempt whose call set no StartToClose.
	startToClose time.Duration
	// tracerProvider and propagator trace turns and activities (tracing.go); nil: none.
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
}

// Defaults of the worker options, each changed by the option named beside it.
const (
	DefaultCacheSize           = 10000                              // WithCacheSize
	DefaultConcurrency         = 64                                 // WithConcurrency
	DefaultActivityConcurrency = backend.DefaultActivityConcurrency // WithActivityConcurrency
	DefaultMaxBatch            = 500                                // WithMaxBatch
	DefaultMaxPayload          = backend.DefaultMaxPayload          // WithMaxPayload: 1 MiB
	DefaultPoisonAfter         = 50                                 // WithPoisonAfter
	DefaultMaxHistoryEvents    = 50000                              // WithMaxHistoryEvents
	DefaultMaxPendingTasks     = 10000                              // WithMaxPendingTasks
	DefaultDrainGrace          = 10 * time.Second                   // WithDrainGrace
	// DefaultStartToClose bounds every activity attempt whose call set no StartToClose
	// (durable.WithStartToClose): WithDefaultStartToClose.
	DefaultStartToClose = 10 * time.Minute
)

// defaultWorkerOptions are the worker's options before WorkerOptions are applied.
func defaultWorkerOptions() workerOptions {
	return workerOptions{
		log:                 zerolog.Nop(),
		cacheSize:           DefaultCacheSize,
		concurrency:         DefaultConcurrency,
		activityConcurrency: DefaultActivityConcurrency,
		maxBatch:            DefaultMaxBatch,
		maxPayload:          DefaultMaxPayload,
		poisonAfter:         DefaultPoisonAfter,
		maxHistory:          DefaultMaxHistoryEvents,
		maxPending:          DefaultMaxPendingTasks,
		drainGrace:          DefaultDrainGrace,
		startToClose:        DefaultStartToClose,
	}
}

// CheckWorkerOptions returns the errors of opts (each wrapping ErrInvalidOption), as NewWorker
// would, without creating a worker. A program can check its configuration with it before
// connecting.
func CheckWorkerOptions(opts ...WorkerOption) error {
	o := defaultWorkerOptions()
	var errs []error
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WithLogger sets the worker's logger (default: discard).
func WithLogger(log zerolog.Logger) WorkerOption {
	return func(o *workerOptions) error { o.log = log; return nil }
}

// WithCacheSize bounds the number of running instances kept in memory between turns (default
// DefaultCacheSize, 10,000; 0 turns the cache off, so every turn replays the history).
func WithCacheSize(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 0 {
			return fmt.Errorf("%w: cache size must be >= 0, got %d", ErrInvalidOption, n)
		}
		o.cacheSize = n
		return nil
	}
}

// WithConcurrency sets how many instances the worker runs turns for at once (default
// DefaultConcurrency, 64).
func WithConcurrency(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: concurrency must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.concurrency = n
		return nil
	}
}

// WithMaxBatch sets the most messages of one instance applied in one turn (default
// DefaultMaxBatch, 500). A turn also stops taking messages at backend.MaxTurnBytes of payload.
func WithMaxBatch(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max batch must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.maxBatch = n
		return nil
	}
}

// WithMaxPayload sets the largest event, result or input the worker applies, in bytes, at least
// backend.MinMaxPayload; bigger messages are dead-lettered (default DefaultMaxPayload, 1 MiB).
// Clients refuse bigger data by the backend's own limit (natsjs.WithMaxPayload): configure both
// alike.
func WithMaxPayload(n int) WorkerOption {
	return func(o *workerOptions) error {
		if err := backend.CheckMaxPayload(n); err != nil {
			return err
		}
		o.maxPayload = n
		return nil
	}
}

// WithPoisonAfter sets how many times a message of an instance may be taken without being
// applied (the worker that took it stopped, or the backend could not commit) before it is
// dead-lettered and the instance fails with type FailurePoisonMessage (default
// DefaultPoisonAfter, 50). Backends count deliveries across workers and restarts. An activity
// task delivered more often than that without an answer is not run again: it is answered with a
// failure of type FailurePoisonMessage.
func WithPoisonAfter(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: poison after must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.poisonAfter = uint64(n)
		return nil
	}
}

// WithMaxHistoryEvents sets the most events one generation's history may hold (default
// DefaultMaxHistoryEvents, 50,000; at least 100). From 80% of it, the log and the instance's
// status warn and suggest ContinueAsNew; a turn that would pass it fails the instance with
// type FailureHistoryTooLong. Clients judge the warning by the default.
func WithMaxHistoryEvents(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 100 {
			return fmt.Errorf("%w: max history events must be >= 100, got %d", ErrInvalidOption, n)
		}
		o.maxHistory = n
		return nil
	}
}

// WithMaxPendingTasks sets the most activities, timers and sub-orchestrations one instance may
// wait for at once (default DefaultMaxPendingTasks, 10,000); a turn that would schedule more
// fails the instance with type FailureTooManyPendingTasks.
func WithMaxPendingTasks(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: max pending tasks must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.maxPending = n
		return nil
	}
}

// WithDrainGrace sets how long the activities running when the worker is asked to stop (its
// context ends) may go on to finish (default DefaultDrainGrace, 10s; 0 cancels them at once).
// The worker takes no new work once asked to stop; turns that have begun always finish. An
// activity still running after the grace period has its context cancelled and its task handed
// back, so that another worker runs it.
func WithDrainGrace(d time.Duration) WorkerOption {
	return func(o *workerOptions) error {
		if d < 0 {
			return fmt.Errorf("%w: drain grace must be >= 0, got %s", ErrInvalidOption, d)
		}
		o.drainGrace = d
		return nil
	}
}

// WithActivityConcurrency sets how many activities the worker runs at once (default
// DefaultActivityConcurrency, 64).
func WithActivityConcurrency(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: activity concurrency must be >= 1, got %d", ErrInvalidOption, n)
		}
		o.activityConcurrency = n
		return nil
	}
}

// WithoutActivities makes the worker run orchestrations only.
func WithoutActivities() WorkerOption {
	return func(o *workerOptions) error { o.noActivities = true; return nil }
}

// WithoutOrchestrations makes the worker run activities only.
func WithoutOrchestrations() WorkerOption {
	return func(o *workerOptions) error { o.noOrchestrations = true; return nil }
}

// WithMetrics makes the worker record its turns, activities, events, timers, instances, cache
// lookups and dead letters in m (see package metrics; default: none). Several workers may share
// one Metrics.
func WithMetrics(m *metrics.Metrics) WorkerOption {
	return func(o *workerOptions) error { o.metrics = m; return nil }
}

// WithDefaultStartToClose bounds each attempt of an activity whose call set no StartToClose
// (durable.WithStartToClose) to d from when this worker starts it (default DefaultStartToClose,
// 10 minutes). When it passes, the activity's context is cancelled and the attempt fails with
// type history.FailureStartToCloseTimeout.
func WithDefaultStartToClose(d time.Duration) WorkerOption {
	return func(o *workerOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: default StartToClose must be > 0, got %s", ErrInvalidOption, d)
		}
		o.startToClose = d
		return nil
	}
}

// WithoutActivity makes the worker leave the tasks of the named activities to other workers
// (another process, or a worker in another language: docs/wire.md), although they are
// registered with it.
func WithoutActivity(names ...string) WorkerOption {
	return func(o *workerOptions) error {
		o.skipActivities = append(o.skipActivities, names...)
		return nil
	}
}
