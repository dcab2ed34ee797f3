package backend

import (
	"errors"
	"fmt"
)

// This file defines the limits on instance data that clients and workers must agree on, and the
// defaults that backends and the engine share; their options refer to them. Each is defined
// once. Other limits are owned where the code that applies them lives, because those packages
// cannot import this one:
//
//   - instance IDs and event, orchestrator and activity names: at most history.MaxNameLength
//     characters, checked by history.CheckName;
//   - a custom status: at most durable.MaxCustomStatusBytes, checked by SetCustomStatus;
//   - any one message of the natsjs store: the NATS server's max_payload, 8 MiB, defined by
//     internal/natsserver.MaxPayload, which nats.conf and deploy/nats.conf must match (a test
//     there checks them).

// ErrInvalidOption is wrapped by errors about an option value out of its range, from backends
// (natsjs.ErrInvalidOption) and the engine (engine.ErrInvalidOption) alike.
var ErrInvalidOption = errors.New("invalid option")

const (
	// DefaultMaxPayload is the largest input, event data or activity result, in bytes, unless
	// configured otherwise (the backend's WithMaxPayload for what clients send,
	// engine.WithMaxPayload for what workers apply; configure both alike): 1 MiB. Bigger data is refused with
	// ErrPayloadTooLarge when sent, and dead-lettered when it reaches a worker.
	DefaultMaxPayload = 1 << 20

	// MinMaxPayload is the smallest payload limit CheckMaxPayload accepts: 1 KiB.
	MinMaxPayload = 1 << 10

	// MaxTurnBytes bounds the payload bytes a worker applies in one turn (one message may take
	// a turn past it, as a turn always applies at least one), so that the turn's history entry
	// stays well within the largest message of the store (the NATS server's max_payload, 8
	// MiB, for natsjs): MaxTurnBytes plus one DefaultMaxPayload message is 3 MiB.
	MaxTurnBytes = 2 << 20
)

// CheckMaxPayload returns an error wrapping ErrInvalidOption if n cannot be a payload limit: it
// must be at least MinMaxPayload bytes.
func CheckMaxPayload(n int) error {
	if n < MinMaxPayload {
		return fmt.Errorf("%w: max payload must be >= %d bytes, got %d", ErrInvalidOption, MinMaxPayload, n)
	}
	return nil
}

// DefaultActivityConcurrency is how many activities a worker runs at once unless configured
// otherwise: the engine's worker runs that many (engine.WithActivityConcurrency), and a backend
// holds that many tasks ready for it (natsjs.WithActivityConcurrency); configure both alike.
const DefaultActivityConcurrency = 64
