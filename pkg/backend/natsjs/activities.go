package natsjs

// Activity work items: one durable consumer per activity name, shared by every worker that runs
// it. While an item is out, its task's ack deadline is extended, so a long activity is not
// delivered again while it runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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
}

// activityToken is the backend's record of an activity item it handed out.
type activityToken struct {
	msg      jetstream.Msg
	mu       sync.Mutex
	done     bool
	stopBeat chan struct{}
}

func newActivityItems(b *Backend) *activityItems {
	return &activityItems{b: b, tasks: make(chan *backend.ActivityWorkItem), stopped: make(chan struct{})}
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
	tok := &activityToken{msg: msg, stopBeat: make(chan struct{})}
	select {
	case a.tasks <- &backend.ActivityWorkItem{Task: task, Token: tok}:
		go a.heartbeat(tok)
	case <-ctx.Done():
	}
}

// heartbeat extends the task's ack deadline until its item is completed or abandoned.
func (a *activityItems) heartbeat(tok *activityToken) {
	tick := time.NewTicker(a.b.opts.activityAckWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-tok.stopBeat:
			return
		case <-tick.C:
			_ = tok.msg.InProgress()
		}
	}
}

// finish ends an item once; it reports false if it had ended already.
func (tok *activityToken) finish() bool {
	tok.mu.Lock()
	defer tok.mu.Unlock()
	if tok.done {
		return false
	}
	tok.done = true
	close(tok.stopBeat)
	return true
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
	if tok.finish() {
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
	if !tok.finish() {
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
