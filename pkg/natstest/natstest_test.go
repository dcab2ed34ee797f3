package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

func TestRunServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dir := t.TempDir()
	s1 := natstest.RunServer(t, natstest.WithStoreDir(dir))
	nc1, js1 := natstest.Connect(t, s1)

	if got, want := nc1.MaxPayload(), int64(natstest.DefaultMaxPayload); got != want {
		t.Errorf("MaxPayload: got %d, want %d", got, want)
	}

	if _, err := js1.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "TEST",
		Subjects: []string{"test.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	ack, err := js1.Publish(ctx, "test.one", []byte("hello"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}

	port := s1.Addr().(*net.TCPAddr).Port
	nc1.Close()
	s1.Shutdown()
	s1.WaitForShutdown()

	// Restart on the same data and the same port.
	s2 := natstest.RunServer(t, natstest.WithStoreDir(dir), natstest.WithPort(port))
	if got := s2.Addr().(*net.TCPAddr).Port; got != port {
		t.Errorf("restarted server port: got %d, want %d", got, port)
	}
	_, js2 := natstest.Connect(t, s2)

	var stream jetstream.Stream
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var err error
		stream, err = js2.Stream(ctx, "TEST")
		return err
	})
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("GetMsg(%d) after restart: %v", ack.Sequence, err)
	}
	if got, want := string(msg.Data), "hello"; got != want {
		t.Errorf("message data after restart: got %q, want %q", got, want)
	}
	if got, want := msg.Subject, "test.one"; got != want {
		t.Errorf("message subject after restart: got %q, want %q", got, want)
	}
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestCheckFor(t *testing.T) {
	t.Run("succeeds after retries", func(t *testing.T) {
		calls := 0
		natstest.CheckFor(t, time.Second, time.Millisecond, func() error {
			calls++
			if calls < 3 {
				return fmt.Errorf("call %d", calls)
			}
			return nil
		})
		if got, want := calls, 3; got != want {
			t.Errorf("calls: got %d, want %d", got, want)
		}
	})
	t.Run("fails with last error", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		calls := 0
		natstest.CheckFor(ft, 20*time.Millisecond, time.Millisecond, func() error {
			calls++
			return errors.New("still waiting")
		})
		if calls < 2 {
			t.Errorf("calls: got %d, want at least 2", calls)
		}
		if ft.fatal == "" {
			t.Fatal("CheckFor did not fail the test")
		}
		if got, want := ft.fatal, "natstest: condition not met after 20ms: still waiting"; got != want {
			t.Errorf("failure message: got %q, want %q", got, want)
		}
	})
}

func TestRunCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster and waits for a leader election")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c := natstest.RunCluster(t, 3)
	if got, want := len(c.Servers), 3; got != want {
		t.Fatalf("servers: got %d, want %d", got, want)
	}
	if c.MetaLeader() == nil {
		t.Fatal("no meta leader after RunCluster")
	}
	nc, js := c.Connect(t, 0)

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "TEST",
		Subjects: []string{"test.>"},
		Storage:  jetstream.FileStorage,
		Replicas: 3,
	}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	ack, err := js.Publish(ctx, "test.one", []byte("hello"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// Shut down the stream's leader: another server takes over with the message, and a
	// connection to the old leader moves to a survivor.
	leader := c.WaitStreamLeader(t, "TEST", 10*time.Second)
	leader.Shutdown()
	leader.WaitForShutdown()
	start := time.Now()
	next := c.WaitStreamLeader(t, "TEST", 20*time.Second)
	t.Logf("stream leader %s shut down; %s leads after %v", leader.Name(), next.Name(), time.Since(start))
	if next == leader {
		t.Fatal("the shut down server still leads")
	}
	if got := len(c.Running()); got != 2 {
		t.Fatalf("running servers: got %d, want 2", got)
	}

	var stream jetstream.Stream
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		var err error
		if stream, err = js.Stream(ctx, "TEST"); err != nil {
			return err
		}
		_, err = js.Publish(ctx, "test.two", []byte("again"))
		return err
	})
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("GetMsg(%d) after failover: %v", ack.Sequence, err)
	}
	if got, want := string(msg.Data), "hello"; got != want {
		t.Errorf("message data after failover: got %q, want %q", got, want)
	}
	if !nc.IsConnected() || nc.ConnectedServerName() == leader.Name() {
		t.Errorf("client connected to %q (connected %v), want a survivor", nc.ConnectedServerName(), nc.IsConnected())
	}
}
