package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

var errClosed = errors.New("memory backend closed")

// await waits until take finds work, ctx ends or the backend is closed. take runs with b.mu
// held.
func await[T any](ctx context.Context, b *Backend, take func() (T, bool)) (T, error) {
	var zero T
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return zero, errClosed
		}
		v, ok := take()
		wake := b.wake
		b.mu.Unlock()
		if ok {
			return v, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// NextOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) NextOrchestrationWorkItem(ctx context.Context) (*backend.OrchestrationWorkItem, error) {
	return await(ctx, b, b.takeOrchestration)
}

// takeOrchestration hands out the instance whose first message is the oldest among those with
// no item out.
func (b *Backend) takeOrchestration() (*backend.OrchestrationWorkItem, bool) {
	now := time.Now()
	var id string
	var first uint64
	for iid, in := range b.inboxes {
		if in.out || len(in.msgs) == 0 || now.Before(in.until) {
			continue
		}
		if id == "" || in.msgs[0].seq < first {
			id, first = iid, in.msgs[0].seq
		}
	}
	if id == "" {
		return nil, false
	}
	in := b.inboxes[id]
	in.out = true
	tok := &itemToken{msgs: in.msgs}
	in.msgs = nil
	item := &backend.OrchestrationWorkItem{InstanceID: id, Token: tok}
	if inst := b.instances[id]; inst != nil {
		s := inst.state
		item.State = &s
		tok.version = s.Version
	}
	for _, m := range tok.msgs {
		m.deliveries++
		item.Messages = append(item.Messages, backend.WorkMessage{Message: m.Message, Deliveries: m.deliveries})
	}
	return item, true
}

// OrchestrationHistory implements backend.WorkerBackend.
func (b *Backend) OrchestrationHistory(ctx context.Context, item *backend.OrchestrationWorkItem) ([]history.Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[item.InstanceID]
	if inst == nil {
		return nil, nil
	}
	return slices.Clone(inst.history), nil
}

// CompleteOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) CompleteOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, c *backend.OrchestrationCompletion) (*backend.Instance, error) {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return nil, fmt.Errorf("completing %q: not a work item of this backend", item.InstanceID)
	}
	if c.Applied < 1 || c.Applied > len(tok.msgs) {
		return nil, fmt.Errorf("completing %q: %d messages applied of %d", item.InstanceID, c.Applied, len(tok.msgs))
	}
	for _, m := range c.Messages {
		if err := checkMessage(m, b.maxPayload); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok.done {
		return nil, fmt.Errorf("completing %q: the work item was completed or abandoned: %w", item.InstanceID, backend.ErrConflict)
	}
	inst := b.instances[item.InstanceID]
	if inst != nil && inst.state.Version != tok.version {
		tok.done = true
		b.giveBack(item.InstanceID, tok.msgs, 0)
		return nil, fmt.Errorf("completing %q: %w", item.InstanceID, backend.ErrConflict)
	}
	tok.done = true
	applied := tok.msgs[:c.Applied]
	for _, d := range c.DeadLetters {
		b.deadLetter("inbox", applied[d.Index], d.Reason)
	}
	if len(c.Events) > 0 {
		if inst == nil {
			inst = &instance{watchers: map[chan *backend.Instance]struct{}{}}
			b.instances[item.InstanceID] = inst
		}
		b.commit(inst, c)
	}
	for _, m := range c.Messages {
		if m.Trace == nil {
			m.Trace = c.Trace
		}
		b.enqueue(m)
	}
	b.giveBack(item.InstanceID, tok.msgs[c.Applied:], 0)
	if inst == nil {
		return nil, nil
	}
	s := inst.state
	return &s, nil
}

// commit stores a completion's events and state and schedules its tasks; b.mu must be held.
func (b *Backend) commit(inst *instance, c *backend.OrchestrationCompletion) {
	if c.NewGeneration {
		inst.history = nil
	}
	inst.history = append(inst.history, c.Events...)
	version := inst.state.Version + 1
	inst.state = c.State
	inst.state.Version = version
	for _, a := range c.Actions {
		b.schedule(&inst.state, a, c.Trace)
	}
	b.notify(inst)
}

// schedule queues an action's task, carrying the turn's trace context; b.mu must be held.
func (b *Backend) schedule(s *backend.Instance, a history.Action, trace backend.TraceContext) {
	switch a.Kind {
	case history.ActionActivity:
		b.seq++
		t := &task{seq: b.seq, ActivityTask: backend.NewActivityTask(s.ID, s.Generation, a)}
		t.Trace = trace
		b.tasks = append(b.tasks, t)
		b.signal()
		if !t.ScheduleToCloseDeadline.IsZero() {
			data, _ := json.Marshal(backend.ScheduleToCloseResult(t.ActivityTask))
			b.enqueueAt(t.ScheduleToCloseDeadline, backend.Message{InstanceID: s.ID, Kind: backend.KindResult, Data: data})
		}
	case history.ActionTimer:
		data, _ := json.Marshal(backend.TimerFired{Generation: s.Generation, TaskID: a.TaskID})
		msg := backend.Message{InstanceID: s.ID, Kind: backend.KindTimer, Data: data, Trace: trace}
		key := timerKey{s.ID, s.Generation, a.TaskID}
		if old := b.durable[key]; old != nil {
			old.Stop() // scheduled again (a turn published again, a rewind): replaced
			delete(b.timers, old)
		}
		var t *time.Timer
		t = time.AfterFunc(time.Until(a.FireAt), func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.timers, t)
			if b.durable[key] == t {
				delete(b.durable, key)
			}
			if !b.closed {
				b.enqueue(msg)
			}
		})
		b.timers[t] = struct{}{}
		b.durable[key] = t
	case history.ActionCancelTimer:
		key := timerKey{s.ID, s.Generation, a.TaskID}
		if t := b.durable[key]; t != nil {
			t.Stop()
			delete(b.timers, t)
			delete(b.durable, key)
		}
	case history.ActionSubOrchestration:
		req := backend.StartRequest{
			InstanceID: a.InstanceID, Name: a.Name, Input: a.Input, Time: s.UpdatedAt,
			StartID: fmt.Sprintf("%s:%d:%d:r%d", s.ID, s.Generation, a.TaskID, a.Rewind), // unique per task run
			Parent:  &history.ParentRef{InstanceID: s.ID, Generation: s.Generation, TaskID: a.TaskID, Rewind: a.Rewind},
		}
		data, _ := json.Marshal(req)
		b.enqueue(backend.Message{InstanceID: a.InstanceID, Kind: backend.KindStart, Data: data, Trace: trace})
	}
}

// enqueueAt queues msg at time at (a timer firing, a deadline's result, a scheduled start); b.mu
// must be held.
func (b *Backend) enqueueAt(at time.Time, msg backend.Message) {
	var t *time.Timer
	t = time.AfterFunc(time.Until(at), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.timers, t)
		if !b.closed {
			b.enqueue(msg)
		}
	})
	b.timers[t] = struct{}{}
}

// giveBack ends an instance's item: msgs go back to the front of its inbox, not to be handed
// out again before delay; b.mu must be held.
func (b *Backend) giveBack(id string, msgs []*message, delay time.Duration) {
	in := b.inboxes[id]
	in.out = false
	in.msgs = append(slices.Clone(msgs), in.msgs...)
	if delay > 0 {
		in.until = time.Now().Add(delay)
		b.after(delay)
	}
	if len(in.msgs) == 0 {
		delete(b.inboxes, id)
	}
	b.signal()
}

// after wakes the waiting callers after d, when something held back becomes available.
func (b *Backend) after(d time.Duration) {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.timers, t)
		b.signal()
	})
	b.timers[t] = struct{}{}
}

// AbandonOrchestrationWorkItem implements backend.WorkerBackend.
func (b *Backend) AbandonOrchestrationWorkItem(ctx context.Context, item *backend.OrchestrationWorkItem, delay time.Duration) error {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return fmt.Errorf("abandoning %q: not a work item of this backend", item.InstanceID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok.done {
		return nil
	}
	tok.done = true
	b.giveBack(item.InstanceID, tok.msgs, delay)
	return nil
}

// NextActivityWorkItem implements backend.WorkerBackend.
func (b *Backend) NextActivityWorkItem(ctx context.Context, names []string) (*backend.ActivityWorkItem, error) {
	return await(ctx, b, func() (*backend.ActivityWorkItem, bool) {
		now := time.Now()
		for i, t := range b.tasks {
			if slices.Contains(names, t.Name) && !now.Before(t.until) {
				b.tasks = slices.Delete(b.tasks, i, i+1)
				tok := &activityToken{task: t, canceled: make(chan struct{})}
				b.running[tok] = struct{}{}
				item := &backend.ActivityWorkItem{Task: t.ActivityTask, Token: tok, Canceled: tok.canceled}
				item.Task.Attempt++
				t.Attempt = item.Task.Attempt
				return item, true
			}
		}
		return nil, false
	})
}

// CompleteActivityWorkItem implements backend.WorkerBackend.
func (b *Backend) CompleteActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, result backend.TaskResult) error {
	tok, ok := item.Token.(*activityToken)
	if !ok {
		return errors.New("completing an activity: not a work item of this backend")
	}
	task := item.Task
	result.Generation, result.TaskID, result.Rewind = task.Generation, task.TaskID, task.Rewind
	data, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("encoding the result of activity %q: %w", task.Name, err)
	}
	msg := backend.Message{InstanceID: task.InstanceID, Kind: backend.KindResult, Data: data, Trace: result.Trace}
	if err := checkMessage(msg, b.maxPayload); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok.done {
		return nil
	}
	tok.done = true
	delete(b.running, tok)
	b.enqueue(msg)
	return nil
}

// AbandonActivityWorkItem implements backend.WorkerBackend.
func (b *Backend) AbandonActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, delay time.Duration) error {
	tok, ok := item.Token.(*activityToken)
	if !ok {
		return errors.New("abandoning an activity: not a work item of this backend")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok.done {
		return nil
	}
	tok.done = true
	delete(b.running, tok)
	tok.task.until = time.Now().Add(delay)
	b.tasks = append(b.tasks, tok.task)
	slices.SortFunc(b.tasks, func(x, y *task) int { return int(x.seq) - int(y.seq) })
	if delay > 0 {
		b.after(delay)
	}
	b.signal()
	return nil
}

// ExtendActivityWorkItem implements backend.WorkerBackend. Tasks held by this backend's workers
// are never delivered again while out, so there is nothing to extend.
func (b *Backend) ExtendActivityWorkItem(ctx context.Context, item *backend.ActivityWorkItem, until time.Time) error {
	if _, ok := item.Token.(*activityToken); !ok {
		return errors.New("extending an activity: not a work item of this backend")
	}
	return nil
}

// CancelActivities implements backend.WorkerBackend.
func (b *Backend) CancelActivities(ctx context.Context, c backend.ActivityCancel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tok := range b.running {
		if c.Covers(tok.task.ActivityTask) {
			close(tok.canceled)
			delete(b.running, tok)
		}
	}
	return nil
}

var _ backend.VersionRouter = (*Backend)(nil)

// ServeOrchestrators implements backend.VersionRouter. The workers of one memory backend share
// its work items, so there is nothing to announce.
func (b *Backend) ServeOrchestrators(context.Context, []backend.OrchestratorVersion) error {
	return nil
}

// RouteOrchestrationWorkItem implements backend.VersionRouter: it always returns
// backend.ErrNoWorker. The workers of one memory backend share its work items, so an item the
// caller abandons is taken by any of them, one that serves the version included.
func (b *Backend) RouteOrchestrationWorkItem(_ context.Context, item *backend.OrchestrationWorkItem, v backend.OrchestratorVersion) error {
	return fmt.Errorf("routing %q to %s: %w", item.InstanceID, v, backend.ErrNoWorker)
}

// MarkWaiting implements backend.VersionRouter.
func (b *Backend) MarkWaiting(_ context.Context, item *backend.OrchestrationWorkItem, state backend.Instance) error {
	tok, ok := item.Token.(*itemToken)
	if !ok {
		return fmt.Errorf("marking %q waiting: not a work item of this backend", item.InstanceID)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[item.InstanceID]
	if tok.done || inst == nil || inst.state.Version != tok.version {
		return fmt.Errorf("marking %q waiting: %w", item.InstanceID, backend.ErrConflict)
	}
	version := inst.state.Version
	inst.state = state
	inst.state.Version = version
	b.notify(inst)
	return nil
}
