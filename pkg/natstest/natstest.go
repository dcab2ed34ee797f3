// Package natstest runs an embedded NATS JetStream server for tests.
//
// A typical test looks like:
//
//	s := natstest.RunServer(t)
//	nc, js := natstest.Connect(t, s)
//
// The server and the connection are torn down by t.Cleanup. RunCluster starts
// a JetStream cluster of several in-process servers instead, for tests of
// replicated streams and failover:
//
//	c := natstest.RunCluster(t, 3)
//	nc, js := c.Connect(t, 0) // to the first server, failing over to the others
//	leader := c.WaitStreamLeader(t, "STREAM", 10*time.Second)
//
// Set the environment variable NATS_LOGGING=debug to see the servers' debug
// and trace logs on stderr.
package natstest

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
)

// DefaultMaxPayload is the maximum message payload of servers started by
// RunServer and RunCluster: 8 MiB, that of jetflow's embedded server and of
// the project's nats.conf.
const DefaultMaxPayload = natsserver.MaxPayload

// readyTimeout bounds how long RunServer waits for the server to accept
// client connections.
const readyTimeout = natsserver.ReadyTimeout

// Option adjusts the server options used by RunServer. Options are applied
// after the defaults, so they may override any of them.
type Option func(*server.Options)

// WithStoreDir makes the server keep its JetStream data in dir instead of a
// fresh t.TempDir(). Start a second server with the same dir (after shutting
// down the first) to test that data survives a restart.
func WithStoreDir(dir string) Option {
	return func(o *server.Options) { o.StoreDir = dir }
}

// WithPort makes the server listen for clients on port p instead of a free
// port chosen by the operating system.
func WithPort(p int) Option {
	return func(o *server.Options) { o.Port = p }
}

// RunServer starts an in-process NATS server with JetStream enabled,
// listening on 127.0.0.1 (a free port unless WithPort is given) and storing
// its data in t.TempDir() (unless WithStoreDir is given). The maximum
// payload is DefaultMaxPayload. Logging is off unless the environment
// variable NATS_LOGGING is "debug". RunServer fails the test if the server
// cannot start or is not ready for connections within 30 seconds, and
// registers a cleanup that shuts the server down and waits for it to stop.
func RunServer(t testing.TB, opts ...Option) *server.Server {
	t.Helper()

	o := defaultOptions(t)
	for _, opt := range opts {
		opt(o)
	}

	return startServer(t, o)
}

// defaultOptions are the options of the server RunServer starts, before Options are applied.
func defaultOptions(t testing.TB) *server.Options {
	return serverOptions("natstest", -1, t.TempDir())
}

// serverOptions are the options of every server natstest starts: jetflow's embedded server
// (natsserver.Options) on 127.0.0.1, with logging as NATS_LOGGING asks.
func serverOptions(name string, port int, dir string) *server.Options {
	o := natsserver.Options(name, "127.0.0.1", port, dir)
	logging := os.Getenv("NATS_LOGGING") == "debug"
	o.NoLog, o.Debug, o.Trace = !logging, logging, logging
	return o
}

// startServer starts a server with o, waits until it accepts connections and registers its
// shutdown with t.Cleanup.
func startServer(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: creating server: %v", err)
	}
	if !o.NoLog {
		s.ConfigureLogger()
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})

	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		t.Fatalf("natstest: server %s not ready for connections after %v", o.ServerName, readyTimeout)
	}
	if !s.JetStreamEnabled() {
		t.Fatalf("natstest: server %s started without JetStream", o.ServerName)
	}
	return s
}

// Connect opens a client connection to s and returns it together with a
// JetStream handle on it. The connection is closed by t.Cleanup. Connect
// fails the test if it cannot connect.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()

	nc, err := nats.Connect(s.ClientURL(), nats.Name("natstest"))
	if err != nil {
		t.Fatalf("natstest: connecting to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: creating JetStream handle: %v", err)
	}
	return nc, js
}

// CheckFor calls f every `every` until it returns nil, and fails the test
// with f's last error if that has not happened within total. f is always
// called at least once.
func CheckFor(t testing.TB, total, every time.Duration, f func() error) {
	t.Helper()

	deadline := time.Now().Add(total)
	err := f()
	for err != nil && time.Now().Before(deadline) {
		time.Sleep(every)
		err = f()
	}
	if err != nil {
		t.Fatalf("natstest: condition not met after %v: %v", total, err)
	}
}
