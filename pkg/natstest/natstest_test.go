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
