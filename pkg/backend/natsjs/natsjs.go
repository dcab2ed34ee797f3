// Package natsjs implements backend.Backend on NATS JetStream.
//
// Layout (prefix "jetflow"):
//   - stream JETFLOW_INST, work queue, subjects jetflow.inst.> (every message addressed to an
//     instance) and jetflow.sched.> (durable timers, as scheduled messages that the server
//     publishes to jetflow.inst.<id>.timer when due);
//   - stream JETFLOW_ACT, work queue, subjects jetflow.activity.<name>;
//   - stream JETFLOW_DLQ, limits, subjects jetflow.dlq.<reason>;
//   - KV bucket jetflow-history: one entry per committed turn, key <id>.<turn>, created with
//     kv.Create so that exactly one writer commits each turn;
//   - KV bucket jetflow-instances: the queryable state of each instance, key <id>.
package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Header names jetflow reads on instance messages.
const (
	// HeaderEventID carries a raised event's deduplication ID (Nats-Msg-Id works too).
	HeaderEventID = "Jetflow-Event-Id"
)

const defaultTimeout = 10 * time.Second

// Backend is the JetStream backend.
type Backend struct {
	js    jetstream.JetStream
	names Names
	opts  options
	log   zerolog.Logger
	inst  jetstream.Stream
	hist  jetstream.KeyValue
	state jetstream.KeyValue
}

var _ backend.Backend = (*Backend)(nil)

// New creates (or updates) jetflow's streams and buckets and returns a backend over them.
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Backend, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	names, err := NewNames(o.prefix)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	b := &Backend{js: js, names: names, opts: o, log: o.log}
	b.inst, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              names.InstanceStream(),
		Description:       "jetflow: messages addressed to orchestration instances, and their timers",
		Subjects:          []string{names.InstanceSubjects(), names.ScheduleSubjects()},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          o.replicas,
		Duplicates:        o.duplicateWindow,
		AllowDirect:       true,
		AllowMsgSchedules: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", names.InstanceStream(), err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        names.ActivityStream(),
		Description: "jetflow: activity tasks",
		Subjects:    []string{names.ActivitySubjects()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		Duplicates:  o.duplicateWindow,
	}); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", names.ActivityStream(), err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        names.DeadLetterStream(),
		Description: "jetflow: messages that could not be processed, with the reason",
		Subjects:    []string{names.DeadLetterSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		MaxAge:      o.deadLetterAge,
		Duplicates:  o.duplicateWindow,
	}); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", names.DeadLetterStream(), err)
	}
	if b.hist, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      names.HistoryBucket(),
		Description: "jetflow: instance histories, one entry per committed turn",
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
	}); err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", names.HistoryBucket(), err)
	}
	if b.state, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      names.StateBucket(),
		Description: "jetflow: instance states for queries",
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
	}); err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", names.StateBucket(), err)
	}
	return b, nil
}

// Open binds to jetflow's existing streams and buckets without changing them, which suits
// clients (it needs no admin permission and never alters the replica count); if any is missing,
// it provisions them as New does.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Backend, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	names, err := NewNames(o.prefix)
	if err != nil {
		return nil, err
	}
	lctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	b := &Backend{js: js, names: names, opts: o, log: o.log}
	b.inst, err = js.Stream(lctx, names.InstanceStream())
	if err == nil {
		b.hist, err = js.KeyValue(lctx, names.HistoryBucket())
	}
	if err == nil {
		b.state, err = js.KeyValue(lctx, names.StateBucket())
	}
	if err == nil {
		_, err = js.Stream(lctx, names.DeadLetterStream())
	}
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
		return New(ctx, js, opts...)
	}
	return nil, fmt.Errorf("opening jetflow's streams: %w", err)
}

// Names returns the backend's naming scheme.
func (b *Backend) Names() Names { return b.names }

// MaxPayload returns the largest payload the backend accepts.
func (b *Backend) MaxPayload() int { return b.opts.maxPayload }

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

func (b *Backend) idToken(id string) (string, error) { return EncodeInstanceID(id) }

// CreateInstance implements backend.Backend.
func (b *Backend) CreateInstance(ctx context.Context, req backend.StartRequest) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(req.InstanceID)
	if err != nil {
		return err
	}
	if len(req.Input) > b.opts.maxPayload {
		return fmt.Errorf("input of %d bytes: %w (limit %d)", len(req.Input), backend.ErrPayloadTooLarge, b.opts.maxPayload)
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding start request: %w", err)
	}
	// The start message goes first: if this process dies before the state is written, the
	// worker creates the state from the message.
	msg := nats.NewMsg(b.names.InstanceSubject(idTok, string(backend.KindStart)))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "start:"+req.StartID)
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publishing start of %q: %w", req.InstanceID, err)
	}
	key := b.names.StateKey(idTok)
	for {
		cur, err := b.GetInstance(ctx, req.InstanceID)
		switch {
		case errors.Is(err, backend.ErrInstanceNotFound):
			pending := pendingState(nil, req)
			if _, err := b.state.Create(ctx, key, mustJSON(pending)); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
				return wrapf(err, "creating state of %q", req.InstanceID)
			}
		case err != nil:
			return err
		case cur.StartID == req.StartID:
			return nil
		case cur.Status.IsTerminal():
			pending := pendingState(cur, req)
			if _, err := b.state.Update(ctx, key, mustJSON(pending), cur.Revision); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
				return wrapf(err, "replacing state of %q", req.InstanceID)
			}
		default:
			return fmt.Errorf("starting %q: %w (status %s)", req.InstanceID, backend.ErrInstanceExists, cur.Status)
		}
	}
}

// pendingState is the state of an instance that is about to start; it keeps the bookkeeping of
// a previous, ended generation so that the worker can find where its history ends.
func pendingState(prev *backend.Instance, req backend.StartRequest) *backend.Instance {
	s := &backend.Instance{}
	if prev != nil {
		s.Generation, s.FirstTurn, s.Turn, s.LastSeq = prev.Generation, prev.FirstTurn, prev.Turn, prev.LastSeq
	}
	s.ID, s.Name, s.Input, s.StartID, s.Parent = req.InstanceID, req.Name, req.Input, req.StartID, req.Parent
	s.Status = "Pending"
	s.CreatedAt, s.UpdatedAt = req.Time, req.Time
	return s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("natsjs: encoding %T: %v", v, err)) // only our own plain structs are encoded
	}
	return b
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// Send implements backend.Backend.
func (b *Backend) Send(ctx context.Context, m backend.Message) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := b.instanceMsg(m)
	if err != nil {
		return err
	}
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publishing %s to %q: %w", m.Kind, m.InstanceID, err)
	}
	return nil
}

func (b *Backend) instanceMsg(m backend.Message) (*nats.Msg, error) {
	idTok, err := b.idToken(m.InstanceID)
	if err != nil {
		return nil, err
	}
	if len(m.Data) > b.opts.maxPayload {
		return nil, fmt.Errorf("%s of %d bytes: %w (limit %d)", m.Kind, len(m.Data), backend.ErrPayloadTooLarge, b.opts.maxPayload)
	}
	subject := b.names.InstanceSubject(idTok, string(m.Kind))
	if m.Kind == backend.KindEvent {
		nameTok, err := EncodeEventName(m.EventName)
		if err != nil {
			return nil, err
		}
		subject = b.names.EventSubject(idTok, nameTok)
	}
	msg := nats.NewMsg(subject)
	msg.Data = m.Data
	if m.MsgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	return msg, nil
}

// GetInstance implements backend.Backend.
func (b *Backend) GetInstance(ctx context.Context, id string) (*backend.Instance, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	entry, err := b.state.Get(ctx, b.names.StateKey(idTok))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", id, err)
	}
	return decodeState(entry)
}

func decodeState(entry jetstream.KeyValueEntry) (*backend.Instance, error) {
	var s backend.Instance
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		return nil, fmt.Errorf("decoding state %s: %w", entry.Key(), err)
	}
	s.Revision = entry.Revision()
	return &s, nil
}

// WatchInstance implements backend.Backend.
func (b *Backend) WatchInstance(ctx context.Context, id string) (<-chan *backend.Instance, error) {
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	w, err := b.state.Watch(ctx, b.names.StateKey(idTok))
	if err != nil {
		return nil, fmt.Errorf("watching state of %q: %w", id, err)
	}
	// The watcher sends the current value (if any), then nil, then changes.
	var first *backend.Instance
	for entry := range w.Updates() {
		if entry == nil {
			break
		}
		if entry.Operation() == jetstream.KeyValuePut {
			first, _ = decodeState(entry)
		}
	}
	if first == nil {
		w.Stop()
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	out := make(chan *backend.Instance, 1)
	out <- first
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case entry, ok := <-w.Updates():
				if !ok {
					return
				}
				if entry == nil || entry.Operation() != jetstream.KeyValuePut {
					continue
				}
				s, err := decodeState(entry)
				if err != nil {
					continue
				}
				select {
				case out <- s:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// GetHistory implements backend.Backend.
func (b *Backend) GetHistory(ctx context.Context, id string) ([]history.Event, error) {
	snap, err := b.load(ctx, id, true)
	if err != nil {
		return nil, err
	}
	if snap.Instance == nil {
		return nil, fmt.Errorf("%q: %w", id, backend.ErrInstanceNotFound)
	}
	var events []history.Event
	for _, t := range snap.Turns {
		events = append(events, t.Events...)
	}
	return events, nil
}

// PurgeInstance implements backend.Backend.
func (b *Backend) PurgeInstance(ctx context.Context, id string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cur, err := b.GetInstance(ctx, id)
	if err != nil {
		return err
	}
	if !cur.Status.IsTerminal() {
		return fmt.Errorf("purging %q: %w (status %s)", id, backend.ErrInstanceNotEnded, cur.Status)
	}
	idTok, _ := b.idToken(id)
	keys, err := b.hist.ListKeysFiltered(ctx, b.names.HistoryKeyFilter(idTok))
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("listing history of %q: %w", id, err)
	}
	if keys != nil {
		for key := range keys.Keys() {
			if err := b.hist.Purge(ctx, key); err != nil {
				return fmt.Errorf("purging history of %q: %w", id, err)
			}
		}
	}
	if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(b.names.ScheduleFilter(idTok))); err != nil {
		return fmt.Errorf("purging timers of %q: %w", id, err)
	}
	if err := b.state.Purge(ctx, b.names.StateKey(idTok), jetstream.LastRevision(cur.Revision)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("purging %q: %w", id, backend.ErrConflict)
		}
		return fmt.Errorf("purging state of %q: %w", id, err)
	}
	return nil
}

// ConsumeInbox implements backend.Backend.
func (b *Backend) ConsumeInbox(ctx context.Context, handle func(backend.InboxMessage)) error {
	cctx, cancel := withDefaultTimeout(ctx)
	cons, err := b.inst.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		Durable:       b.names.OrchestratorConsumer(),
		Description:   "jetflow workers: orchestration turns",
		FilterSubject: b.names.InstanceSubjects(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.opts.inboxAckWait,
		MaxDeliver:    -1,
		MaxAckPending: b.opts.maxAckPending,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("creating inbox consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		handle(b.inboxMessage(msg))
	}, jetstream.PullMaxMessages(b.opts.fetchBatch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.log.Debug().Err(err).Msg("inbox consumer")
	}))
	if err != nil {
		return fmt.Errorf("consuming inbox: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

func (b *Backend) inboxMessage(msg jetstream.Msg) backend.InboxMessage {
	m := backend.InboxMessage{Subject: msg.Subject()}
	m.Data = msg.Data()
	m.Ack = msg.Ack
	m.Nak = msg.NakWithDelay
	if md, err := msg.Metadata(); err == nil {
		m.Seq, m.Delivered, m.Time = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	b.parseInto(&m, msg.Subject(), msg.Headers())
	return m
}

func (b *Backend) parseInto(m *backend.InboxMessage, subject string, h nats.Header) {
	id, kind, name, err := b.names.ParseInstanceSubject(subject)
	if err != nil {
		m.Err = err
		return
	}
	m.InstanceID, m.Kind, m.EventName = id, backend.MessageKind(kind), name
	if h != nil {
		m.MsgID = h.Get(HeaderEventID)
		if m.MsgID == "" {
			m.MsgID = h.Get(jetstream.MsgIDHeader)
		}
	}
}

// LoadInstance implements backend.Backend.
func (b *Backend) LoadInstance(ctx context.Context, id string) (*backend.Snapshot, error) {
	return b.load(ctx, id, false)
}

// load reads an instance's state and turns: those of its current generation if it is running
// (or all is set), and those committed beyond its state in any case.
func (b *Backend) load(ctx context.Context, id string, all bool) (*backend.Snapshot, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	snap := &backend.Snapshot{}
	cur, err := b.GetInstance(ctx, id)
	switch {
	case errors.Is(err, backend.ErrInstanceNotFound):
	case err != nil:
		return nil, err
	default:
		snap.Instance = cur
	}
	idTok, _ := b.idToken(id)
	first, last := uint64(1), uint64(0)
	if cur != nil {
		first, last = max(cur.FirstTurn, 1), cur.Turn
	}
	// Turns first..last are known; probe for committed turns beyond the state.
	var turns []*backend.Turn
	if last >= first && (all || cur.Status == history.StatusRunning || cur.Status == history.StatusSuspended) {
		if turns, err = b.readTurns(ctx, idTok, first, last); err != nil {
			return nil, err
		}
	}
	for n := max(last+1, first); ; n++ {
		t, err := b.getTurn(ctx, idTok, n)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if t.Reset {
			turns = nil
		}
		turns = append(turns, t)
	}
	snap.Turns = turns
	return snap, nil
}

func (b *Backend) getTurn(ctx context.Context, idTok string, n uint64) (*backend.Turn, error) {
	entry, err := b.hist.Get(ctx, b.names.HistoryKey(idTok, n))
	if err != nil {
		return nil, err
	}
	return decodeTurn(entry.Value())
}

func decodeTurn(data []byte) (*backend.Turn, error) {
	var t backend.Turn
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("decoding turn: %w", err)
	}
	return &t, nil
}

// readTurns reads turns first..last: one get each for a few, one watcher for many.
func (b *Backend) readTurns(ctx context.Context, idTok string, first, last uint64) ([]*backend.Turn, error) {
	var turns []*backend.Turn
	if last-first < 16 {
		for n := first; n <= last; n++ {
			t, err := b.getTurn(ctx, idTok, n)
			if err != nil {
				return nil, fmt.Errorf("reading turn %d of %s: %w", n, idTok, err)
			}
			turns = append(turns, t)
		}
		return turns, nil
	}
	w, err := b.hist.Watch(ctx, b.names.HistoryKeyFilter(idTok), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading history of %s: %w", idTok, err)
	}
	defer w.Stop()
	for entry := range w.Updates() {
		if entry == nil {
			break
		}
		n, err := strconv.ParseUint(entry.Key()[len(idTok)+1:], 10, 64)
		if err != nil || n < first || n > last {
			continue
		}
		t, err := decodeTurn(entry.Value())
		if err != nil {
			return nil, err
		}
		turns = append(turns, t)
	}
	if uint64(len(turns)) != last-first+1 {
		return nil, fmt.Errorf("reading history of %s: found %d of turns %d..%d", idTok, len(turns), first, last)
	}
	return turns, nil
}

// ReadInbox implements backend.Backend. It reads with batched direct gets (one request per
// inboxReadBatch messages of the instance), so a turn pays one round trip to learn that no other
// worker holds an earlier message of its instance.
func (b *Backend) ReadInbox(ctx context.Context, id string, after, before uint64) ([]backend.InboxMessage, error) {
	if before <= after+1 {
		return nil, nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	nc := b.js.Conn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
	}
	defer sub.Unsubscribe()
	api := "$JS.API.DIRECT.GET." + b.names.InstanceStream()
	var out []backend.InboxMessage
	for seq := after + 1; seq < before; {
		req := mustJSON(directGetRequest{Seq: seq, NextFor: b.names.InstanceFilter(idTok), Batch: inboxReadBatch})
		if err := nc.PublishRequest(api, inbox, req); err != nil {
			return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
		}
		got, last := 0, uint64(0)
		for {
			msg, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
			}
			status := msg.Header.Get("Status")
			if status == "404" || status == "204" { // nothing (more) to read / end of batch
				break
			}
			if status != "" {
				return nil, fmt.Errorf("reading inbox of %q: direct get status %s %s", id, status, msg.Header.Get("Description"))
			}
			n, _ := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
			got, last = got+1, n
			if n == 0 || n >= before {
				continue
			}
			m := backend.InboxMessage{Subject: msg.Header.Get(jetstream.SubjectHeader), Seq: n, Delivered: 1}
			m.Time, _ = time.Parse(time.RFC3339Nano, msg.Header.Get(jetstream.TimeStampHeaer))
			m.Data = msg.Data
			m.Ack = func() error { return nil } // its delivery is acked by whoever holds it
			m.Nak = func(time.Duration) error { return nil }
			b.parseInto(&m, m.Subject, msg.Header)
			out = append(out, m)
		}
		if got < inboxReadBatch || last >= before {
			break
		}
		seq = last + 1
	}
	return out, nil
}

// inboxReadBatch is how many messages one direct get request asks for.
const inboxReadBatch = 256

// directGetRequest is JetStream's direct get request with batching (server 2.11+).
type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// CommitTurn implements backend.Backend.
func (b *Backend) CommitTurn(ctx context.Context, turn *backend.Turn) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return err
	}
	stored := *turn
	if !turn.Reset {
		stored.State.Input = nil // stored once per generation, in its first turn
	}
	data, err := json.Marshal(&stored)
	if err != nil {
		return fmt.Errorf("encoding turn %d of %q: %w", turn.Number, turn.InstanceID, err)
	}
	_, err = b.hist.Create(ctx, b.names.HistoryKey(idTok, turn.Number), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("committing turn %d of %q: %w", turn.Number, turn.InstanceID, backend.ErrConflict)
	}
	return wrapf(err, "committing turn %d of %q", turn.Number, turn.InstanceID)
}

// PublishTurn implements backend.Backend.
func (b *Backend) PublishTurn(ctx context.Context, turn *backend.Turn) (*backend.Instance, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(turn.InstanceID)
	if err != nil {
		return nil, err
	}
	var futures []jetstream.PubAckFuture
	for _, a := range turn.Actions {
		msg, err := b.actionMsg(idTok, turn, a)
		if err != nil {
			return nil, err
		}
		f, err := b.js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("publishing task %d of %q: %w", a.TaskID, turn.InstanceID, err)
		}
		futures = append(futures, f)
	}
	for _, m := range turn.Messages {
		msg, err := b.instanceMsg(m)
		if err != nil {
			return nil, err
		}
		f, err := b.js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("publishing %s to %q: %w", m.Kind, m.InstanceID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, fmt.Errorf("publishing tasks of %q: %w", turn.InstanceID, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("publishing tasks of %q: %w", turn.InstanceID, ctx.Err())
		}
	}
	return b.saveState(ctx, idTok, turn)
}

func (b *Backend) actionMsg(idTok string, turn *backend.Turn, a history.Action) (*nats.Msg, error) {
	switch a.Kind {
	case history.ActionActivity:
		nameTok, err := EncodeToken(a.Name)
		if err != nil {
			return nil, fmt.Errorf("activity name: %w", err)
		}
		msg := nats.NewMsg(b.names.ActivitySubject(nameTok))
		msg.Data = mustJSON(backend.ActivityTask{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID, Name: a.Name, Input: a.Input})
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%d:%d", idTok, turn.Generation, a.TaskID))
		return msg, nil
	case history.ActionTimer:
		// A scheduled message: the server publishes its body to the target when due. Schedules
		// are keyed by subject, so publishing one again replaces it.
		msg := nats.NewMsg(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID))
		msg.Data = mustJSON(backend.TimerFired{Generation: turn.Generation, TaskID: a.TaskID})
		msg.Header.Set("Nats-Schedule", "@at "+a.FireAt.UTC().Format(time.RFC3339Nano))
		msg.Header.Set("Nats-Schedule-Target", b.names.InstanceSubject(idTok, string(backend.KindTimer)))
		return msg, nil
	case history.ActionSubOrchestration:
		childTok, err := b.idToken(a.InstanceID)
		if err != nil {
			return nil, fmt.Errorf("sub-orchestration: %w", err)
		}
		req := backend.StartRequest{
			InstanceID: a.InstanceID, Name: a.Name, Input: a.Input, Time: turn.State.UpdatedAt,
			StartID: fmt.Sprintf("%s:%d:%d", idTok, turn.Generation, a.TaskID),
			Parent:  &history.ParentRef{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID},
		}
		msg := nats.NewMsg(b.names.InstanceSubject(childTok, string(backend.KindStart)))
		msg.Data = mustJSON(req)
		msg.Header.Set(jetstream.MsgIDHeader, "start:"+req.StartID)
		return msg, nil
	}
	return nil, fmt.Errorf("unknown action kind %q", a.Kind)
}

// saveState writes the turn's state unless a later turn's state is already there.
func (b *Backend) saveState(ctx context.Context, idTok string, turn *backend.Turn) (*backend.Instance, error) {
	key := b.names.StateKey(idTok)
	s := turn.State
	rev := s.Revision
	for attempt := 0; attempt < 10; attempt++ {
		var err error
		var newRev uint64
		if rev == 0 {
			newRev, err = b.state.Create(ctx, key, mustJSON(&s))
		} else {
			newRev, err = b.state.Update(ctx, key, mustJSON(&s), rev)
		}
		if err == nil {
			s.Revision = newRev
			if turn.Reset && turn.PrevFirstTurn > 0 {
				b.dropTurns(ctx, idTok, turn.PrevFirstTurn, turn.Number-1)
			}
			return &s, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, err)
		}
		entry, gerr := b.state.Get(ctx, key)
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				rev = 0
				continue
			}
			return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, gerr)
		}
		cur, derr := decodeState(entry)
		if derr != nil {
			return nil, derr
		}
		if cur.Turn >= turn.Number {
			return cur, nil
		}
		// A client wrote in between (a pending start); our turn is newer.
		if s.Input == nil {
			s.Input = cur.Input
		}
		rev = cur.Revision
	}
	return nil, fmt.Errorf("saving state of %q: %w", turn.InstanceID, backend.ErrConflict)
}

// dropTurns deletes the history of a previous generation; best effort, purge removes leftovers.
func (b *Backend) dropTurns(ctx context.Context, idTok string, first, last uint64) {
	for n := first; n <= last; n++ {
		if err := b.hist.Purge(ctx, b.names.HistoryKey(idTok, n)); err != nil {
			b.log.Warn().Err(err).Str("key", b.names.HistoryKey(idTok, n)).Msg("dropping old history")
			return
		}
	}
}

// DeadLetter implements backend.Backend.
func (b *Backend) DeadLetter(ctx context.Context, m backend.InboxMessage, reason string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := b.deadLetter(ctx, "inbox", m.Subject, m.Seq, m.Data, reason); err != nil {
		return err
	}
	if m.Ack != nil {
		return m.Ack()
	}
	return nil
}

// DeadLetterRecord is what the dead-letter stream holds for each message.
type DeadLetterRecord struct {
	Reason  string    `json:"reason"`
	Source  string    `json:"source"` // "inbox" or "activity"
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Data    string    `json:"data"` // the payload, if it is UTF-8
	DataB64 []byte    `json:"dataBase64,omitempty"`
	Time    time.Time `json:"time"`
}

func (b *Backend) deadLetter(ctx context.Context, source, subject string, seq uint64, data []byte, reason string) error {
	rec := DeadLetterRecord{Reason: reason, Source: source, Subject: subject, Seq: seq, Time: time.Now().UTC()}
	if utf8.Valid(data) {
		rec.Data = string(data)
	} else {
		rec.DataB64 = data
	}
	msg := nats.NewMsg(b.names.DeadLetterSubject(source))
	msg.Data = mustJSON(rec)
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", source, seq))
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dead-lettering %s #%d: %w", subject, seq, err)
	}
	b.log.Warn().Str("subject", subject).Uint64("seq", seq).Str("reason", reason).Msg("dead-lettered")
	return nil
}

// ConsumeActivities implements backend.Backend.
func (b *Backend) ConsumeActivities(ctx context.Context, names []string, handle func(context.Context, backend.ActivityTask) error) error {
	if len(names) == 0 {
		<-ctx.Done()
		return nil
	}
	stream, err := b.js.Stream(ctx, b.names.ActivityStream())
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", b.names.ActivityStream(), err)
	}
	sem := make(chan struct{}, b.opts.activityWorkers)
	var running sync.WaitGroup
	var consumers []jetstream.ConsumeContext
	defer func() {
		for _, cc := range consumers {
			cc.Stop()
		}
		running.Wait()
	}()
	for _, name := range names {
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
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			sem <- struct{}{}
			running.Add(1)
			go func() {
				defer func() { <-sem; running.Done() }()
				b.runActivity(ctx, msg, handle)
			}()
		}, jetstream.PullMaxMessages(b.opts.activityWorkers))
		if err != nil {
			return fmt.Errorf("consuming activity %q: %w", name, err)
		}
		consumers = append(consumers, cc)
	}
	<-ctx.Done()
	return nil
}

func (b *Backend) runActivity(ctx context.Context, msg jetstream.Msg, handle func(context.Context, backend.ActivityTask) error) {
	var task backend.ActivityTask
	md, _ := msg.Metadata()
	var seq uint64
	if md != nil {
		seq, task.Attempt = md.Sequence.Stream, md.NumDelivered
	}
	if err := json.Unmarshal(msg.Data(), &task); err != nil || task.InstanceID == "" || task.TaskID == 0 {
		reason := "activity task is not valid JSON with instanceId and taskId"
		if err != nil {
			reason += ": " + err.Error()
		}
		if err := b.deadLetter(ctx, "activity", msg.Subject(), seq, msg.Data(), reason); err == nil {
			msg.Ack()
		}
		return
	}
	// Heartbeats keep a long activity from being redelivered while it runs.
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(b.opts.activityAckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				msg.InProgress()
			}
		}
	}()
	err := handle(ctx, task)
	close(done)
	if err != nil {
		b.log.Warn().Err(err).Str("activity", task.Name).Msg("activity result not delivered; redelivering")
		msg.NakWithDelay(time.Second)
		return
	}
	msg.Ack()
}
