package natsjs

// Activity work items: one durable consumer per activity name, shared by every worker that runs
// it. While an item is out, its task's ack deadline is extended, so a long activity is not
// delivered again while it runs, but only until the attempt's deadline (ExtendActivityWorkItem):
// a worker that hangs past it stops extending, and the task is delivered again after the ack
// wait. Cancels of the activities of ended instances come on a core NATS subject that every
// worker subscribes to.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// activityItems hands out activity work items.
type activityItems struct {
	b       *Backend
	start   sync.Once
	names   []string
	tasks   chan *backend.ActivityWorkItem
	stopped chan struct{} // closed when delivery has ended
	stopErr error         // why, set before stopped is closed

	mu  sync.Mutex
	out map[*activityToken]struct{} // the items handed out and not finished, for cancels
}

// activityToken is the backend's record of an activity item it handed out.
type activityToken struct {
	msg      jetstream.Msg
	task     backend.ActivityTask
	mu       sync.Mutex
	done     bool
	until    time.Time // the ack deadline is extended until then
	stopBeat chan struct{}
	canceled chan struct{} // closed by a cancel of its instance
	cancel   sync.Once
}

func newActivityItems(b *Backend) *activityItems {
	return &activityItems{b: b, tasks: make(chan *backend.ActivityWorkItem), stopped: make(chan struct{}), out: map[*activityToken]struct{}{}}
}

// NextActivityWorkItem implements backend.WorkerBackend.
func (b *Backend) NextActivityWorkItem(ctx context.Context, names []string) (*backend.ActivityWorkItem, error) {
	a := b.activities
	a.start.Do(func() { a.names = names; go a.deliver(ctx) })
	select {
	case item := <-a.tasks:
		return item, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.stopped:
		return nil, a.stopErr
	}
}

// deliver consumes the tasks of the activities until ctx ends. When setting the consumers up
// fails (no answer while a stream elects a leader, say), it tries again: a worker never stops on
// a fault of the network or the servers.
func (a *activityItems) deliver(ctx context.Context) {
	for {
		err := a.consume(ctx)
		if ctx.Err() != nil {
			break
		}
		a.b.log.Warn().Err(err).Msg("activity delivery broke off; starting again")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	a.stopErr = ctx.Err()
	close(a.stopped)
}

func (a *activityItems) consume(ctx context.Context) error {
	b := a.b
	if len(a.names) == 0 {
		<-ctx.Done()
		return nil
	}
	stream, err := b.js.Stream(ctx, b.names.ActivityStream())
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", b.names.ActivityStream(), err)
	}
	var consumers []jetstream.ConsumeContext
	defer func() {
		for _, cc := range consumers {
			cc.Stop()
		}
	}()
	sub, err := b.js.Conn().Subscribe(b.names.ActivityCancelSubjects(), a.onCancel)
	if err != nil {
		return fmt.Errorf("subscribing to activity cancels: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, name := range a.names {
		nameTok, err := EncodeToken(name)
		if err != nil {
			return fmt.Errorf("activity name: %w", err)
		}
		cctx, cancel := withDefaultTimeout(ctx)
		cons, err := stream.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
			Durable:       b.names.ActivityConsumer(nameTok),
			Description:   "jetflow workers: activity " + name,
			FilterSubject: b.names.ActivitySubject(nameTok),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       b.opts.activityAckWait,
			MaxDeliver:    -1,
			MaxAckPending: b.opts.maxAckPending,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("creating consumer for activity %q: %w", name, err)
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) { a.hand(ctx, msg) }, jetstream.PullMaxMessages(b.opts.activityWorkers))
		if err != nil {
			return fmt.Errorf("consuming activity %q: %w", name, err)
		}
		consumers = append(consumers, cc)
	}
	<-ctx.Done()
	return nil
}

// hand turns a task message into a work item and waits for a worker to take it; a task that
// cannot be decoded is dead-lettered. When ctx ends first, the task is left to its ack wait.
func (a *activityItems) hand(ctx context.Context, msg jetstream.Msg) {
	b := a.b
	var task backend.ActivityTask
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq, task.Attempt = md.Sequence.Stream, md.NumDelivered
		if task.Attempt > 1 {
			b.opts.metrics.Redelivered(metrics.SourceActivity)
		}
	}
	if err := json.Unmarshal(msg.Data(), &task); err != nil || task.InstanceID == "" || task.TaskID == 0 {
		reason := "activity task is not valid JSON with instanceId and taskId"
		if err != nil {
			reason += ": " + err.Error()
		}
		if err := b.deadLetter(ctx, "activity", msg.Subject(), seq, msg.Data(), reason); err == nil {
			b.opts.metrics.DeadLettered("activity", metrics.ReasonInvalidActivityTask)
			a.ack(msg, task.InstanceID)
		}
		return
	}
	task.Trace = backend.TraceFrom(msg.Headers().Get)
	tok := &activityToken{msg: msg, task: task, stopBeat: make(chan struct{}), canceled: make(chan struct{}),
		until: time.Now().Add(b.opts.activityAckWait)}
	a.mu.Lock()
	a.out[tok] = struct{}{}
	a.mu.Unlock()
	select {
	case a.tasks <- &backend.ActivityWorkItem{Task: task, Token: tok, Canceled: tok.canceled}:
		go a.heartbeat(tok)
	case <-ctx.Done():
		a.forget(tok)
	}
}

// heartbeat extends the task's ack deadline until its item is completed or abandoned, or its
// deadline (tok.until) has passed.
func (a *activityItems) heartbeat(tok *activityToken) {
	tick := time.NewTicker(a.b.opts.activityAckWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-tok.stopBeat:
			return
		case <-tick.C:
			tok.mu.Lock()
			extend := !tok.done && time.Now().Before(tok.until)
			tok.mu.Unlock()
			if extend {
				_ = tok.msg.InProgress()
			}
		}
	}
}

// finish ends an item once; it reports false if it had ended already.
func (tok *activityToken) finish(a *activityItems) bool {
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.done {
		return false
	}
	tok.done = true
	close(tok.stopBeat)
	a.forget(tok)
	return true
}

// forget drops an item from those cancels reach.
func (a *activityItems) forget(tok *activityToken) {
	a.mu.Lock()
	delete(a.out, tok)
	a.mu.Unlock()
}

// onCancel closes the Canceled channels of the items a cancel message covers. A message that is
// not a cancel is ignored: it is core NATS, nothing to redeliver or dead-letter.
func (a *activityItems) onCancel(msg *nats.Msg) {
	var c backend.ActivityCancel
	if err := json.Unmarshal(msg.Data, &c); err != nil || c.InstanceID == "" {
		a.b.log.Warn().Str("subject", msg.Subject).Msg("ignoring an activity cancel that is not valid JSON with instanceId")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for tok := range a.out {
		if c.Covers(tok.task) {
			tok.cancel.Do(func() { close(tok.canceled) })
		}
	}
}

// ExtendActivityWorkItem implements backend.WorkerBackend: it sends "in progress" at once and
// keeps extending the task until `until`.
func (b *Backend) ExtendActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, until time.Time) error {
	tok, ok := item.Token.(*activityToken)
	if !ok {
		return errors.New("extending an activity: not a work item of this backend")
	}
	tok.mu.Lock()
	done := tok.done
	tok.until = until
	tok.mu.Unlock()
	if done || !time.Now().Before(until) {
		return nil
	}
	if err := tok.msg.InProgress(); err != nil {
		return fmt.Errorf("extending activity %q of %q: %w", item.Task.Name, item.Task.InstanceID, err)
	}
	return nil
}

// CancelActivities implements backend.WorkerBackend: a core NATS publish to the instance's
// cancel subject, which every worker running activities subscribes to.
func (b *Backend) CancelActivities(ctx context.Context, c backend.ActivityCancel) error {
	idTok, err := b.idToken(c.InstanceID)
	if err != nil {
		return err
	}
	if err := b.js.Conn().Publish(b.names.ActivityCancelSubject(idTok), mustJSON(c)); err != nil {
		return fmt.Errorf("cancelling the activities of %q: %w", c.InstanceID, err)
	}
	return nil
}

// CompleteActivityWorkItem implements backend.WorkerBackend. The result is published with a
// message ID derived from the task, so a result sent twice is stored once.
func (b *Backend) CompleteActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, result backend.TaskResult) error {
	tok, ok := item.Token.(*activityToken)
	if !ok {
		return errors.New("completing an activity: not a work item of this backend")
	}
	task := item.Task
	result.Generation, result.TaskID, result.Rewind = task.Generation, task.TaskID, task.Rewind
	err := b.Send(ctx, backend.Message{InstanceID: task.InstanceID, Kind: backend.KindResult, Data: mustJSON(result), Trace: result.Trace})
	if err != nil {
		return fmt.Errorf("sending the result of activity %q to %q: %w", task.Name, task.InstanceID, err)
	}
	if tok.finish(b.activities) {
		b.activities.ack(tok.msg, task.InstanceID)
	}
	return nil
}

// AbandonActivityWorkItem implements backend.WorkerBackend.
func (b *Backend) AbandonActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, delay time.Duration) error {
	tok, ok := item.Token.(*activityToken)
	if !ok {
		return errors.New("abandoning an activity: not a work item of this backend")
	}
	if !tok.finish(b.activities) {
		return nil
	}
	if err := tok.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("handing back activity %q of %q: %w", item.Task.Name, item.Task.InstanceID, err)
	}
	return nil
}

func (a *activityItems) ack(msg jetstream.Msg, instanceID string) {
	if err := msg.Ack(); err != nil {
		a.b.ackErrors.Add(1)
		a.b.log.Warn().Err(err).Str(fieldInstance, instanceID).Msg("ack of an activity task failed; it may run again")
	}
}
