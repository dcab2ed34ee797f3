// Package polyglot runs the PlaceOrder example across two languages: on an embedded JetStream, a
// Go worker serves the orchestrators and every example activity but CheckAndReserveInventory,
// which the Node.js worker of examples/activity-worker-node serves, speaking only the wire
// format of docs/wire.md. `make polyglot` (cmd/jetflow-polyglot) and this package's test run it.
package polyglot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/orchestration"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Success is the line `make polyglot` prints when the run succeeded.
const Success = "polyglot: PlaceOrder completed with the Node worker"

// Config says where the Node worker is.
type Config struct {
	// NodeDir is examples/activity-worker-node, with its node_modules installed (npm ci).
	NodeDir string
	// Node is the node binary (default "node", looked up in PATH).
	Node string
	// StoreDir holds the embedded server's data (default: a temporary directory, removed).
	StoreDir string
}

// Result is what a successful run saw.
type Result struct {
	InstanceID string
	Output     string // the instance's output (the invoice)
	NodeLine   string // the Node worker's line about the reservation
	StockLeft  int
}

// order is the order placed: 2 of the 5 widgets in stock.
var order = activities.Order{Item: "widget", Quantity: 2, UnitPriceCents: 250, Customer: "polyglot"}

const stocked = 5

// Run does the whole run within ctx and returns what it saw, or why it failed (with the Node
// worker's output).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Node == "" {
		cfg.Node = "node"
	}
	if _, err := os.Stat(filepath.Join(cfg.NodeDir, "node_modules", "nats")); err != nil {
		return nil, fmt.Errorf("the Node worker's packages are not installed (run npm ci in %s): %w", cfg.NodeDir, err)
	}
	if cfg.StoreDir == "" {
		dir, err := os.MkdirTemp("", "jetflow-polyglot-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.StoreDir = dir
	}
	srv, err := startServer(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("jetflow polyglot"))
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client, kv, workerDone, err := startGoWorker(ctx, js)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); <-workerDone }()
	node, err := startNode(ctx, cfg, srv.ClientURL())
	if err != nil {
		return nil, err
	}
	defer node.stop()
	res, err := placeOrder(ctx, client, kv, node)
	if err != nil {
		return nil, fmt.Errorf("%w\nNode worker output:\n%s", err, node.output())
	}
	return res, nil
}

// startServer starts an embedded NATS server with JetStream on a free loopback port.
func startServer(storeDir string) (*server.Server, error) {
	srv, err := server.NewServer(natsserver.Options("jetflow-polyglot", "127.0.0.1", -1, storeDir))
	if err != nil {
		return nil, fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(natsserver.ReadyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after %v", natsserver.ReadyTimeout)
	}
	return srv, nil
}

// startGoWorker sets up jetflow's streams and the stocked inventory, and runs a Go worker with
// the example orchestrators and activities, without CheckAndReserveInventory, until ctx ends;
// the channel it returns is closed when the worker has stopped.
func startGoWorker(ctx context.Context, js jetstream.JetStream) (*engine.Client, jetstream.KeyValue, <-chan struct{}, error) {
	b, err := natsjs.New(ctx, js)
	if err != nil {
		return nil, nil, nil, err
	}
	kv, err := activities.InventoryBucket(ctx, js, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := activities.Restock(ctx, kv, order.Item, stocked); err != nil {
		return nil, nil, nil, err
	}
	reg := durable.NewRegistry()
	if err := orchestration.Register(reg); err != nil {
		return nil, nil, nil, err
	}
	if err := activities.Register(reg, activities.Deps{Inventory: kv}); err != nil {
		return nil, nil, nil, err
	}
	w, err := engine.NewWorker(b, reg, engine.WithoutActivity(activities.CheckAndReserveInventory))
	if err != nil {
		return nil, nil, nil, err
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	return engine.NewClient(b), kv, done, nil
}

// placeOrder runs PlaceOrder and checks that the Node worker reserved its items.
func placeOrder(ctx context.Context, client *engine.Client, kv jetstream.KeyValue, node *nodeWorker) (*Result, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := client.ScheduleNew(wctx, "PlaceOrder", engine.WithInput(order))
	if err != nil {
		return nil, fmt.Errorf("starting PlaceOrder: %w", err)
	}
	s, err := client.WaitForCompletion(wctx, id)
	if err != nil {
		return nil, fmt.Errorf("waiting for PlaceOrder %s: %w", id, err)
	}
	if s.Status != history.StatusCompleted {
		return nil, fmt.Errorf("PlaceOrder %s ended %s: %+v", id, s.Status, s.Failure)
	}
	line, err := node.waitLine(wctx, "node served "+activities.CheckAndReserveInventory+" for "+id+" ")
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(line, "reserved=true") {
		return nil, fmt.Errorf("the Node worker did not reserve the items: %q", line)
	}
	left, err := activities.Stock(wctx, kv, order.Item)
	if err != nil {
		return nil, err
	}
	if left != stocked-order.Quantity {
		return nil, fmt.Errorf("%d %s left in stock, want %d", left, order.Item, stocked-order.Quantity)
	}
	return &Result{InstanceID: id, Output: string(s.Output), NodeLine: line, StockLeft: left}, nil
}

// nodeWorker is the running Node worker and what it printed.
type nodeWorker struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr
	lines  []string     // stdout lines
	change chan struct{}
	exited chan struct{}
}

// startNode starts worker.js against url and waits until it says it is ready.
func startNode(ctx context.Context, cfg Config, url string) (*nodeWorker, error) {
	cmd := exec.CommandContext(ctx, cfg.Node, "worker.js")
	cmd.Dir = cfg.NodeDir
	cmd.Env = append(os.Environ(), "NATS_URL="+url)
	n := &nodeWorker{cmd: cmd, change: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = &lockedWriter{n: n}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the Node worker (%s): %w", cfg.Node, err)
	}
	go n.read(stdout)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.waitLine(rctx, "node worker ready"); err != nil {
		n.stop()
		return nil, fmt.Errorf("%w\nNode worker output:\n%s", err, n.output())
	}
	return n, nil
}

func (n *nodeWorker) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n.mu.Lock()
		n.lines = append(n.lines, sc.Text())
		n.out.WriteString(sc.Text() + "\n")
		close(n.change)
		n.change = make(chan struct{})
		n.mu.Unlock()
	}
	_ = n.cmd.Wait()
	close(n.exited)
}

// waitLine waits for a stdout line that starts with prefix and returns it.
func (n *nodeWorker) waitLine(ctx context.Context, prefix string) (string, error) {
	for {
		n.mu.Lock()
		for _, l := range n.lines {
			if strings.HasPrefix(l, prefix) {
				n.mu.Unlock()
				return l, nil
			}
		}
		change := n.change
		n.mu.Unlock()
		select {
		case <-change:
		case <-n.exited:
			return "", errors.New("the Node worker exited")
		case <-ctx.Done():
			return "", fmt.Errorf("no line %q from the Node worker: %w", prefix, ctx.Err())
		}
	}
}

func (n *nodeWorker) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// stop ends the Node worker (SIGTERM: it drains) and waits for it.
func (n *nodeWorker) stop() {
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// lockedWriter appends the Node worker's stderr to its output.
type lockedWriter struct{ n *nodeWorker }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	return w.n.out.Write(p)
}
