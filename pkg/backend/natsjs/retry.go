package natsjs

// Retrying requests through a cluster failover.

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// attemptTimeout bounds one request of the turn path. A request in flight to a server that goes
// away is never answered; in a cluster the new leader, elected within seconds, answers the
// next attempt, so the turn waits a few seconds instead of the whole request timeout.
const attemptTimeout = 2 * time.Second

// retryPause is the pause between attempts.
const retryPause = 50 * time.Millisecond

// retry runs op, each attempt with its own attemptTimeout, until it succeeds, fails for another
// reason than an unanswered request, or ctx ends. op must be safe to repeat: every caller's
// request is idempotent or checked (a message ID, an expected revision, a read).
func retry(ctx context.Context, op func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		select {
		case <-time.After(retryPause):
		case <-ctx.Done():
			return err
		}
	}
}

// unanswered reports whether err means that a request got no answer (a timeout, or no server
// listening while a stream elects a leader), as opposed to an answer that refused it.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
