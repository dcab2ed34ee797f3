package natsserver_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// The repository's server configurations agree with the embedded server.
func TestConfFilesMatchEmbeddedServer(t *testing.T) {
	for k, v := range natsserver.ConfDefaults {
		t.Setenv(k, v) // ProcessConfigFile reads the process environment
	}
	for _, file := range []string{"nats.conf", "deploy/nats.conf"} {
		t.Run(file, func(t *testing.T) {
			o := &server.Options{}
			if err := o.ProcessConfigFile(filepath.Join("..", "..", file)); err != nil {
				t.Fatalf("parsing %s: %v", file, err)
			}
			if err := natsserver.CheckConf(o); err != nil {
				t.Errorf("%s disagrees with natsserver.Options: %v", file, err)
			}
			if o.Port != natsserver.Port {
				t.Errorf("%s: client port = %d, want natsserver.Port = %d (jetflow's default NATS URL)", file, o.Port, natsserver.Port)
			}
		})
	}
}

func TestCheckConf(t *testing.T) {
	embedded := natsserver.Options("x", "127.0.0.1", natsserver.Port, t.TempDir())
	if err := natsserver.CheckConf(embedded); err != nil {
		t.Errorf("the embedded server's own options: %v", err)
	}
	tests := []struct {
		name   string
		change func(*server.Options)
		want   string
	}{
		{"no JetStream", func(o *server.Options) { o.JetStream = false }, "jetstream is not enabled"},
		{"max_payload unset", func(o *server.Options) { o.MaxPayload = 0 }, "max_payload is not set"},
		{"max_payload 1MB", func(o *server.Options) { o.MaxPayload = 1 << 20 }, "max_payload is 1048576 bytes; jetflow's servers allow 8388608"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := natsserver.Options("x", "127.0.0.1", natsserver.Port, t.TempDir())
			tt.change(o)
			if err := natsserver.CheckConf(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckConf = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The largest history entry a worker writes fits in a message of the server.
func TestMaxPayloadHoldsATurn(t *testing.T) {
	if turn := backend.MaxTurnBytes + backend.DefaultMaxPayload; turn >= natsserver.MaxPayload {
		t.Errorf("a turn's payloads may reach %d bytes, not below the server's max_payload %d", turn, natsserver.MaxPayload)
	}
}

// A server started with Options runs JetStream and has MaxPayload.
func TestOptionsStartAServer(t *testing.T) {
	s, err := server.NewServer(natsserver.Options("natsserver-test", "127.0.0.1", -1, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(natsserver.ReadyTimeout) {
		t.Fatalf("not ready after %v", natsserver.ReadyTimeout)
	}
	if !s.JetStreamEnabled() {
		t.Error("JetStream is not enabled")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != natsserver.MaxPayload {
		t.Errorf("max payload = %d, want %d", got, natsserver.MaxPayload)
	}
}
