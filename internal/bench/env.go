package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// env is one workload's world: a server (embedded unless external), a worker on its own
// connection, and the client side (client, raw JetStream, state watcher) on another.
type env struct {
	opts     *Options
	workload string
	run      string // prefix of this run's instance IDs

	srv *server.Server // nil when external
	dir string         // the embedded server's store

	workerNC *nats.Conn
	worker   *engine.Worker
	stop     context.CancelFunc
	stopped  chan struct{}

	nc     *nats.Conn
	js     jetstream.JetStream // the client side's, for raw publishes and stream info
	be     *natsjs.Backend     // the client side's
	client *engine.Client
	names  natsjs.Names

	stamps sync.Map // instance ID → chan time.Time, filled by the Stamp activity
	work   atomic.Int64

	watchStop context.CancelFunc
	watchDone chan struct{}
	mu        sync.Mutex
	followers []func(s *backend.Instance)
	failOnce  sync.Once
	failed    chan struct{}
	failErr   error
}

// startEmbedded starts jetflow's embedded NATS server (natsserver.Options: JetStream with file
// storage, here in a new temporary directory) on a free loopback port, as natstest does for
// tests.
func startEmbedded() (*server.Server, string, error) {
	dir, err := os.MkdirTemp("", "jetflow-bench-*")
	if err != nil {
		return nil, "", fmt.Errorf("creating the embedded server's store: %w", err)
	}
	srv, err := server.NewServer(natsserver.Options("jetflow-bench", "127.0.0.1", -1, dir))
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(natsserver.ReadyTimeout) {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("the embedded NATS server was not ready within %v", natsserver.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, "", errors.New("the embedded NATS server started without JetStream")
	}
	return srv, dir, nil
}

// newEnv starts a server (unless external), the worker and the client side.
func newEnv(ctx context.Context, opts *Options, workload string) (_ *env, err error) {
	e := &env{
		opts:     opts,
		workload: workload,
		run:      "b" + uuid.NewString()[:8],
		stopped:  make(chan struct{}),
		failed:   make(chan struct{}),
	}
	close(e.stopped) // until the worker runs
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	url := opts.NATSURL
	if url == "" {
		if e.srv, e.dir, err = startEmbedded(); err != nil {
			return nil, err
		}
		url = e.srv.ClientURL()
	}
	if err := e.newWorker(ctx, url); err != nil {
		return nil, err
	}
	if err := e.openClient(ctx, url); err != nil {
		return nil, err
	}
	e.runWorker()
	return e, nil
}

// connect opens a connection named name to the server at url, with the options' NATS options.
func (e *env) connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(name)}, e.opts.NATSOptions...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream on %s: %w", url, err)
	}
	return nc, js, nil
}

// newWorker creates jetflow's streams and buckets and the worker with the benchmark registry,
// on a connection of its own.
func (e *env) newWorker(ctx context.Context, url string) error {
	var wjs jetstream.JetStream
	var err error
	if e.workerNC, wjs, err = e.connect(url, "jetflow bench worker"); err != nil {
		return err
	}
	wb, err := natsjs.New(ctx, wjs)
	if err != nil {
		return fmt.Errorf("creating jetflow's streams and buckets: %w", err)
	}
	reg, err := e.registry()
	if err != nil {
		return err
	}
	var wopts []engine.WorkerOption
	if e.opts.CacheSize >= 0 {
		wopts = append(wopts, engine.WithCacheSize(e.opts.CacheSize))
	}
	if e.worker, err = engine.NewWorker(wb, reg, wopts...); err != nil {
		return fmt.Errorf("creating the worker: %w", err)
	}
	return nil
}

// openClient opens the client side on another connection: the client, the backend it uses and
// the state watcher.
func (e *env) openClient(ctx context.Context, url string) error {
	var err error
	if e.nc, e.js, err = e.connect(url, "jetflow bench client"); err != nil {
		return err
	}
	if e.be, err = natsjs.Open(ctx, e.js); err != nil {
		return fmt.Errorf("opening jetflow's streams: %w", err)
	}
	e.client = engine.NewClient(e.be)
	e.names = e.be.Names()
	return e.watchStates(ctx)
}

// runWorker runs the worker until close stops it; if it stops with an error, the workload fails.
func (e *env) runWorker() {
	wctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		if err := e.worker.Run(wctx); err != nil {
			e.fail(fmt.Errorf("worker stopped: %w", err))
		}
	}()
}

// close stops the worker, the watcher, the connections and the embedded server, and removes
// its store.
func (e *env) close() {
	if e.stop != nil {
		e.stop()
	}
	<-e.stopped
	if e.watchStop != nil {
		e.watchStop()
		<-e.watchDone
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.workerNC != nil {
		e.workerNC.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// fail records the first failure; every wait returns it.
func (e *env) fail(err error) {
	e.failOnce.Do(func() {
		e.failErr = err
		close(e.failed)
	})
}

// watchStates follows every instance state change and hands the states of this run's
// instances to the followers.
func (e *env) watchStates(ctx context.Context) error {
	wctx, stop := context.WithCancel(context.Background())
	states, err := e.be.WatchAll(wctx)
	if err != nil {
		stop()
		return err
	}
	e.watchStop, e.watchDone = stop, make(chan struct{})
	go func() {
		defer close(e.watchDone)
		for {
			var s *backend.Instance
			select {
			case <-wctx.Done():
				return
			case st, ok := <-states:
				if !ok {
					if wctx.Err() == nil {
						e.fail(errors.New("the watcher of instance states stopped"))
					}
					return
				}
				s = st
			}
			if !strings.HasPrefix(s.ID, e.run) {
				continue
			}
			if s.Status.IsTerminal() && s.Status != history.StatusCompleted {
				msg := ""
				if s.Failure != nil {
					msg = ": " + s.Failure.Message
				}
				e.fail(fmt.Errorf("instance %s ended %s%s", s.ID, s.Status, msg))
			}
			e.mu.Lock()
			fs := e.followers
			e.mu.Unlock()
			for _, f := range fs {
				f(s)
			}
		}
	}()
	return nil
}

// follow adds f to the functions called with every state update of this run's instances
// (sequentially, from the watcher's goroutine).
func (e *env) follow(f func(*backend.Instance)) {
	e.mu.Lock()
	e.followers = append(e.followers, f)
	e.mu.Unlock()
}

// id returns the ID of instance i of this run.
func (e *env) id(i int) string { return fmt.Sprintf("%s-%s-%d", e.run, e.workload, i) }

// await waits for ch, the context or a failure.
func (e *env) await(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-e.failed:
		return e.failErr
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	}
}

// awaitAll waits for every instance of t, reporting progress every 10 seconds.
func (e *env) awaitAll(ctx context.Context, t *tracker, what string) error {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.all:
			return nil
		case <-tick.C:
			e.opts.progress("%s: waiting for %s: %d of %d", e.workload, what, t.count(), len(t.at))
		case <-e.failed:
			return e.failErr
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (%d of %d): %w", what, t.count(), len(t.at), ctx.Err())
		}
	}
}

// commonNotes describes the machine and the set-up.
func (e *env) commonNotes() string {
	srv := "embedded in-process (file storage, loopback TCP)"
	if e.srv == nil {
		srv = "external " + e.opts.NATSURL
	}
	cache := "engine default"
	if e.opts.CacheSize >= 0 {
		cache = fmt.Sprint(e.opts.CacheSize)
	}
	return fmt.Sprintf("cpus=%d load=%s cache=%s server=%s go=%s",
		runtime.NumCPU(), loadAvg(), cache, srv, runtime.Version())
}

// loadAvg returns the 1, 5 and 15 minute load averages, comma-separated ("?" where unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ",")
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

// serverCounts is what the embedded server has received: client messages and JetStream API
// requests.
type serverCounts struct{ msgs, api uint64 }

// serverCounts reads the embedded server's statistics; zero for an external server.
func (e *env) serverCounts() serverCounts {
	if e.srv == nil {
		return serverCounts{}
	}
	v, err := e.srv.Varz(nil)
	if err != nil {
		return serverCounts{}
	}
	return serverCounts{msgs: uint64(v.InMsgs), api: v.JetStream.Stats.API.Total}
}
