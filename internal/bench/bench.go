// Package bench runs jetflow's benchmark workloads (issue 4: approval, latency, fanout, history,
// historyseq, idle) and reports each as one JSON line (Result).
//
// Every workload (every N of historyseq) gets a fresh environment: an embedded NATS server with
// JetStream file storage in a temporary directory (or the external server of Options.NATSURL), a
// worker with the benchmark orchestrators and activities, and a client, all in this process. The
// worker and the client have a connection each, as they would in separate processes. The client
// side follows every instance through one watcher on the instance state bucket, so waiting for
// thousands of instances costs one consumer, not one each.
package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Engine is the engine name written in every Result.
const Engine = "jetflow"

// Result is one line of output: what a workload (or one N of historyseq) measured.
type Result struct {
	Engine   string  `json:"engine"`
	Workload string  `json:"workload"`
	N        int     `json:"n"`
	C        int     `json:"c"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_sec"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// ServerMsgsPerInstance is the messages clients (workers, the bench's client and watcher)
	// sent the server during the run, per instance, by the server's own count (embedded
	// server only; 0 otherwise). JSAPIPerInstance counts JetStream API requests the same way.
	ServerMsgsPerInstance float64 `json:"server_msgs_per_instance"`
	JSAPIPerInstance      float64 `json:"js_api_per_instance"`
	Notes                 string  `json:"notes"`
}

// Options configure Run. The zero value runs every workload with its defaults on an embedded
// server.
type Options struct {
	// Workload is a workload name or "all" (also the empty string).
	Workload string
	// N and C override the workloads' defaults when > 0. An N given for historyseq replaces its
	// three sizes by that one; C does not apply to the sequential workloads (latency,
	// historyseq), and no workload runs more than N at once.
	N, C int
	// IdleN is idle's N when N is 0 (default DefaultIdleN), so that `--workload all` can run a
	// smaller idle than the other workloads' defaults suggest.
	IdleN int
	// CacheSize is the worker's executor cache size (engine.WithCacheSize); negative: the
	// engine's default.
	CacheSize int
	// NATSURL is an external NATS server with JetStream; empty: an embedded server.
	NATSURL string
	// NATSOptions are extra options for connections to NATSURL (credentials, TLS).
	NATSOptions []nats.Option
	// Timeout bounds each workload (default DefaultTimeout).
	Timeout time.Duration
	// Progress, if set, receives progress messages (one line each, no newline).
	Progress func(format string, args ...any)
}

// DefaultIdleN is idle's default N.
const DefaultIdleN = 100_000

// DefaultTimeout is Options.Timeout's default: the time limit of each workload.
const DefaultTimeout = 10 * time.Minute

// idleC is idle's default C: goroutines creating, then raising. (Before partition ownership
// every turn read the inbox, and a backlog made that read scan it: 200 goroutines collapsed to
// ~320 raises/s. Partition owners no longer read, and 200 goroutines now give ~3,500/s.)
const idleC = 64

// ErrUnknownWorkload is returned by Run for a workload name it does not know.
var ErrUnknownWorkload = errors.New("unknown workload")

// workload is one benchmark.
type workload struct {
	name  string
	about string
	ns    []int // default N (historyseq: one line per N)
	c     int   // default C (1: sequential, -c does not change it)
	run   func(ctx context.Context, e *env, n, c int) (Result, error)
}

// workloads in the order "all" runs them.
var workloads = []workload{
	{"approval", "CallActivity(Reserve) → WaitForExternalEvent(Approval) → CallActivity(Pay); the event raised right after scheduling; per_sec instances, p50/p99 start→completion",
		[]int{5000}, 200, runApproval},
	{"latency", "WaitForExternalEvent(Go) → CallActivity(Stamp), one instance after another; p50/p99 raise→activity running",
		[]int{1000}, 1, runLatency},
	{"fanout", "100 activities in parallel, WhenAll; per_sec activities, p50/p99 start→completion",
		[]int{200}, 20, runFanout},
	{"history", "one instance waits N times for Tick, all N raised up front; seconds first raise→completion",
		[]int{5000}, 500, runHistory},
	{"historyseq", "one instance waits N times for Tick, raised one at a time after the previous turn committed; p50/p99 per turn",
		[]int{100, 1000, 5000}, 1, runHistorySeq},
	{"idle", "N instances waiting for an event: worker RSS and KV bytes per instance, then one event each; per_sec completions, p50/p99 raise→completion",
		[]int{DefaultIdleN}, idleC, runIdle},
}

// Workloads returns the workload names in the order "all" runs them.
func Workloads() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return names
}

// Describe returns a one-line description of each workload, for help texts.
func Describe() string {
	var b strings.Builder
	for _, w := range workloads {
		c := "sequential"
		if w.c > 1 {
			c = fmt.Sprintf("C %d", w.c)
		}
		ns := make([]string, len(w.ns))
		for i, n := range w.ns {
			ns[i] = fmt.Sprint(n)
		}
		fmt.Fprintf(&b, "  %-10s N %s, %s: %s\n", w.name, strings.Join(ns, "/"), c, w.about)
	}
	return b.String()
}

// Run runs the workloads opts selects and calls emit with each result as soon as it is measured.
// It stops at the first error (a workload failing, timing out, or emit returning an error).
func Run(ctx context.Context, opts Options, emit func(Result) error) error {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.IdleN <= 0 {
		opts.IdleN = DefaultIdleN
	}
	selected, err := selectWorkloads(opts.Workload)
	if err != nil {
		return err
	}
	for _, w := range selected {
		ns := w.ns
		switch {
		case opts.N > 0:
			ns = []int{opts.N}
		case w.name == "idle":
			ns = []int{opts.IdleN}
		}
		c := w.c
		if opts.C > 0 && c > 1 {
			c = opts.C
		}
		for _, n := range ns {
			r, err := runOne(ctx, &opts, w, n, min(c, n))
			if err != nil {
				return fmt.Errorf("workload %s (n %d): %w", w.name, n, err)
			}
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func selectWorkloads(name string) ([]workload, error) {
	if name == "" || name == "all" {
		return workloads, nil
	}
	var out []workload
	for _, part := range strings.Split(name, ",") {
		found := false
		for _, w := range workloads {
			if w.name == strings.TrimSpace(part) {
				out = append(out, w)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w %q (known: all, %s)", ErrUnknownWorkload, part, strings.Join(Workloads(), ", "))
		}
	}
	return out, nil
}

// runOne runs one workload at one N in a fresh environment.
func runOne(ctx context.Context, opts *Options, w workload, n, c int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	opts.progress("%s: n %d, c %d: starting", w.name, n, c)
	e, err := newEnv(ctx, opts, w.name)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	before := e.serverCounts()
	r, err := w.run(ctx, e, n, c)
	after := e.serverCounts()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return r, fmt.Errorf("%w (the time limit of %v passed; see --timeout)", err, opts.Timeout)
		}
		return r, err
	}
	r.Engine, r.Workload, r.N, r.C = Engine, w.name, n, c
	if e.srv != nil && n > 0 {
		r.ServerMsgsPerInstance = round(float64(after.msgs-before.msgs) / float64(n))
		r.JSAPIPerInstance = round(float64(after.api-before.api) / float64(n))
	}
	r.Notes = joinNotes(r.Notes, e.commonNotes())
	return r, nil
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}
