package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/bench"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const benchAbout = `
Runs jetflow's benchmark workloads and prints one JSON line per result on stdout:
{"engine","workload","n","c","seconds","per_sec","p50_ms","p99_ms","notes"}.

Each workload gets a fresh embedded NATS server (JetStream file storage in a temporary
directory) unless --nats names an external one, and a worker (with the benchmark orchestrators
and activities) and a client in this process. historyseq prints one line for each of N = 100,
1,000 and 5,000 unless -n is given. Run it on a quiet machine: the figures are only as good as
the machine is idle.

workloads (default N and C):
`

func runBench(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "bench", "[flags]", benchAbout+bench.Describe())
	var f benchFlags
	f.register(fs, &cfg)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	opts := f.options(cfg, env.Stderr)
	if f.cpuProf != "" {
		stop, err := startCPUProfile(f.cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	err = bench.Run(ctx, opts, benchResultWriter(env, f.jsonOnly))
	if errors.Is(err, bench.ErrUnknownWorkload) {
		return withCode(exitUsage, err)
	}
	return err
}

// benchFlags are the flags of `jetflow bench` (besides the connection's, kept in Config).
type benchFlags struct {
	workload, natsURL, cpuProf string
	n, c, idleN, cache         int
	jsonOnly                   bool
	timeout                    time.Duration
}

// register adds the flags to fs, and cfg's credential and TLS flags for --nats.
func (f *benchFlags) register(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&f.workload, "workload", "all", "`name` of the workload to run, several comma-separated, or all")
	fs.IntVar(&f.n, "n", 0, "instances (history, historyseq: events) of each workload (default: the workload's own)")
	fs.IntVar(&f.c, "c", 0, "instances in flight (history: unacknowledged publishes; default: the workload's own)")
	fs.IntVar(&f.idleN, "idle-n", bench.DefaultIdleN, "idle's N when -n is not given")
	fs.IntVar(&f.cache, "cache", cfg.CacheSize, "the worker's executor cache size (running instances kept in memory; 0: replay every turn)")
	fs.StringVar(&f.natsURL, "nats", "", "external NATS server `URL` (default: an embedded server per workload)")
	fs.BoolVar(&f.jsonOnly, "json", false, "print only the JSON lines (no progress or summary on stderr)")
	fs.DurationVar(&f.timeout, "timeout", bench.DefaultTimeout, "time limit of each workload")
	fs.StringVar(&f.cpuProf, "cpuprofile", "", "write a CPU profile of the whole run (worker, client and embedded server) to `file`")
	fs.StringVar(&cfg.Creds, setCreds.flag, cfg.Creds, usageFor(setCreds, "NATS user credentials `file` (with --nats)"))
	fs.StringVar(&cfg.TLSCert, setTLSCert.flag, cfg.TLSCert, usageFor(setTLSCert, "TLS client certificate `file` (with --nats)"))
	fs.StringVar(&cfg.TLSKey, setTLSKey.flag, cfg.TLSKey, usageFor(setTLSKey, "TLS client key `file` (with --nats)"))
	fs.StringVar(&cfg.TLSCA, setTLSCA.flag, cfg.TLSCA, usageFor(setTLSCA, "TLS certificate authority `file` (with --nats)"))
}

// validate returns a usage error for a value out of range.
func (f benchFlags) validate() error {
	switch {
	case f.n < 0, f.c < 0, f.idleN < 1:
		return usageErrorf("bench: -n and -c must be >= 0 and --idle-n >= 1")
	case f.timeout <= 0:
		return usageErrorf("bench: --timeout must be > 0")
	}
	if err := engine.CheckWorkerOptions(engine.WithCacheSize(f.cache)); err != nil {
		return usageErrorf("bench: --cache: %w", err)
	}
	return nil
}

// options are the benchmark's options: with --nats, connecting as cfg says; without --json,
// reporting progress on stderr.
func (f benchFlags) options(cfg Config, stderr io.Writer) bench.Options {
	opts := bench.Options{
		Workload:  f.workload,
		N:         f.n,
		C:         f.c,
		IdleN:     f.idleN,
		CacheSize: f.cache,
		NATSURL:   f.natsURL,
		Timeout:   f.timeout,
	}
	if f.natsURL != "" {
		cfg.NATSURL = f.natsURL
		opts.NATSOptions = cfg.natsOptions("jetflow bench", zerolog.Nop())
	}
	if !f.jsonOnly {
		opts.Progress = func(format string, args ...any) {
			fmt.Fprintf(stderr, "%s bench: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
		}
	}
	return opts
}

// benchResultWriter returns what bench.Run calls with each result: it writes the result as a
// JSON line on stdout and, unless jsonOnly, a summary on stderr.
func benchResultWriter(env *Env, jsonOnly bool) func(bench.Result) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	return func(r bench.Result) error {
		if !jsonOnly {
			fmt.Fprintf(env.Stderr, "%s bench: %s n=%d c=%d: %.3fs, %.1f/s, p50 %.3f ms, p99 %.3f ms\n",
				time.Now().Format(time.TimeOnly), r.Workload, r.N, r.C, r.Seconds, r.PerSec, r.P50ms, r.P99ms)
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing the result: %w", err)
		}
		return nil
	}
}

// startCPUProfile profiles the process's CPU into file until the returned function is called.
func startCPUProfile(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
