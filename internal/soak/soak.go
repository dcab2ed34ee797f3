package soak

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// loadShare is the part of the chaos period over which the instances are started; the rest of
// it keeps the faults going while their last events and activities run.
const loadShare = 0.8

// Run runs the soak test: the cluster, the load and the faults, then the checks.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	began := time.Now()
	rng := rand.New(rand.NewSource(cfg.Seed))
	plans := makePlans(cfg.N, rng)
	markBad(plans)
	fmt.Fprintf(cfg.Log, "soak: %d instances, %s of faults, seed %d, data and logs in %s\n", cfg.N, cfg.Chaos, cfg.Seed, cfg.Dir)

	c, err := startCluster(ctx, cfg)
	if c != nil {
		defer c.stopAll()
	}
	if err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	fmt.Fprintf(cfg.Log, "soak: cluster up in %.1fs: 3 NATS servers (%s), 3 workers, api, raiser\n", time.Since(began).Seconds(), c.urls())
	d, err := connectDriver(ctx, c)
	if err != nil {
		return nil, err
	}
	defer d.nc.Close()
	res := &Result{N: cfg.N}
	x := d.drive(ctx, c, plans, cfg, res)
	res.StillRunning = settle(ctx, d.s, plans, cfg.Settle, cfg.Log)
	if err := d.check(ctx, c, plans, res); err != nil {
		return nil, err
	}
	res.Chaos = x
	res.Crashes = c.crashes()
	res.Duration = time.Since(began)
	return res, nil
}

// driver is the soak's own connection: a client, a JetStream context and the sender.
type driver struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	b   *natsjs.Backend
	cli *engine.Client
	s   *sender
	bad *badInputs
}

// connectDriver connects to the cluster, binds to jetflow's streams and stocks the orders' item.
func connectDriver(ctx context.Context, c *cluster) (*driver, error) {
	nc, err := nats.Connect(c.urls(), nats.Name("jetflow soak driver"), nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connecting the driver: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	b, err := natsjs.Open(ctx, js, natsjs.WithReplicas(3))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("binding to jetflow's streams: %w", err)
	}
	names, err := natsjs.NewNames(natsjs.DefaultPrefix)
	if err != nil {
		nc.Close()
		return nil, err
	}
	kv, err := js.KeyValue(ctx, activities.InventoryBucketName)
	if err == nil {
		// Each order takes at most 3; a duplicate execution of the reservation takes them again.
		err = activities.Restock(ctx, kv, soakItem, 1_000_000)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stocking %s: %w", soakItem, err)
	}
	cli := engine.NewClient(b)
	s := &sender{client: cli, nc: nc, js: js, names: names, apiBase: c.apiBase(),
		http: &http.Client{Timeout: 15 * time.Second}, began: time.Now(), pubAt: map[string]time.Duration{}}
	return &driver{nc: nc, js: js, b: b, cli: cli, s: s, bad: &badInputs{expected: map[string]int{}}}, nil
}

// drive runs the load and the faults side by side and returns the faults' record.
func (d *driver) drive(ctx context.Context, c *cluster, plans []*plan, cfg Config, res *Result) *chaos {
	x := newChaos(c, cfg.Log, cfg.Seed, func() int { return d.instLeader(ctx) })
	l := &load{s: d.s, bad: d.bad}
	begin := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); x.run(ctx, cfg.Chaos) }()
	go func() {
		defer wg.Done()
		l.run(ctx, plans, time.Duration(loadShare*float64(cfg.Chaos)), cfg.Seed)
	}()
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			fmt.Fprintf(cfg.Log, "soak: load and faults done after %.0fs\n", time.Since(begin).Seconds())
			return x
		case <-time.After(10 * time.Second):
			fmt.Fprintf(cfg.Log, "soak: %4.0fs: %d/%d started\n", time.Since(begin).Seconds(), l.started.Load(), len(plans))
		}
	}
}

// instStream is the stream of instance messages (natsjs.Names.InstanceStream).
const instStream = "JETFLOW_INST"

// instLeader returns the node (1..3) leading the instance stream, 0 if it cannot tell.
func (d *driver) instLeader(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := d.js.Stream(ctx, instStream)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(info.Cluster.Leader, nodeNamePrefix))
	return n
}

// check verifies the instances, counts the activity executions and reads the dead letters.
func (d *driver) check(ctx context.Context, c *cluster, plans []*plan, res *Result) error {
	res.Verdicts = verifyAll(ctx, d.cli, plans, 16)
	var logs []string
	for _, w := range c.workers {
		logs = append(logs, w.allLogs()...)
	}
	ac, err := countExecutions(logs, res.Verdicts)
	if err != nil {
		return err
	}
	res.Activities = ac
	d.bad.mu.Lock()
	expected := d.bad.expected
	res.BadSent, res.BadHTTP = d.bad.sent, d.bad.httpBad
	d.bad.mu.Unlock()
	if res.DeadLetters, err = checkDeadLetters(ctx, d.b, expected); err != nil {
		return err
	}
	res.SendErrors = d.s.errs
	for ch := range channels {
		res.Sent[ch] = d.s.sent[ch].Load()
	}
	res.Retries, res.Resent, res.ResentDup, res.Gone = d.s.retries.Load(), d.s.resent.Load(), d.s.resentDup.Load(), d.s.gone.Load()
	return nil
}
