package natsjs

// Delivery counts that outlive consumers, and deliveries held alive.
//
// A partition consumer counts the deliveries of its messages, but a new owner of the partition
// creates a new consumer, whose count starts at 1 again. A message that stops the worker that
// takes it (it crashes the process, or exhausts its memory) would then move from worker to
// worker for ever, each taking it as a first delivery. So the first message of a work item is
// counted in the delivery bucket (key: the instance's token) whenever it may have been taken
// before by a worker that is gone: it came through a consumer that took its partition over from
// a dead member and was in the stream before that consumer existed ("suspect"), or the consumer
// delivered it before. The engine dead-letters a message whose count passes its limit
// (backend.WorkMessage.Deliveries). Counting costs a read and a write, only for those items.
//
// A worker also keeps the deliveries it holds alive while it makes progress: the inbox's ack wait
// is short (the lease TTL, so that a delivery lost in a failover comes back within it), and a
// message that waits longer in this worker's queues, or in a long turn, is extended with
// InProgress, as long as the worker ended a work item within the last half ack wait. A worker
// whose every turn is stuck extends nothing, so its messages are delivered again (to another
// worker, where one may take them).

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deliveryAge is how long a delivery count is kept after its last change.
const deliveryAge = 24 * time.Hour

// deliveryRecord is the value of a delivery bucket key: how many times the instance message at
// stream sequence Seq was taken into a work item.
type deliveryRecord struct {
	Seq   uint64 `json:"seq"`
	Count uint64 `json:"count"`
}

// deliveryBucket binds the delivery bucket, creating it if it is missing.
func (b *Backend) deliveryBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return b.bucket(ctx, jetstream.KeyValueConfig{
		Bucket:      b.names.DeliveryBucket(),
		Description: "jetflow: deliveries of instance messages that may have stopped a worker",
		TTL:         deliveryAge,
	})
}

// mayBeRetaken reports whether m may have been taken before by a worker that is gone, so that
// its delivery is counted durably.
func (m *inboxMessage) mayBeRetaken() bool {
	return m.msg != nil && !m.counted && (m.suspect || m.delivered > 1)
}

// countDelivery counts the delivery of m, the first message of instance id's work item, in the
// delivery bucket and returns the count: at least the consumer's own, and one more than the
// count stored for the same message. A suspect message without a stored count was probably
// taken by the dead member: it counts 2. When the bucket cannot be reached, the consumer's count
// stands.
func (w *workItems) countDelivery(ctx context.Context, idTok string, m *inboxMessage) uint64 {
	count := m.delivered
	kv := w.deliveries
	if kv == nil {
		return count
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var prev deliveryRecord
	e, err := kv.Get(ctx, idTok)
	switch {
	case err == nil:
		if json.Unmarshal(e.Value(), &prev) != nil || prev.Seq != m.seq {
			prev = deliveryRecord{}
		}
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		w.b.log.Warn().Err(err).Str(fieldInstance, m.InstanceID).Msg("reading a delivery count")
		return count
	}
	switch {
	case prev.Count > 0:
		count = max(count, prev.Count+1)
	case m.suspect:
		count = max(count, 2)
	}
	if _, err := kv.Put(ctx, idTok, mustJSON(deliveryRecord{Seq: m.seq, Count: count})); err != nil {
		w.b.log.Warn().Err(err).Str(fieldInstance, m.InstanceID).Msg("storing a delivery count")
	}
	m.counted = true
	return count
}

// forgetDelivery deletes instance id's delivery count once its message is applied.
func (w *workItems) forgetDelivery(ctx context.Context, idTok string) {
	if w.deliveries == nil {
		return
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := w.deliveries.Delete(ctx, idTok); err != nil {
		w.b.log.Debug().Err(err).Str("key", idTok).Msg("deleting a delivery count")
	}
}

// heldDeliveries are the deliveries a worker holds and has not settled (acked, naked or
// dead-lettered), with when each was received or last extended.
type heldDeliveries struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]time.Time
}

// progressed records that the worker ended a work item now.
func (w *workItems) progressed() { w.lastProgress.Store(time.Now().UnixNano()) }

func (h *heldDeliveries) add(msg jetstream.Msg) {
	h.mu.Lock()
	if h.msgs == nil {
		h.msgs = map[jetstream.Msg]time.Time{}
	}
	h.msgs[msg] = time.Now()
	h.mu.Unlock()
}

func (h *heldDeliveries) remove(msgs []inboxMessage) {
	h.mu.Lock()
	for _, m := range msgs {
		if m.msg != nil {
			delete(h.msgs, m.msg)
		}
	}
	h.mu.Unlock()
}

// keepAlive extends, until ctx ends, the deliveries held for longer than half the ack wait,
// while the worker makes progress.
func (w *workItems) keepAlive(ctx context.Context, ackWait time.Duration) {
	tick := time.NewTicker(ackWait / 4)
	defer tick.Stop()
	w.progressed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(time.Unix(0, w.lastProgress.Load())) > ackWait/2 {
			continue // stuck: let the server deliver them again
		}
		var due []jetstream.Msg
		w.held.mu.Lock()
		for msg, at := range w.held.msgs {
			if now.Sub(at) > ackWait/2 {
				due = append(due, msg)
				w.held.msgs[msg] = now
			}
		}
		w.held.mu.Unlock()
		var gone []inboxMessage
		for _, msg := range due {
			if err := msg.InProgress(); err != nil {
				gone = append(gone, inboxMessage{msg: msg}) // its connection is closed
			}
		}
		w.held.remove(gone)
	}
}
