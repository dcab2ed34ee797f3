// Package memory is a backend that keeps everything in the memory of one process: for unit tests
// and examples that need no NATS server. It passes the same conformance suite (backendtest) as
// the JetStream backend, but nothing survives the process and it serves one process only.
package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// DefaultMaxPayload is the payload limit of a backend made without WithMaxPayload:
// backend.DefaultMaxPayload, 1 MiB.
const DefaultMaxPayload = backend.DefaultMaxPayload

// Backend is an in-memory backend.Backend. Its zero value is not usable; call New.
type Backend struct {
	maxPayload int
	wake       chan struct{} // closed and replaced whenever work becomes available

	mu          sync.Mutex
	closed      bool
	instances   map[string]*instance
	inboxes     map[string]*inbox
	tasks       []*task                     // activity tasks not handed out, in order
	running     map[*activityToken]struct{} // activity items handed out, for cancels
	deadLetters []backend.DeadLetter
	timers      map[*time.Timer]struct{}
	durable     map[timerKey]*time.Timer // the durable timers among timers, by task
	seq         uint64                   // numbers messages and tasks
	registry    workerRegistry
}

var _ backend.Backend = (*Backend)(nil)

// instance is a stored instance.
type instance struct {
	state    backend.Instance
	history  []history.Event // of the current generation
	watchers map[chan *backend.Instance]struct{}
}

// timerKey names a durable timer: task taskID of generation gen of instance id.
type timerKey struct {
	id     string
	gen    uint64
	taskID int
}

// inbox holds an instance's messages that are not applied yet, in order.
type inbox struct {
	msgs  []*message
	out   bool      // a work item of the instance is out
	until time.Time // abandoned: no item before this time
}

type message struct {
	backend.Message
	seq        uint64
	deliveries uint64
}

type task struct {
	backend.ActivityTask
	seq   uint64
	until time.Time
}

// itemToken is the backend's record of an orchestration work item.
type itemToken struct {
	msgs    []*message
	version uint64
	done    bool
}

// activityToken is the backend's record of an activity work item.
type activityToken struct {
	task     *task
	done     bool
	canceled chan struct{} // closed by CancelActivities
}

// Option configures New.
type Option func(*Backend)

// WithMaxPayload sets the largest input, event data or result accepted (default 1 MiB).
func WithMaxPayload(n int) Option { return func(b *Backend) { b.maxPayload = n } }

// New returns an empty backend.
func New(opts ...Option) *Backend {
	b := &Backend{
		maxPayload: DefaultMaxPayload,
		wake:       make(chan struct{}),
		instances:  map[string]*instance{},
		inboxes:    map[string]*inbox{},
		timers:     map[*time.Timer]struct{}{},
		running:    map[*activityToken]struct{}{},
		durable:    map[timerKey]*time.Timer{},
		registry: workerRegistry{
			workers:  map[string]backend.WorkerInfo{},
			watchers: map[chan []backend.WorkerInfo]struct{}{},
		},
	}
	for _, opt := range opts {
		opt(b)
	}
	return b
}

// Close stops the backend's timers; calls waiting for work items return.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for t := range b.timers {
		t.Stop()
	}
	b.signal()
}

// signal wakes every caller waiting for work; b.mu must be held.
func (b *Backend) signal() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// MaxPayload implements backend.ClientBackend.
func (b *Backend) MaxPayload() int { return b.maxPayload }

// CreateInstance implements backend.ClientBackend.
func (b *Backend) CreateInstance(ctx context.Context, req backend.StartRequest) error {
	if err := history.CheckName("instance ID", req.InstanceID); err != nil {
		return err
	}
	if err := req.CheckPayload(b.maxPayload); err != nil {
		return err
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding start request: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[req.InstanceID]
	switch {
	case inst == nil:
		inst = &instance{watchers: map[chan *backend.Instance]struct{}{}}
		b.instances[req.InstanceID] = inst
	case inst.state.StartID == req.StartID:
		return nil
	case !inst.state.Status.IsTerminal():
		if req.Event != nil {
			// A start-with-event delivers its event to the running generation: its start
			// message is queued anyway and the worker raises the event (as natsjs, which
			// publishes every start message before it records the start).
			b.enqueue(backend.Message{InstanceID: req.InstanceID, Kind: backend.KindStart, Data: data, Trace: req.Trace})
		}
		return fmt.Errorf("starting %q: %w (status %s)", req.InstanceID, backend.ErrInstanceExists, inst.state.Status)
	}
	s := &inst.state
	s.ID, s.Name, s.Input, s.StartID, s.Parent = req.InstanceID, req.Name, req.Input, req.StartID, req.Parent
	s.Status, s.Output, s.Failure, s.CustomStatus, s.Waiting = history.StatusPending, nil, nil, nil, nil
	s.CreatedAt, s.UpdatedAt = req.Time, req.Time
	s.OrchestratorVersion, s.WaitingForVersion, s.Warning = req.Version, "", ""
	s.ScheduledStartTime = time.Time{}
	start := backend.Message{InstanceID: req.InstanceID, Kind: backend.KindStart, Data: data}
	if time.Until(req.StartAt) > 0 {
		s.ScheduledStartTime = req.StartAt
		b.notify(inst)
		b.enqueueAt(req.StartAt, start)
		return nil
	}
	b.notify(inst)
	start.Trace = req.Trace
	b.enqueue(start)
	return nil
}

// Send implements backend.ClientBackend.
func (b *Backend) Send(ctx context.Context, msg backend.Message) error {
	if err := checkMessage(msg, b.maxPayload); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enqueue(msg)
	return nil
}

func checkMessage(msg backend.Message, maxPayload int) error {
	if err := history.CheckName("instance ID", msg.InstanceID); err != nil {
		return err
	}
	if msg.Kind == backend.KindEvent {
		if err := history.CheckName("event name", msg.EventName); err != nil {
			return err
		}
	}
	if len(msg.Data) > maxPayload {
		return fmt.Errorf("%s of %d bytes: %w (limit %d)", msg.Kind, len(msg.Data), backend.ErrPayloadTooLarge, maxPayload)
	}
	return nil
}

// enqueue queues msg for its instance; b.mu must be held.
func (b *Backend) enqueue(msg backend.Message) {
	b.seq++
	in := b.inboxes[msg.InstanceID]
	if in == nil {
		in = &inbox{}
		b.inboxes[msg.InstanceID] = in
	}
	in.msgs = append(in.msgs, &message{Message: msg, seq: b.seq})
	b.signal()
}

// GetInstance implements backend.ClientBackend.
func (b *Backend) GetInstance(ctx context.Context, id string) (*backend.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[id]
	if inst == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	s := inst.state
	return &s, nil
}

// WatchInstance implements backend.ClientBackend.
func (b *Backend) WatchInstance(ctx context.Context, id string) (<-chan *backend.Instance, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[id]
	if inst == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	ch := make(chan *backend.Instance, 1)
	s := inst.state
	ch <- &s
	inst.watchers[ch] = struct{}{}
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(inst.watchers, ch)
		close(ch)
	}()
	return ch, nil
}

// notify sends the instance's state to its watchers, replacing a value a slow watcher has not
// taken; b.mu must be held.
func (b *Backend) notify(inst *instance) {
	for ch := range inst.watchers {
		s := inst.state
		select {
		case <-ch:
		default:
		}
		ch <- &s
	}
}

// GetHistory implements backend.ClientBackend.
func (b *Backend) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[id]
	if inst == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	return slices.Clone(inst.history), nil
}

// PurgeInstance implements backend.ClientBackend.
func (b *Backend) PurgeInstance(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.instances[id]
	if inst == nil {
		return fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	if !inst.state.Status.IsTerminal() {
		return fmt.Errorf("purging %q: %w (status %s)", id, backend.ErrInstanceNotEnded, inst.state.Status)
	}
	delete(b.instances, id)
	return nil
}

// ListInstances implements backend.ClientBackend.
func (b *Backend) ListInstances(ctx context.Context, q backend.Query) (backend.Page, error) {
	after, err := backend.DecodeContinuation(q.ContinuationToken)
	if err != nil {
		return backend.Page{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.instances))
	for id := range b.instances {
		if id > after && strings.HasPrefix(id, q.IDPrefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page := backend.Page{Instances: []*backend.Instance{}}
	for i, id := range ids {
		s := b.instances[id].state
		if !q.Matches(&s) {
			continue
		}
		page.Instances = append(page.Instances, &s)
		if len(page.Instances) == q.PageSize() {
			if i < len(ids)-1 {
				page.ContinuationToken = backend.EncodeContinuation(id)
			}
			break
		}
	}
	return page, nil
}

// DeadLetters implements backend.ClientBackend; positions count from 1.
func (b *Backend) DeadLetters(ctx context.Context, after uint64, n int) ([]backend.DeadLetter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if after >= uint64(len(b.deadLetters)) {
		return nil, nil
	}
	out := b.deadLetters[after:]
	return slices.Clone(out[:min(n, len(out))]), nil
}

func (b *Backend) deadLetter(source string, m *message, reason string) {
	d := backend.NewDeadLetter(source, m.InstanceID+"."+string(m.Kind), m.seq, m.Data, reason)
	d.Position = uint64(len(b.deadLetters) + 1)
	b.deadLetters = append(b.deadLetters, d)
}
