package engine

import (
	"context"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// DeadLetter is the record of a message that could not be processed; see backend.DeadLetter.
type DeadLetter = backend.DeadLetter

// DeadLetters returns up to n dead letters recorded after position after (0: from the first),
// oldest first; pass the last one's Position to read on. It only reads.
func (c *Client) DeadLetters(ctx context.Context, after uint64, n int) ([]DeadLetter, error) {
	return c.b.DeadLetters(ctx, after, n)
}
