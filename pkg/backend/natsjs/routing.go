package natsjs

// Version routing (backend.VersionRouter): the worker that owns an instance's partition but not
// the orchestrator version the instance runs hands the instance to a worker that has it.
//
//   - every worker subscribes, in queue group RouteQueue, to jetflow.route.<name>.<version> for
//     each orchestrator version it serves (ServeOrchestrators), for as long as it delivers work;
//   - the owner sends a request there naming the instance and the last inbox sequence its work
//     item holds; no responder means no live worker serves the version (backend.ErrNoWorker);
//   - the worker that takes the request reads the instance's messages up to that sequence from
//     the inbox (as it reads messages held by another worker), runs them as a work item of its
//     own, and answers once the item ended; its turn is committed like any other (one of two
//     concurrent commits wins), and the owner, which still holds the messages, acks those the
//     committed state says are applied and hands the others back.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// routeRequest is the body of a request on a route subject.
type routeRequest struct {
	InstanceID string `json:"instanceId"`
	// Through is the inbox sequence of the last message the owner's work item holds.
	Through uint64 `json:"through"`
}

// routeReply answers a routeRequest once the routed work item ended.
type routeReply struct {
	Error string `json:"error,omitempty"`
}

// routeTimeout bounds the wait for a routed work item; routeRetryDelay is how long the owner
// waits before it routes messages that the routed item did not apply.
const (
	routeTimeout    = 30 * time.Second
	routeRetryDelay = time.Second
)

var _ backend.VersionRouter = (*Backend)(nil)

// ServeOrchestrators implements backend.VersionRouter.
func (b *Backend) ServeOrchestrators(_ context.Context, versions []backend.OrchestratorVersion) error {
	subjects := make([]string, 0, len(versions))
	for _, v := range versions {
		subject, err := b.routeSubject(v)
		if err != nil {
			return err
		}
		subjects = append(subjects, subject)
	}
	b.items.mu.Lock()
	b.items.routeSubjects = subjects
	b.items.mu.Unlock()
	return nil
}

func (b *Backend) routeSubject(v backend.OrchestratorVersion) (string, error) {
	nameTok, err := EncodeToken(v.Name)
	if err != nil {
		return "", fmt.Errorf("orchestrator %s: %w", v, err)
	}
	verTok, err := VersionToken(v.Version)
	if err != nil {
		return "", fmt.Errorf("orchestrator %s: %w", v, err)
	}
	return b.names.RouteSubject(nameTok, verTok), nil
}

// serveRoutes takes routed instances of the served orchestrator versions until ctx ends.
func (w *workItems) serveRoutes(ctx context.Context) {
	w.mu.Lock()
	subjects := w.routeSubjects
	w.mu.Unlock()
	nc := w.b.js.Conn()
	var subs []*nats.Subscription
	for _, subject := range subjects {
		sub, err := nc.QueueSubscribe(subject, RouteQueue, func(msg *nats.Msg) { go w.routedIn(ctx, msg) })
		if err != nil {
			w.b.log.Warn().Err(err).Str("subject", subject).Msg("subscribing to routed work: instances of this version wait for another worker")
			continue
		}
		subs = append(subs, sub)
	}
	<-ctx.Done()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
}

// routedIn queues a routed instance's messages as if this worker had received them; the request
// is answered when the work item ends (release).
func (w *workItems) routedIn(ctx context.Context, msg *nats.Msg) {
	var req routeRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil || req.InstanceID == "" {
		respondRoute(msg, "not a route request")
		return
	}
	id := req.InstanceID
	s, err := w.b.readState(ctx, id)
	if err != nil {
		respondRoute(msg, err.Error())
		return
	}
	var after uint64
	if s != nil {
		after = s.LastSeq
	}
	var msgs []inboxMessage
	if req.Through > after {
		if msgs, err = w.b.readInboxThrough(ctx, id, after, req.Through); err != nil {
			respondRoute(msg, err.Error())
			return
		}
	}
	w.mu.Lock()
	q := w.queues[id]
	if q == nil {
		q = &instanceQueue{}
		w.queues[id] = q
	}
	q.msgs = append(q.msgs, msgs...)
	q.fresh = true
	q.replies = append(q.replies, msg)
	signal := !q.out && !q.queued
	q.queued = q.queued || signal
	w.mu.Unlock()
	if signal {
		w.pushReady(id)
	}
}

func respondRoute(msg *nats.Msg, errText string) {
	_ = msg.Respond(mustJSON(routeReply{Error: errText}))
}

// readInboxThrough returns the instance's queued messages with after < seq <= through, in order.
func (b *Backend) readInboxThrough(ctx context.Context, id string, after, through uint64) ([]inboxMessage, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	var out []inboxMessage
	err = b.scan(ctx, b.names.InstanceStream(), b.names.StoredInstanceFilter(idTok), after+1, through, func(n uint64, msg *nats.Msg) error {
		m := inboxMessage{seq: n, delivered: 1} // its delivery is acked by the worker that routed it
		m.Data = msg.Data
		b.parseInto(&m, msg.Header.Get(jetstream.SubjectHeader), msg.Header)
		if m.err == nil { // the owner dead-letters a message with an unusable subject
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
	}
	return out, nil
}

// RouteOrchestrationWorkItem implements backend.VersionRouter.
func (b *Backend) RouteOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, v backend.OrchestratorVersion) error {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return fmt.Errorf("routing %q: not a work item of this backend", item.InstanceID)
	}
	subject, err := b.routeSubject(v)
	if err != nil {
		return err
	}
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.done {
		return fmt.Errorf("routing %q: the work item was completed or abandoned: %w", item.InstanceID, backend.ErrConflict)
	}
	req := routeRequest{InstanceID: item.InstanceID, Through: tok.msgs[len(tok.msgs)-1].seq}
	rctx, cancel := context.WithTimeout(ctx, routeTimeout)
	defer cancel()
	msg, err := b.js.Conn().RequestWithContext(rctx, subject, mustJSON(req))
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("routing %q to %s: %w", item.InstanceID, v, backend.ErrNoWorker)
	}
	if err != nil {
		return fmt.Errorf("routing %q to %s: %w", item.InstanceID, v, err)
	}
	var reply routeReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Error != "" {
		return fmt.Errorf("routing %q to %s: the worker answered %q", item.InstanceID, v, msg.Data)
	}
	s, err := b.readState(ctx, item.InstanceID)
	if err != nil {
		return err
	}
	b.items.routed(ctx, item.InstanceID, tok, s)
	return nil
}

// routed ends the item of a routed instance: the messages that state s applied are acked, the
// others handed back.
func (w *workItems) routed(ctx context.Context, id string, tok *itemToken, s *storedState) {
	tok.done = true
	var applied, rest []inboxMessage
	for _, m := range tok.msgs {
		if s != nil && m.seq <= s.LastSeq {
			applied = append(applied, m)
		} else {
			rest = append(rest, m)
		}
	}
	w.ackAll(tok.received)
	w.ackAll(applied)
	w.settled(ctx, id, tok)
	if len(rest) == 0 {
		w.remember(id, s)
		w.release(id, nil)
		return
	}
	delay := time.Duration(0)
	if len(applied) == 0 {
		delay = routeRetryDelay // the routed item applied nothing: no hot loop
	}
	w.handBack(id, rest, delay)
}

// MarkWaiting implements backend.VersionRouter: it appends a record holding state and no turn.
func (b *Backend) MarkWaiting(ctx context.Context, item *backend.OrchestrationWorkItem, state backend.Instance) error {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return fmt.Errorf("marking %q waiting: not a work item of this backend", item.InstanceID)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(item.InstanceID)
	if err != nil {
		return err
	}
	rec := turnRecord{Pending: state.Status == history.StatusPending, State: storedState{Instance: state}}
	var expect uint64
	if p := tok.state; p != nil {
		rec.State.FirstSeq, rec.State.Turn, rec.State.LastSeq = p.FirstSeq, p.Turn, p.LastSeq
		expect = p.Revision
	}
	if !rec.Pending {
		rec.State.Input = nil // in the generation's first record
	}
	_, err = b.appendRecord(ctx, idTok, mustJSON(rec), expect)
	return wrapf(err, "marking %q waiting", item.InstanceID)
}
