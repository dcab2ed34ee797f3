package engine

import (
	"fmt"

	"github.com/rs/zerolog"
)

// WorkerOption configures a Worker.
type WorkerOption func(*workerOptions) error

type workerOptions struct {
	log         zerolog.Logger
	cacheSize   int
	concurrency int
	maxBatch    int
	maxPayload  int
	poisonAfter uint64
	// activityConcurrency is how many activities run at once.
	activityConcurrency int
	noActivities        bool
	noOrchestrations    bool
}

// Defaults of the worker options.
const (
	DefaultCacheSize           = 10000
	DefaultConcurrency         = 64
	DefaultActivityConcurrency = 64
	DefaultMaxBatch            = 500
	// DefaultPoisonAfter is how many deliveries of a message a worker tries before it
	// dead-letters the message.
	DefaultPoisonAfter = 50
)

func defaultWorkerOptions() workerOptions {
	return workerOptions{
		log:                 zerolog.Nop(),
		cacheSize:           DefaultCacheSize,
		concurrency:         DefaultConcurrency,
		activityConcurrency: DefaultActivityConcurrency,
		maxBatch:            DefaultMaxBatch,
		maxPayload:          1 << 20,
		poisonAfter:         DefaultPoisonAfter,
	}
}

// WithLogger sets the worker's logger (default: discard).
func WithLogger(log zerolog.Logger) WorkerOption {
	return func(o *workerOptions) error { o.log = log; return nil }
}

// WithCacheSize bounds the number of running instances kept in memory between turns (default
// 10,000; 0 turns the cache off, so every turn replays the history).
func WithCacheSize(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 0 {
			return fmt.Errorf("cache size must be >= 0, got %d", n)
		}
		o.cacheSize = n
		return nil
	}
}

// WithConcurrency sets how many instances the worker runs turns for at once (default 64).
func WithConcurrency(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be >= 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithMaxBatch sets the most messages of one instance applied in one turn (default 500).
func WithMaxBatch(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("max batch must be >= 1, got %d", n)
		}
		o.maxBatch = n
		return nil
	}
}

// WithMaxPayload sets the largest event, result or input the worker applies; bigger messages
// are dead-lettered (default 1 MiB).
func WithMaxPayload(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("max payload must be >= 1, got %d", n)
		}
		o.maxPayload = n
		return nil
	}
}

// WithActivityConcurrency sets how many activities the worker runs at once (default 64).
func WithActivityConcurrency(n int) WorkerOption {
	return func(o *workerOptions) error {
		if n < 1 {
			return fmt.Errorf("activity concurrency must be >= 1, got %d", n)
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
