package engine

// Recursive purge: an instance and the sub-orchestrations its history started.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// PurgeOption configures Purge and PurgeInstance.
type PurgeOption func(*purgeOptions)

type purgeOptions struct{ recursive bool }

// WithRecursivePurge says whether a purge also purges the instance's sub-orchestrations, and
// theirs (default true).
func WithRecursivePurge(recursive bool) PurgeOption {
	return func(o *purgeOptions) { o.recursive = recursive }
}

// maxPurgeDepth bounds the nesting of sub-orchestrations a recursive purge follows.
const maxPurgeDepth = 64

// PurgeInstance deletes an ended instance's state and history and returns how many instances it
// purged. Unless WithRecursivePurge(false) is given, it first purges the sub-orchestrations the
// instance's current generation started, recursively: those that have ended are purged; those
// still running (a parent that completed without awaiting them) are terminated, recursively,
// and left to be purged once they have ended; those already gone are skipped. It returns
// ErrInstanceNotFound or ErrInstanceNotEnded for the instance itself.
func (c *Client) PurgeInstance(ctx context.Context, id string, opts ...PurgeOption) (int, error) {
	o := purgeOptions{recursive: true}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.recursive {
		return c.purgeOne(ctx, id)
	}
	return c.purgeTree(ctx, id, 0)
}

func (c *Client) purgeTree(ctx context.Context, id string, depth int) (int, error) {
	s, err := c.b.GetInstance(ctx, id)
	if err != nil {
		return 0, err
	}
	if !s.Status.IsTerminal() {
		return 0, fmt.Errorf("purging %q: %w (status %s)", id, ErrInstanceNotEnded, s.Status)
	}
	n := 0
	if depth < maxPurgeDepth {
		children, err := c.subOrchestrations(ctx, id)
		if err != nil {
			return 0, err
		}
		for _, child := range children {
			k, err := c.purgeTree(ctx, child, depth+1)
			n += k
			switch {
			case err == nil, errors.Is(err, ErrInstanceNotFound):
			case errors.Is(err, ErrInstanceNotEnded):
				err := c.Terminate(ctx, child, "parent "+id+" purged")
				if err != nil && !errors.Is(err, ErrInstanceEnded) && !errors.Is(err, ErrInstanceNotFound) {
					return n, fmt.Errorf("terminating sub-orchestration %q of %q: %w", child, id, err)
				}
			default:
				return n, fmt.Errorf("purging sub-orchestration %q of %q: %w", child, id, err)
			}
		}
	}
	k, err := c.purgeOne(ctx, id)
	return n + k, err
}

// subOrchestrations returns the instance IDs of the sub-orchestrations the history of id's
// current generation started, each once.
func (c *Client) subOrchestrations(ctx context.Context, id string) ([]string, error) {
	events, err := c.b.GetHistory(ctx, id)
	if errors.Is(err, ErrInstanceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the history of %q: %w", id, err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, ev := range events {
		if ev.Type == history.SubOrchestrationInstanceCreated && !seen[ev.InstanceID] && ev.InstanceID != id {
			seen[ev.InstanceID] = true
			ids = append(ids, ev.InstanceID)
		}
	}
	return ids, nil
}

// purgeOne purges the instance alone (once more after a conflict).
func (c *Client) purgeOne(ctx context.Context, id string) (int, error) {
	err := c.b.PurgeInstance(ctx, id)
	if errors.Is(err, backend.ErrConflict) {
		err = c.b.PurgeInstance(ctx, id)
	}
	if err != nil {
		return 0, err
	}
	return 1, nil
}
