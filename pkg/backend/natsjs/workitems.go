package natsjs

// Orchestration work items: the instance messages a worker's partition consumers deliver are
// queued per instance and handed out as work items, one instance at a time, in inbox order.
//
// This is where the JetStream mechanics that the engine does not see live:
//   - a message whose stream sequence is not above the state's lastSeq was applied by an earlier
//     turn whose ack was lost: it is acked and left out;
//   - messages delivered through one partition consumer (one epoch) come in inbox order; when an
//     item's messages span epochs, or the instance had messages handed back, the inbox is read
//     so that messages another worker holds are applied in their place (readInbox);
//   - an item whose state says the instance is absent, pending or ended is built on a fresh
//     read that also looks for turns committed beyond the state (a worker died between commit
//     and publish); those are published first (recover);
//   - completions are committed with kv.Create on the turn's key, so one of two wins.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/internal/testhooks"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// inboxMessage is an instance message as this worker received it.
type inboxMessage struct {
	backend.Message
	seq       uint64 // stream sequence: the order of application
	delivered uint64 // delivery count, 1 on first delivery
	subject   string // as published, for dead-letter records
	err       error  // the subject could not be parsed
	// epoch identifies the partition consumer the message came through: messages with the same
	// non-zero epoch came, in inbox order, through a consumer that no other worker read while
	// it existed. 0: read from the inbox, or shared.
	epoch uint64
	msg   jetstream.Msg // nil when read from the inbox: whoever holds it acks it
	// suspect: it came through a consumer that took its partition over from a dead member,
	// and may have been taken by that member (deliveries.go).
	suspect bool
	counted bool // its delivery is counted in the delivery bucket
}

// maxConflicts bounds the fresh retries of an instance whose completions keep conflicting; then
// its messages are handed back for a while.
const maxConflicts = 50

// stateCacheSize bounds the instance states a worker keeps between work items.
const stateCacheSize = 10000

// workItems hands out orchestration work items.
type workItems struct {
	b     *Backend
	hooks *testhooks.Hooks

	start    sync.Once
	stopped  chan struct{} // closed when delivery has ended
	stopErr  error         // why, set before stopped is closed
	readyMu  sync.Mutex
	ready    []string      // instances with messages and no item out, in arrival order
	readySig chan struct{} // signalled when ready gains an instance

	mu     sync.Mutex
	queues map[string]*instanceQueue
	states map[string]*storedState // last known state of instances, up to stateCacheSize

	held         heldDeliveries     // kept alive until settled while the worker progresses (deliveries.go)
	lastProgress atomic.Int64       // when a work item last ended, Unix nanoseconds
	deliveries   jetstream.KeyValue // the delivery bucket; nil if it could not be bound
	// routeSubjects are where this worker takes routed instances (routing.go); under mu.
	routeSubjects []string
}

// instanceQueue holds an instance's messages that are not in an item yet.
type instanceQueue struct {
	msgs      []inboxMessage
	out       bool // an item of the instance is out
	queued    bool // the instance is in ready
	fresh     bool // its next item is read on fresh state
	readInbox bool // its next item reads the inbox (messages were handed back)
	conflicts int
	// replies are the route requests (routing.go) to answer when its item ends.
	replies []*nats.Msg
}

// itemToken is the backend's record of an item it handed out.
type itemToken struct {
	mu       sync.Mutex
	done     bool
	msgs     []inboxMessage // as in the item's Messages
	state    *storedState   // as read for the item; nil if absent
	received []inboxMessage // delivered to this worker and left out (already applied)
	counted  bool           // the first message's delivery is counted in the delivery bucket
}

func newWorkItems(b *Backend) *workItems {
	return &workItems{
		b:        b,
		stopped:  make(chan struct{}),
		readySig: make(chan struct{}, 1),
		queues:   map[string]*instanceQueue{},
		states:   map[string]*storedState{},
	}
}

// NextOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) NextOrchestrationWorkItem(ctx context.Context) (*backend.OrchestrationWorkItem, error) {
	w := b.items
	w.start.Do(func() { w.hooks = testhooks.From(ctx); go w.deliver(ctx) })
	for {
		id, err := w.nextReady(ctx)
		if err != nil {
			return nil, err
		}
		item, err := w.take(ctx, id)
		if err != nil {
			b.log.Warn().Err(err).Str(fieldInstance, id).Msg("reading the instance for a work item; its messages come back")
			continue
		}
		if item != nil {
			return item, nil
		}
	}
}

// deliver runs the inbox consumers until ctx ends. When delivery breaks off (the connection to
// NATS failed long enough for a watch to end), it starts again: a worker never stops on a
// network fault.
func (w *workItems) deliver(ctx context.Context) {
	go w.keepAlive(ctx, w.b.opts.inboxAckWait)
	go w.serveRoutes(ctx)
	var err error
	if w.deliveries == nil { // a backend from Open
		if w.deliveries, err = w.b.deliveryBucket(ctx); err != nil {
			w.b.log.Warn().Err(err).Msg("no delivery bucket: a message that stops workers is counted by each consumer alone")
		}
	}
	for {
		if w.hooks.SharedInbox {
			err = w.b.consumeShared(ctx, w.enqueue)
		} else {
			err = w.b.consumeInbox(ctx, w.enqueue)
		}
		if ctx.Err() != nil {
			break
		}
		w.b.log.Warn().Err(err).Msg("inbox delivery broke off; starting again")
		select {
		case <-ctx.Done():
		case <-time.After(w.b.opts.leaseTTL / 4):
		}
	}
	w.stopErr = ctx.Err()
	close(w.stopped)
}

// enqueue queues a delivered message under its instance.
func (w *workItems) enqueue(m inboxMessage) {
	if w.hooks.Intercept != nil && m.msg != nil && w.hooks.Intercept(m.msg) {
		return
	}
	if m.msg != nil {
		w.held.add(m.msg)
	}
	if m.err != nil {
		w.deadLetter(context.Background(), m, metrics.ReasonUnusableSubject, fmt.Sprintf("unusable subject %q: %v", m.subject, m.err))
		return
	}
	w.mu.Lock()
	q := w.queues[m.InstanceID]
	if q == nil {
		q = &instanceQueue{}
		w.queues[m.InstanceID] = q
	}
	q.msgs = append(q.msgs, m)
	signal := !q.out && !q.queued
	q.queued = q.queued || signal
	w.mu.Unlock()
	if signal {
		w.pushReady(m.InstanceID)
	}
}

func (w *workItems) pushReady(id string) {
	w.readyMu.Lock()
	w.ready = append(w.ready, id)
	w.readyMu.Unlock()
	select {
	case w.readySig <- struct{}{}:
	default:
	}
}

// nextReady waits for an instance in ready and takes it out.
func (w *workItems) nextReady(ctx context.Context) (string, error) {
	for {
		w.readyMu.Lock()
		if len(w.ready) > 0 {
			id := w.ready[0]
			w.ready = w.ready[1:]
			more := len(w.ready) > 0
			w.readyMu.Unlock()
			if more {
				select {
				case w.readySig <- struct{}{}: // wake another taker
				default:
				}
			}
			return id, nil
		}
		w.readyMu.Unlock()
		select {
		case <-w.readySig:
		case <-ctx.Done():
			return "", ctx.Err()
		case <-w.stopped:
			return "", w.stopErr
		}
	}
}

// take builds the work item of instance id from its queued messages; nil if none is left to
// apply.
func (w *workItems) take(ctx context.Context, id string) (*backend.OrchestrationWorkItem, error) {
	w.mu.Lock()
	q := w.queues[id]
	msgs, fresh, readInbox := q.msgs, q.fresh, q.readInbox
	q.msgs, q.queued, q.out, q.fresh, q.readInbox = nil, false, true, false, false
	w.mu.Unlock()
	msgs, superseded := dedupBySeq(msgs)
	w.held.remove(superseded)
	msgs = w.takePurges(ctx, id, msgs)
	if len(msgs) == 0 {
		w.release(id, nil)
		return nil, nil
	}

	item, err := w.build(ctx, id, msgs, fresh, readInbox)
	if err != nil {
		w.handBack(id, msgs, time.Second)
		return nil, err
	}
	if item == nil {
		w.release(id, nil)
	}
	return item, nil
}

// build reads the instance's state (cached, or fresh when asked or needed) and returns the work
// item of msgs; nil if every message was applied already.
func (w *workItems) build(ctx context.Context, id string, msgs []inboxMessage, fresh, readInbox bool) (*backend.OrchestrationWorkItem, error) {
	for attempt := 0; ; attempt++ {
		s, err := w.state(ctx, id, fresh)
		if err != nil {
			return nil, err
		}
		var lastSeq uint64
		if s != nil {
			lastSeq = s.LastSeq
		}
		tok := &itemToken{state: s}
		for _, m := range msgs {
			if m.seq <= lastSeq {
				tok.received = append(tok.received, m) // applied by a turn whose ack was lost
				continue
			}
			tok.msgs = append(tok.msgs, m)
		}
		if len(tok.received) > 0 {
			seqs := make([]uint64, len(tok.received))
			for i, m := range tok.received {
				seqs[i] = m.seq
			}
			if err := w.b.republish(ctx, id, s, seqs); err != nil {
				return nil, err
			}
		}
		if len(tok.msgs) == 0 {
			w.ackAll(tok.received)
			return nil, nil
		}
		if readInbox || !sameEpoch(tok.msgs) {
			// Messages of this instance that precede or fall between ours in the inbox but went
			// to another worker (or were handed back) are applied in their place.
			read, err := w.b.readInbox(ctx, id, lastSeq, tok.msgs[len(tok.msgs)-1].seq)
			if errors.Is(err, backend.ErrConflict) && attempt < maxConflicts {
				w.b.conflicts.Add(1)
				fresh = true
				continue
			}
			if err != nil {
				return nil, err
			}
			tok.msgs = mergeBySeq(tok.msgs, read)
		}
		if !fresh && mayDiscard(s, tok.msgs) {
			// A message may be discarded on this state's word, so it must be the latest: another
			// worker may have started the instance (or a new generation) since it was read.
			fresh = true
			continue
		}
		if first := &tok.msgs[0]; first.mayBeRetaken() {
			if idTok, err := w.b.idToken(id); err == nil {
				first.delivered = w.countDelivery(ctx, idTok, first)
				tok.counted = true
			}
		}
		return w.item(id, s, tok), nil
	}
}

func (w *workItems) item(id string, s *storedState, tok *itemToken) *backend.OrchestrationWorkItem {
	item := &backend.OrchestrationWorkItem{InstanceID: id, Token: tok, Messages: make([]backend.WorkMessage, len(tok.msgs))}
	if s != nil {
		inst := s.instance()
		item.State = &inst
	}
	for i, m := range tok.msgs {
		item.Messages[i] = backend.WorkMessage{Message: m.Message, Deliveries: m.delivered}
	}
	return item
}

// mayDiscard reports whether the engine may discard one of msgs on the word of s: the instance
// is absent, pending (its start not applied) or ended, and a message is not a start.
func mayDiscard(s *storedState, msgs []inboxMessage) bool {
	if s != nil && (s.Status == history.StatusRunning || s.Status == history.StatusSuspended) {
		return false
	}
	for _, m := range msgs {
		if m.Kind != backend.KindStart {
			return true
		}
	}
	return false
}

// sameEpoch reports whether msgs all came through one partition consumer.
func sameEpoch(msgs []inboxMessage) bool {
	epoch := msgs[0].epoch
	if epoch == 0 {
		return false
	}
	for _, m := range msgs {
		if m.epoch != epoch {
			return false
		}
	}
	return true
}

// dedupBySeq sorts msgs by sequence and keeps one of each: a message can be queued twice when it
// is delivered again (handed back, or its ack wait expired) while an earlier copy waits, or
// was read from the inbox. The latest delivery is kept, since its ack is the one that counts;
// the copies it supersedes are returned apart.
func dedupBySeq(msgs []inboxMessage) (kept, superseded []inboxMessage) {
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].seq < msgs[j].seq })
	out := msgs[:0]
	for _, m := range msgs {
		if n := len(out); n > 0 && out[n-1].seq == m.seq {
			if better(m, out[n-1]) {
				m.counted = m.counted || out[n-1].counted
				out[n-1], m = m, out[n-1]
			}
			superseded = append(superseded, m)
			continue
		}
		out = append(out, m)
	}
	return out, superseded
}

// better reports whether copy a of a message is to be kept over copy b: a delivery over a read,
// a later delivery over an earlier one.
func better(a, b inboxMessage) bool {
	if (a.msg == nil) != (b.msg == nil) {
		return a.msg != nil
	}
	return a.delivered > b.delivered
}

// mergeBySeq merges the delivered messages with those read from the inbox, in sequence order;
// a message in both is taken as delivered (its ack counts).
func mergeBySeq(delivered, read []inboxMessage) []inboxMessage {
	have := make(map[uint64]bool, len(delivered))
	for _, m := range delivered {
		have[m.seq] = true
	}
	out := append([]inboxMessage(nil), delivered...)
	for _, m := range read {
		// A message with an unusable subject is the business of the worker that holds it,
		// which dead-letters it; it applies to no instance.
		if !have[m.seq] && m.err == nil {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// state returns the instance's state: the cached one, or, when fresh or not cached, the one
// stored.
func (w *workItems) state(ctx context.Context, id string, fresh bool) (*storedState, error) {
	if !fresh {
		w.mu.Lock()
		s, ok := w.states[id]
		w.mu.Unlock()
		if ok {
			return s, nil
		}
	}
	s, err := w.b.readState(ctx, id)
	if err != nil {
		return nil, err
	}
	w.remember(id, s)
	return s, nil
}

// remember caches s as the instance's state (nil forgets it).
func (w *workItems) remember(id string, s *storedState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s == nil || s.Status.IsTerminal() {
		delete(w.states, id)
		return
	}
	if _, ok := w.states[id]; !ok && len(w.states) >= stateCacheSize {
		for other := range w.states { // evict one at random
			delete(w.states, other)
			break
		}
	}
	w.states[id] = s
}

// OrchestrationHistory implements backend.WorkerBackend.
func (b *Backend) OrchestrationHistory(ctx context.Context, item *backend.OrchestrationWorkItem) ([]history.Event, error) {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return nil, fmt.Errorf("history of %q: not a work item of this backend", item.InstanceID)
	}
	idTok, err := b.idToken(item.InstanceID)
	if err != nil {
		return nil, err
	}
	return b.generationEvents(ctx, idTok, tok.state)
}

// CompleteOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) CompleteOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, c *backend.OrchestrationCompletion) (*backend.Instance, error) {
	w := b.items
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return nil, fmt.Errorf("completing %q: not a work item of this backend", item.InstanceID)
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.done {
		return nil, fmt.Errorf("completing %q: the work item was completed or abandoned: %w", item.InstanceID, backend.ErrConflict)
	}
	if c.Applied < 1 || c.Applied > len(tok.msgs) {
		return nil, fmt.Errorf("completing %q: %d messages applied of %d", item.InstanceID, c.Applied, len(tok.msgs))
	}
	applied, rest := tok.msgs[:c.Applied], tok.msgs[c.Applied:]
	for _, d := range c.DeadLetters {
		if d.Index < 0 || d.Index >= c.Applied {
			return nil, fmt.Errorf("completing %q: dead letter %d is not an applied message", item.InstanceID, d.Index)
		}
		if err := w.b.deadLetterInbox(ctx, applied[d.Index], d.Reason); err != nil {
			return nil, err
		}
	}
	if len(c.Events) == 0 {
		if err := b.publishMessages(ctx, withTrace(c.Messages, c.Trace)); err != nil {
			return nil, err
		}
		tok.done = true
		w.ackAll(tok.received)
		w.ackAll(applied)
		w.settled(ctx, item.InstanceID, tok)
		s := tok.state
		if s != nil {
			next := *s
			next.LastSeq = max(s.LastSeq, applied[len(applied)-1].seq)
			w.remember(item.InstanceID, &next)
			s = &next
		}
		w.release(item.InstanceID, rest)
		if s == nil {
			return nil, nil
		}
		inst := s.instance()
		return &inst, nil
	}
	return w.commit(ctx, item.InstanceID, tok, c, applied, rest)
}

// commit stores a completion with events as the instance's next turn and publishes it.
func (w *workItems) commit(ctx context.Context, id string, tok *itemToken, c *backend.OrchestrationCompletion, applied, rest []inboxMessage) (*backend.Instance, error) {
	prev := tok.state
	t := &turnRecord{
		InstanceID: id,
		Number:     1,
		Reset:      c.NewGeneration,
		LastSeq:    applied[len(applied)-1].seq,
		Events:     c.Events,
		Actions:    c.Actions,
		Generation: c.State.Generation,
		Messages:   c.Messages,
		State:      storedState{Instance: c.State},
		Trace:      c.Trace,
	}
	var expect uint64
	if prev != nil {
		t.Number, expect, t.State.FirstSeq = prev.Turn+1, prev.Revision, prev.FirstSeq
		if t.Reset {
			t.PrevFirstSeq = prev.FirstSeq
		}
	}
	t.State.Turn, t.State.LastSeq = t.Number, t.LastSeq
	seq, err := w.b.commitTurn(ctx, t, expect)
	if err != nil {
		if errors.Is(err, backend.ErrConflict) {
			w.b.conflicts.Add(1)
			tok.done = true
			w.retryFresh(id, tok)
		}
		return nil, err
	}
	t.State.Revision = seq
	if t.Reset {
		t.State.FirstSeq = seq
	}
	if err := w.hook(w.hooks.AfterCommit, id, t.Number, tok); err != nil {
		return nil, err
	}
	if err := w.b.publishTurn(ctx, t); err != nil {
		return nil, err
	}
	if err := w.hook(w.hooks.AfterPublish, id, t.Number, tok); err != nil {
		return nil, err
	}
	tok.done = true
	w.ackAll(tok.received)
	w.ackAll(applied)
	w.settled(ctx, id, tok)
	w.remember(id, &t.State)
	w.mu.Lock()
	w.queues[id].conflicts = 0
	w.mu.Unlock()
	w.release(id, rest)
	inst := t.State.instance()
	return &inst, nil
}

// hook runs a test hook; an injected crash ends the item on the spot, as a dead process would:
// its messages come back only after their ack wait, and the next item reads the inbox.
func (w *workItems) hook(h func(string, uint64) error, id string, turn uint64, tok *itemToken) error {
	if h == nil {
		return nil
	}
	err := h(id, turn)
	if errors.Is(err, testhooks.ErrInjectedCrash) {
		tok.done = true
		w.held.remove(tok.msgs) // a dead process keeps nothing alive
		w.held.remove(tok.received)
		w.mu.Lock()
		w.queues[id].readInbox = true
		delete(w.states, id)
		w.mu.Unlock()
		w.release(id, nil)
	}
	return err
}

// retryFresh puts a conflicting item's messages back at the front of the instance's queue, to be
// read again on fresh state; after maxConflicts in a row they are handed back for a while. The
// messages it held as applied are acked: building the item republished their turns' tasks.
func (w *workItems) retryFresh(id string, tok *itemToken) {
	w.ackAll(tok.received)
	w.mu.Lock()
	q := w.queues[id]
	q.conflicts++
	giveUp := q.conflicts > maxConflicts
	if giveUp {
		q.conflicts = 0
	} else {
		q.fresh = true
	}
	delete(w.states, id)
	w.mu.Unlock()
	if giveUp {
		w.handBack(id, tok.msgs, time.Second)
		return
	}
	w.release(id, tok.msgs)
}

// AbandonOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) AbandonOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, delay time.Duration) error {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return fmt.Errorf("abandoning %q: not a work item of this backend", item.InstanceID)
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.done {
		return nil
	}
	tok.done = true
	b.items.ackAll(tok.received) // building the item republished their turns' tasks
	b.items.handBack(item.InstanceID, tok.msgs, delay)
	return nil
}

// handBack naks msgs (they come back after delay), forgets the instance's state, and makes its
// next item read the inbox, since later messages may now be delivered before them.
func (w *workItems) handBack(id string, msgs []inboxMessage, delay time.Duration) {
	w.mu.Lock()
	w.queues[id].readInbox = true
	delete(w.states, id)
	w.mu.Unlock()
	w.held.remove(msgs)
	for _, m := range msgs {
		if m.msg != nil {
			if err := m.msg.NakWithDelay(delay); err != nil {
				w.b.log.Warn().Err(err).Str(fieldInstance, id).Uint64("seq", m.seq).Msg("nak failed; the message comes back after its ack wait")
			}
		}
	}
	w.release(id, nil)
}

// release ends the instance's item: rest (messages not applied, read ones included, so that the
// next item reads the inbox and keeps their order) go back to the front of its queue, and the
// instance is ready again if it has messages.
func (w *workItems) release(id string, rest []inboxMessage) {
	w.progressed()
	w.mu.Lock()
	q := w.queues[id]
	q.out = false
	if len(q.replies) > 0 {
		replies := q.replies
		q.replies = nil
		defer func() {
			for _, r := range replies {
				respondRoute(r, "")
			}
		}()
	}
	q.msgs = slices.Concat(rest, q.msgs)
	if len(q.msgs) == 0 {
		if !q.readInbox && !q.fresh {
			delete(w.queues, id)
		}
		w.mu.Unlock()
		return
	}
	q.queued = true
	w.mu.Unlock()
	w.pushReady(id)
}

func (w *workItems) ackAll(msgs []inboxMessage) {
	w.held.remove(msgs)
	for _, m := range msgs {
		if m.msg == nil {
			continue
		}
		if err := m.msg.Ack(); err != nil {
			w.b.ackErrors.Add(1)
			w.b.log.Warn().Err(err).Str(fieldInstance, m.InstanceID).Uint64("seq", m.seq).Msg("ack failed; the message comes back and is skipped as applied")
		}
	}
}

// deadLetter records m in the dead-letter stream with reason, of class (a metrics.Reason*
// constant), and acks it; if recording fails, m is handed back.
func (w *workItems) deadLetter(ctx context.Context, m inboxMessage, class, reason string) {
	if err := w.b.deadLetterInbox(ctx, m, reason); err != nil {
		w.b.log.Error().Err(err).Str("subject", m.subject).Msg("dead-lettering failed; the message will be redelivered")
		w.held.remove([]inboxMessage{m})
		if m.msg != nil {
			_ = m.msg.NakWithDelay(time.Second)
		}
		return
	}
	w.b.opts.metrics.DeadLettered("inbox", class)
	w.ackAll([]inboxMessage{m})
}

// settled forgets the delivery count of a completed item's first message: it is applied.
func (w *workItems) settled(ctx context.Context, id string, tok *itemToken) {
	if !tok.counted {
		return
	}
	if idTok, err := w.b.idToken(id); err == nil {
		w.forgetDelivery(ctx, idTok)
	}
}
