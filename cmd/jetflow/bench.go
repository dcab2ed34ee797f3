package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	var (
		workload = fs.String("workload", "all", "`name` of the workload to run, several comma-separated, or all")
		n        = fs.Int("n", 0, "instances (history, historyseq: events) of each workload (default: the workload's own)")
		c        = fs.Int("c", 0, "instances in flight (history: unacknowledged publishes; default: the workload's own)")
		idleN    = fs.Int("idle-n", bench.DefaultIdleN, "idle's N when -n is not given")
		cache    = fs.Int("cache", cfg.CacheSize, "the worker's executor cache size (running instances kept in memory; 0: replay every turn)")
		natsURL  = fs.String("nats", "", "external NATS server `URL` (default: an embedded server per workload)")
		jsonOnly = fs.Bool("json", false, "print only the JSON lines (no progress or summary on stderr)")
		timeout  = fs.Duration("timeout", bench.DefaultTimeout, "time limit of each workload")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of the whole run (worker, client and embedded server) to `file`")
	)
	fs.StringVar(&cfg.Creds, setCreds.flag, cfg.Creds, usageFor(setCreds, "NATS user credentials `file` (with --nats)"))
	fs.StringVar(&cfg.TLSCert, setTLSCert.flag, cfg.TLSCert, usageFor(setTLSCert, "TLS client certificate `file` (with --nats)"))
	fs.StringVar(&cfg.TLSKey, setTLSKey.flag, cfg.TLSKey, usageFor(setTLSKey, "TLS client key `file` (with --nats)"))
	fs.StringVar(&cfg.TLSCA, setTLSCA.flag, cfg.TLSCA, usageFor(setTLSCA, "TLS certificate authority `file` (with --nats)"))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	switch {
	case *n < 0, *c < 0, *idleN < 1:
		return usageErrorf("bench: -n and -c must be >= 0 and --idle-n >= 1")
	case *timeout <= 0:
		return usageErrorf("bench: --timeout must be > 0")
	}
	if err := engine.CheckWorkerOptions(engine.WithCacheSize(*cache)); err != nil {
		return usageErrorf("bench: --cache: %w", err)
	}

	opts := bench.Options{
		Workload:  *workload,
		N:         *n,
		C:         *c,
		IdleN:     *idleN,
		CacheSize: *cache,
		NATSURL:   *natsURL,
		Timeout:   *timeout,
	}
	if *natsURL != "" {
		cfg.NATSURL = *natsURL
		opts.NATSOptions = cfg.natsOptions("jetflow bench", zerolog.Nop())
	}
	if !*jsonOnly {
		opts.Progress = func(format string, args ...any) {
			fmt.Fprintf(env.Stderr, "%s bench: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
		}
	}
	if *cpuProf != "" {
		stop, err := startCPUProfile(*cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	err = bench.Run(ctx, opts, func(r bench.Result) error {
		if !*jsonOnly {
			fmt.Fprintf(env.Stderr, "%s bench: %s n=%d c=%d: %.3fs, %.1f/s, p50 %.3f ms, p99 %.3f ms\n",
				time.Now().Format(time.TimeOnly), r.Workload, r.N, r.C, r.Seconds, r.PerSec, r.P50ms, r.P99ms)
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing the result: %w", err)
		}
		return nil
	})
	if errors.Is(err, bench.ErrUnknownWorkload) {
		return withCode(exitUsage, err)
	}
	return err
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
