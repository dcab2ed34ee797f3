package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the cluster name of the servers started by RunCluster.
const ClusterName = "natstest"

// clusterReadyTimeout bounds how long RunCluster waits for the cluster to elect a JetStream
// meta leader that every server follows.
const clusterReadyTimeout = 30 * time.Second

// Cluster is a JetStream cluster of in-process servers started by RunCluster.
type Cluster struct {
	// Servers are the cluster's servers, named natstest-1 … natstest-n in this order.
	Servers []*server.Server
}

// RunCluster starts n in-process NATS servers with JetStream that form one cluster: clients on
// free loopback ports, routes on free loopback ports (each server is configured with the routes
// of all of them, as in deploy/nats.conf), file storage in a t.TempDir() each, the
// DefaultMaxPayload. It returns once the cluster has a JetStream meta leader that every server
// is current with, and fails the test if that takes more than 30 seconds. Logging is as in
// RunServer. The servers are shut down by t.Cleanup; a test may shut one down earlier (Shutdown)
// to see the others take over.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster of %d servers", n)
	}
	ports := FreePorts(t, n)
	c := &Cluster{}
	for i := range n {
		o := NodeOptions(i, -1, ports, t.TempDir())
		c.Servers = append(c.Servers, startServer(t, o))
	}
	CheckFor(t, clusterReadyTimeout, 50*time.Millisecond, c.jetStreamReady)
	return c
}

// NodeOptions returns the options of node i (from 0; named natstest-<i+1>) of a cluster whose
// nodes listen for routes on routePorts (node i on routePorts[i]): clients on clientPort (-1: a
// free one), JetStream data in dir, logging as in RunServer. Each node is given the routes of
// all of them, as in deploy/nats.conf. Tests that run cluster nodes in processes of their own
// (to kill one) build them with it.
func NodeOptions(i, clientPort int, routePorts []int, dir string) *server.Options {
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	o := serverOptions(fmt.Sprintf("natstest-%d", i+1), clientPort, dir)
	o.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: routePorts[i]}
	o.Routes = routes // a route to itself is recognized and skipped
	return o
}

// FreePorts returns n distinct loopback TCP ports that were free a moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: finding a free port: %v", err)
		}
		defer l.Close() // held until all are chosen, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// jetStreamReady reports an error until the running servers have a meta leader, every one of
// them is current with it, and the leader knows them all as peers.
func (c *Cluster) jetStreamReady() error {
	leader := c.MetaLeader()
	if leader == nil {
		return fmt.Errorf("no JetStream meta leader")
	}
	for _, s := range c.Running() {
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("server %s is not current with the meta leader", s.Name())
		}
	}
	if got, want := len(leader.JetStreamClusterPeers()), len(c.Servers); got < want {
		return fmt.Errorf("meta leader %s knows %d of %d peers", leader.Name(), got, want)
	}
	return nil
}

// Running returns the servers that have not been shut down.
func (c *Cluster) Running() []*server.Server {
	var out []*server.Server
	for _, s := range c.Servers {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// MetaLeader returns the running server that leads the JetStream meta group, or nil if none does
// at the moment.
func (c *Cluster) MetaLeader() *server.Server {
	for _, s := range c.Running() {
		if s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// StreamLeader returns the running server that leads stream (of the global account, where
// clients without accounts create their streams), or nil if none does at the moment.
func (c *Cluster) StreamLeader(stream string) *server.Server {
	for _, s := range c.Running() {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s
		}
	}
	return nil
}

// ConsumerLeader returns the running server that leads consumer of stream (of the global
// account), or nil if none does at the moment.
func (c *Cluster) ConsumerLeader(stream, consumer string) *server.Server {
	for _, s := range c.Running() {
		if s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return s
		}
	}
	return nil
}

// WaitStreamLeader waits up to timeout for a running server to lead stream and returns it; it
// fails the test if none does in time.
func (c *Cluster) WaitStreamLeader(t testing.TB, stream string, timeout time.Duration) *server.Server {
	t.Helper()
	var leader *server.Server
	CheckFor(t, timeout, 10*time.Millisecond, func() error {
		if leader = c.StreamLeader(stream); leader == nil {
			return fmt.Errorf("no leader for stream %s", stream)
		}
		return nil
	})
	return leader
}

// URLs returns the client URLs of all servers, comma-separated, starting with server first
// (an index into Servers): what nats.Connect takes to fail over to the others.
func (c *Cluster) URLs(first int) string {
	urls := []string{c.Servers[first].ClientURL()}
	for i, s := range c.Servers {
		if i != first {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to server first (an index into Servers) that fails over to
// the others: it knows all their URLs, reconnects for ever, 100ms apart. It returns the
// connection and a JetStream handle on it; the connection is closed by t.Cleanup. Further
// options (a name, handlers) are applied after these.
func (c *Cluster) Connect(t testing.TB, first int, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{
		nats.Name(fmt.Sprintf("natstest cluster client of %s", c.Servers[first].Name())),
		nats.DontRandomize(), // connect to first first
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(c.URLs(first), opts...)
	if err != nil {
		t.Fatalf("natstest: connecting to %s: %v", c.URLs(first), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: creating JetStream handle: %v", err)
	}
	return nc, js
}
