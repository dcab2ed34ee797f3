package natsjs

import (
	"context"
	"errors"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestPartitionCountIsKeptWhileMessagesWait: the partition count is part of the instance
// stream; New refuses to change it while the stream holds messages (they would stay filed
// under partitions no worker reads), allows it on an empty stream, and Open reads it.
func TestPartitionCountIsKeptWhileMessagesWait(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := context.Background()
	b, err := New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if b.Partitions() != DefaultPartitions {
		t.Fatalf("%d partitions, want %d", b.Partitions(), DefaultPartitions)
	}
	if _, err := js.Publish(ctx, "jetflow.inst.waiting.event.Go", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, js, WithPartitions(8)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("changing the partitions of a stream with messages: %v, want ErrInvalidOption", err)
	}
	opened, err := Open(ctx, js, WithPartitions(8))
	if err != nil || opened.Partitions() != DefaultPartitions {
		t.Fatalf("Open: %v, %d partitions; want the stream's %d", err, opened.Partitions(), DefaultPartitions)
	}
	if err := b.inst.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	b8, err := New(ctx, js, WithPartitions(8))
	if err != nil || b8.Partitions() != 8 {
		t.Fatalf("changing the partitions of an empty stream: %v", err)
	}
	if _, err := js.Publish(ctx, "jetflow.inst.a.event.Go", []byte("1")); err != nil {
		t.Fatal(err)
	}
	info, err := b8.inst.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages", info.State.Msgs)
	}
	msg, err := b8.inst.GetLastMsgForSubject(ctx, b8.names.StoredInstanceFilter("a"))
	if err != nil {
		t.Fatal(err)
	}
	// FNV-1a("a") = 0xe40c292c: partition 12 of 16, 4 of 8.
	if want := "jetflow.part.4.a.event.Go"; msg.Subject != want || PartitionOf("a", 8) != 4 {
		t.Fatalf("stored as %s, want %s", msg.Subject, want)
	}
}

// TestNewLeavesMatchingStreamsAlone: a second New finds every stream as the first made it, so
// it updates none (workers starting together would otherwise update the streams under each
// other's consumers).
func TestNewLeavesMatchingStreamsAlone(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := context.Background()
	b, err := New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range streamConfigs(b.names, b.opts) {
		s, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !sameStreamConfig(s.CachedInfo().Config, cfg) {
			t.Errorf("stream %s as created differs from its configuration: %+v", cfg.Name, s.CachedInfo().Config)
		}
	}
}
