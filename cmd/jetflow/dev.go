package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

// The demo stock put into the inventory bucket the first time `jetflow dev` starts on a data
// directory (when the bucket is empty). README.md documents it.
const (
	demoItem  = "widget"
	demoStock = 100
)

const devAbout = `
Runs everything on this machine in one process: an embedded NATS server with JetStream (file
storage under --data, max_payload 8 MiB) and a worker with the example orchestrators and
activities. It stays up until interrupted (Ctrl-C or SIGTERM) and then shuts down cleanly.
`

func runDev(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "dev", "[flags]", devAbout)
	cfg.devFlags(fs)
	cfg.workerFlags(fs, false)
	cfg.healthFlags(fs)
	cfg.logFlags(fs)
	apiCfg, err := loadAPIConfig(env.Getenv, "api-")
	if err != nil {
		return err
	}
	apiCfg.flags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := errors.Join(cfg.Validate(), apiCfg.Validate()); err != nil {
		return err
	}
	log := newLogger(env.Stderr, cfg.logLevel())

	d, err := startDev(ctx, cfg, log, apiCfg)
	if err != nil {
		return err
	}
	printDevBanner(env.Stdout, d)
	printAPIBanner(env.Stdout, d)
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case err = <-d.failed:
		log.Error().Err(err).Msg("worker failed; shutting down")
	}
	d.Stop()
	return err
}

// devServer is what `jetflow dev` runs: an embedded NATS server and a worker on it.
type devServer struct {
	srv    *server.Server
	nc     *nats.Conn
	w      *exampleWorker
	log    zerolog.Logger
	data   string
	seeded bool
	api    *apiServer // the HTTP API, if served
	// reg holds the metrics of the worker, the backend and the raiser (metrics), served on the
	// health endpoint (health) with /livez and /readyz.
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	health  *healthServer
	// traces exports the spans of the worker, the API and the raiser (traces.go); nil: off.
	traces *traces

	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan error // the worker stopped with an error
	once   sync.Once
}

// URL returns the NATS URL clients connect to.
func (d *devServer) URL() string { return d.srv.ClientURL() }

// startDev starts the embedded server and the worker, and returns once both are running. ctx
// bounds start-up only; Stop stops them. With an apiConfig (runDev passes one; tests may not) it
// also serves the HTTP API.
func startDev(ctx context.Context, cfg Config, log zerolog.Logger, api ...apiConfig) (_ *devServer, err error) {
	d, fatal, err := newDevServer(cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	if err := d.startNATS(ctx, fatal); err != nil {
		return d, err
	}
	js, err := d.connect()
	if err != nil {
		return d, err
	}
	cfg.Replicas = 1 // one server
	if d.traces, err = startTraces(ctx, "dev", log); err != nil {
		return d, err
	}
	if err := d.setUpWorker(ctx, cfg, js); err != nil {
		return d, err
	}
	// The queue raiser: approval-queue and event-queue (devRaiserConfig in raiser.go). Its
	// streams and consumers are set up before the worker starts.
	r, err := newRaiser(js, d.w.client, devRaiserConfig(), cfg.Replicas, log, d.metrics, d.traces.Provider())
	if err != nil {
		return d, err
	}
	if err := r.Setup(ctx); err != nil {
		return d, err
	}
	if d.health, err = serveHealth(cfg.HealthAddr, d.w.backend.Ready, d.reg, log); err != nil {
		return d, err
	}

	// The services: the worker, the HTTP API (api.go) and the queue raiser, each a goroutine in
	// d.wg that reports to d.failed and is shut down by d.cancel before the connection and the
	// server.
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.runWorker(runCtx)
	if err := waitForWorker(ctx, d.w.client); err != nil {
		return d, err
	}
	for _, c := range api {
		if err := d.serveDevAPI(runCtx, c, d.w.backend); err != nil {
			return d, err
		}
	}
	d.runRaiser(runCtx, r)
	return d, nil
}

// newDevServer creates the data directory and configures (but does not start) the embedded
// server. The server reports fatal errors on the returned channel.
func newDevServer(cfg Config, log zerolog.Logger) (*devServer, <-chan error, error) {
	host, port, err := cfg.listenHostPort()
	if err != nil {
		return nil, nil, err
	}
	data, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("data directory %q: %w", cfg.Data, err)
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating data directory: %w", err)
	}
	// jetflow's embedded server (natsserver.Options: JetStream, its max_payload, signals left to
	// this process), logging through log (below).
	srv, err := server.NewServer(natsserver.Options("jetflow-dev", host, port, data))
	if err != nil {
		return nil, nil, fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	fatal := make(chan error, 1)
	srvLog := log.With().Str("component", "nats-server").Logger()
	trace := cfg.logLevel() <= zerolog.TraceLevel
	srv.SetLoggerV2(&natsLogger{log: srvLog, fatal: fatal}, trace, trace, false)
	return &devServer{srv: srv, log: log, data: data, failed: make(chan error, 1)}, fatal, nil
}

// startNATS starts the embedded server and waits until it accepts connections with JetStream.
func (d *devServer) startNATS(ctx context.Context, fatal <-chan error) error {
	go d.srv.Start()
	if err := waitReady(ctx, d.srv, fatal); err != nil {
		return err
	}
	if !d.srv.JetStreamEnabled() {
		return errors.New("the embedded NATS server started without JetStream")
	}
	d.log.Info().Str("url", d.srv.ClientURL()).Str("data", d.data).Msg("embedded NATS server ready")
	return nil
}

// connect opens the in-process connection of the worker, the API and the raiser.
func (d *devServer) connect() (jetstream.JetStream, error) {
	var err error
	d.nc, err = nats.Connect(d.srv.ClientURL(), nats.InProcessServer(d.srv), nats.Name("jetflow dev"))
	if err != nil {
		return nil, fmt.Errorf("connecting to the embedded server: %w", err)
	}
	return jetstream.New(d.nc)
}

// setUpWorker creates the worker with the examples (and jetflow's streams and buckets) and seeds
// the demo inventory on a new data directory. runWorker runs it.
func (d *devServer) setUpWorker(ctx context.Context, cfg Config, js jetstream.JetStream) error {
	var err error
	if d.reg, d.metrics, err = newMetrics(); err != nil {
		return err
	}
	if d.w, err = newExampleWorker(ctx, cfg, js, d.log, d.metrics, d.traces.Provider()); err != nil {
		return err
	}
	if d.seeded, err = seedInventory(ctx, d.w.inventory); err != nil {
		return err
	}
	if d.seeded {
		d.log.Info().Str("item", demoItem).Int("stock", demoStock).Msg("seeded the demo inventory")
	}
	return nil
}

// runWorker runs the worker until ctx ends; an error stopping it goes to d.failed.
func (d *devServer) runWorker(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.w.worker.Run(ctx); err != nil {
			d.failed <- fmt.Errorf("worker: %w", err)
		}
	}()
	d.log.Info().Msg("worker running the example orchestrations and activities")
}

// waitForWorker waits until the worker registry lists a worker, so that the API, which refuses
// orchestrators no live worker serves, does not refuse the examples while the worker starts.
func waitForWorker(ctx context.Context, c *engine.Client) error {
	for {
		workers, err := c.Workers(ctx)
		if err == nil && len(workers) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the worker to announce itself: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runRaiser runs the queue raiser r until ctx ends; an error stopping it goes to d.failed, unless
// another service failed first.
func (d *devServer) runRaiser(ctx context.Context, r *raiser.Raiser) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := runRaiserUntilDone(ctx, r, d.log); err != nil {
			select {
			case d.failed <- err:
			default:
			}
		}
	}()
}

// waitReady waits until srv accepts connections, it reports a fatal error, or ctx ends.
func waitReady(ctx context.Context, srv *server.Server, fatal <-chan error) error {
	deadline := time.Now().Add(natsserver.ReadyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		select {
		case err := <-fatal:
			return fmt.Errorf("embedded NATS server: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded NATS server not ready after %v", natsserver.ReadyTimeout)
		}
	}
	return nil
}

// seedInventory stocks the demo item if the inventory bucket is empty (a new data directory).
func seedInventory(ctx context.Context, kv jetstream.KeyValue) (bool, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the inventory bucket: %w", err)
	}
	if st.Values() > 0 {
		return false, nil
	}
	if err := activities.Restock(ctx, kv, demoItem, demoStock); err != nil {
		return false, fmt.Errorf("seeding the inventory: %w", err)
	}
	return true, nil
}

// Stop stops the services, then the connection, then the server, and waits for all of them.
func (d *devServer) Stop() {
	d.once.Do(func() {
		d.health.Stop()
		if d.cancel != nil {
			d.cancel()
		}
		d.wg.Wait()
		d.traces.Stop()
		if d.w != nil {
			d.w.logStats(d.log)
		}
		if d.nc != nil {
			d.nc.Close()
		}
		d.srv.Shutdown()
		d.srv.WaitForShutdown()
		d.log.Info().Msg("embedded NATS server stopped")
	})
}

func printDevBanner(w io.Writer, d *devServer) {
	url := d.URL()
	flag, server := "", ""
	if url != DefaultConfig().NATSURL {
		flag, server = " --nats "+url, " --server "+url
	}
	inventory := "already set up"
	if d.seeded {
		inventory = fmt.Sprintf("stocked with %d %q", demoStock, demoItem)
	}
	fmt.Fprintf(w, `
jetflow dev is running. Ctrl-C stops it.

  NATS       %[1]s   (JetStream data in %[2]s)
  inventory  %[3]s

Start an orchestration that waits for an approval, then approve it:

  id=$(jetflow start%[4]s BudgetApproval --input '{"amountCents": 500000, "requester": "ana"}')
  jetflow status%[4]s $id
  jetflow raise%[4]s $id Approval true
  jetflow wait%[4]s $id

or raise the event with any NATS client, e.g. the nats CLI:

  nats pub%[5]s jetflow.inst.<id>.event.Approval true

(for IDs with characters other than letters, digits, '-' and '_', 'jetflow subject <id> Approval'
prints the subject). Or order the demo item:

  jetflow start%[4]s PlaceOrder --input '{"item": "%[6]s", "quantity": 2, "unitPriceCents": 1999}'

%[7]s
`, url, d.data, inventory, flag, server, demoItem, devRaiserHelp(server))
}
