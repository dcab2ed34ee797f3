package natsjs

// Batched direct gets over one shared reply subscription.

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// directGets sends JetStream direct get requests whose replies (several per batch request) come
// back on one wildcard subscription per backend, routed to the caller by the reply subject's last
// token. A subscription per request would cost a subscribe, an unsubscribe and a large pending
// buffer on every turn.
type directGets struct {
	nc *nats.Conn

	mu     sync.Mutex
	sub    *nats.Subscription
	prefix string
	next   uint64
	calls  map[string]chan *nats.Msg
}

// request sends req to subject and returns a channel of its replies and a function to call when
// done reading. The channel holds a whole batch, so the router never blocks.
func (d *directGets) request(subject string, req []byte, batch int) (<-chan *nats.Msg, func(), error) {
	d.mu.Lock()
	if d.sub == nil {
		d.prefix = d.nc.NewRespInbox()
		d.calls = map[string]chan *nats.Msg{}
		sub, err := d.nc.Subscribe(d.prefix+".*", d.route)
		if err != nil {
			d.mu.Unlock()
			return nil, nil, fmt.Errorf("subscribing for direct gets: %w", err)
		}
		d.sub = sub
	}
	d.next++
	token := strconv.FormatUint(d.next, 36)
	ch := make(chan *nats.Msg, batch+2)
	d.calls[token] = ch
	reply := d.prefix + "." + token
	d.mu.Unlock()
	done := func() {
		d.mu.Lock()
		delete(d.calls, token)
		d.mu.Unlock()
	}
	if err := d.nc.PublishRequest(subject, reply, req); err != nil {
		done()
		return nil, nil, err
	}
	return ch, done, nil
}

func (d *directGets) route(msg *nats.Msg) {
	token := msg.Subject[len(d.prefix)+1:]
	d.mu.Lock()
	ch := d.calls[token]
	d.mu.Unlock()
	if ch != nil {
		select {
		case ch <- msg:
		default: // more replies than asked for: drop rather than block every other reader
		}
	}
}

// next returns the next reply on ch, or ctx's error.
func nextReply(ctx context.Context, ch <-chan *nats.Msg) (*nats.Msg, error) {
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
