// Package testhooks lets jetflow's own tests reach inside a backend: stop a completion between
// its steps as if the process died there, make every worker read one shared inbox, or hold
// back chosen deliveries. Hooks travel in the context that starts a worker's delivery (the
// ctx of its first NextOrchestrationWorkItem call, which engine.Worker.Run passes on), so no
// exported API of the backend carries them.
package testhooks

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrInjectedCrash is returned by a hook to stop a completion on the spot, as if its process
// died there: nothing after that step is done, nothing is acked or handed back.
var ErrInjectedCrash = errors.New("injected crash")

// Hooks are the test hooks; a nil field does nothing.
type Hooks struct {
	// AfterCommit runs once a turn is committed, before its tasks are published.
	AfterCommit func(instanceID string, turn uint64) error
	// AfterPublish runs once a turn's tasks are published and its state stored, before its
	// messages are acked.
	AfterPublish func(instanceID string, turn uint64) error
	// BeforeRepublish runs when a worker, handed messages that a turn applied but did not ack
	// (its worker may have died before publishing the turn's tasks), is about to publish that
	// turn's tasks again; stateTurn is the instance's last turn.
	BeforeRepublish func(instanceID string, stateTurn uint64)
	// SharedInbox makes the worker read every instance message through one consumer shared by
	// all workers, instead of owning partitions: two workers then race on one instance.
	SharedInbox bool
	// Intercept sees each delivered instance message first; when it returns true, the backend
	// forgets the delivery (neither applied nor acked), as if another worker held it.
	Intercept func(msg jetstream.Msg) bool
}

type key struct{}

// With returns ctx carrying h.
func With(ctx context.Context, h *Hooks) context.Context { return context.WithValue(ctx, key{}, h) }

// From returns the hooks ctx carries, or empty hooks.
func From(ctx context.Context) *Hooks {
	if h, ok := ctx.Value(key{}).(*Hooks); ok && h != nil {
		return h
	}
	return &Hooks{}
}
