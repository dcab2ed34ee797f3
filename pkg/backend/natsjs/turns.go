package natsjs

// Worker-side operations on instances: the inbox, loading, committing and publishing turns.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

func (b *Backend) inboxMessage(msg jetstream.Msg) inboxMessage {
	m := inboxMessage{msg: msg}
	m.Data = msg.Data()
	if md, err := msg.Metadata(); err == nil {
		m.seq, m.delivered = md.Sequence.Stream, md.NumDelivered
		if m.delivered > 1 {
			b.opts.metrics.Redelivered(metrics.SourceInbox)
		}
	}
	b.parseInto(&m, msg.Subject(), msg.Headers())
	return m
}

// parseInto fills m from the stored subject and the headers of an instance message.
func (b *Backend) parseInto(m *inboxMessage, subject string, h nats.Header) {
	m.subject = b.names.PublishedSubject(subject)
	_, id, kind, name, err := b.names.ParseStoredSubject(subject)
	if err != nil {
		m.err = err
		return
	}
	m.InstanceID, m.Kind, m.EventName = id, backend.MessageKind(kind), name
	m.MsgID = backend.EventID(h.Get)
	m.Trace = backend.TraceFrom(h.Get)
}

// readInbox returns the instance's queued messages with after < seq < before, in order. It reads with batched direct gets (one request per
// directGetBatch messages of the instance), so a turn pays one round trip to learn that no other
// worker holds an earlier message of its instance.
func (b *Backend) readInbox(ctx context.Context, id string, after, before uint64) ([]inboxMessage, error) {
	if before <= after+1 {
		return nil, nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	idTok, err := b.idToken(id)
	if err != nil {
		return nil, err
	}
	var out []inboxMessage
	held := false
	err = b.scan(ctx, b.names.InstanceStream(), b.names.StoredInstanceFilter(idTok), after+1, before, func(n uint64, msg *nats.Msg) error {
		if n == before {
			held = true
			return nil
		}
		m := inboxMessage{seq: n, delivered: 1} // its delivery is acked by whoever holds it
		m.Data = msg.Data
		b.parseInto(&m, msg.Header.Get(jetstream.SubjectHeader), msg.Header)
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading inbox of %q: %w", id, err)
	}
	if !held {
		// Message `before`, which this worker holds, is gone: another worker applied it (a
		// redelivery), or the replica that answered (direct gets may be answered by any) has
		// not stored it yet and may lack earlier ones too. Either way the item is built again
		// on fresh state.
		return nil, fmt.Errorf("reading inbox of %q: message %d is not there (applied elsewhere, or a lagging replica answered): %w",
			id, before, backend.ErrConflict)
	}
	return out, nil
}

// directGetBatch is how many messages one direct get request asks for.
const directGetBatch = 256

// directGetRequest is JetStream's direct get request with batching (server 2.11+).
type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// publishMessages publishes messages to instances, each with its message ID.
func (b *Backend) publishMessages(ctx context.Context, messages []backend.Message) error {
	if len(messages) == 0 {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msgs := make([]*nats.Msg, 0, len(messages))
	for _, m := range messages {
		msg, err := b.instanceMsg(m)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	return b.publishAll(ctx, msgs)
}

// publishChunk bounds the asynchronous publishes one turn has in flight, so that turns that
// fan out to thousands of tasks never stall the connection's shared async window.
const publishChunk = 256

// publishAll publishes msgs asynchronously, a chunk at a time, and waits for every ack. Messages
// whose ack does not come within an attempt are published again (they carry message IDs, or
// are timer schedules that replace themselves).
func (b *Backend) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	for start := 0; start < len(msgs); start += publishChunk {
		chunk := msgs[start:min(start+publishChunk, len(msgs))]
		if err := retry(ctx, func(actx context.Context) error {
			futures := make([]jetstream.PubAckFuture, 0, len(chunk))
			for _, msg := range chunk {
				f, err := b.js.PublishMsgAsync(msg)
				if err != nil {
					return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
				}
				futures = append(futures, f)
			}
			var unacked []*nats.Msg
			for i, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					if !unanswered(err) {
						return err
					}
					unacked = append(unacked, chunk[i])
				case <-actx.Done():
					unacked = append(unacked, chunk[i])
				}
			}
			if len(unacked) > 0 {
				chunk = unacked
				return fmt.Errorf("%d publishes not acknowledged: %w", len(unacked), context.DeadlineExceeded)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// deadlineSchedule returns, for an activity with a ScheduleToClose deadline, the scheduled
// message that delivers its ScheduleToCloseTimeout failure to the instance at the deadline,
// whatever became of its workers (the instance ignores it if the task has completed); nil for
// any other action. It is a timer schedule on the task's schedule subject, as a timer's.
func (b *Backend) deadlineSchedule(idTok string, turn *turnRecord, a history.Action) *nats.Msg {
	if a.Kind != history.ActionActivity || a.Timeouts == nil || a.Timeouts.ScheduleToCloseDeadline.IsZero() {
		return nil
	}
	task := backend.NewActivityTask(turn.InstanceID, turn.Generation, a)
	msg := nats.NewMsg(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID))
	msg.Data = mustJSON(backend.ScheduleToCloseResult(task))
	msg.Header.Set("Nats-Schedule", "@at "+task.ScheduleToCloseDeadline.UTC().Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", b.names.InstanceSubject(idTok, string(backend.KindResult)))
	return msg
}

func (b *Backend) actionMsg(idTok string, turn *turnRecord, a history.Action) (*nats.Msg, error) {
	switch a.Kind {
	case history.ActionActivity:
		nameTok, err := EncodeToken(a.Name)
		if err != nil {
			return nil, fmt.Errorf("activity name: %w", err)
		}
		msg := nats.NewMsg(b.names.ActivitySubject(nameTok))
		msg.Data = mustJSON(backend.NewActivityTask(turn.InstanceID, turn.Generation, a))
		msg.Header.Set(jetstream.MsgIDHeader, taskMsgID(idTok, turn.Generation, a.TaskID, a.Rewind))
		turn.Trace.SetOn(msg.Header.Set)
		return msg, nil
	case history.ActionTimer:
		// A scheduled message: the server publishes its body to the target when due. Schedules
		// are keyed by subject, so publishing one again replaces it.
		msg := nats.NewMsg(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID))
		msg.Data = mustJSON(backend.TimerFired{Generation: turn.Generation, TaskID: a.TaskID})
		msg.Header.Set(jetstream.ScheduleHeader, "@at "+a.FireAt.UTC().Format(time.RFC3339Nano))
		msg.Header.Set(jetstream.ScheduleTargetHeader, b.names.InstanceSubject(idTok, string(backend.KindTimer)))
		return msg, nil
	case history.ActionCancelTimer:
		// The timer's schedule is replaced (schedules are keyed by subject) by one due at once
		// whose firing names generation 0, which no instance has: the worker drops it as stale.
		// So the timer never fires, and its schedule is gone within a second. (Workers may not
		// purge the instance stream, which would remove it outright.)
		msg := nats.NewMsg(b.names.ScheduleSubject(idTok, turn.Generation, a.TaskID))
		msg.Data = mustJSON(backend.TimerFired{Generation: 0, TaskID: a.TaskID})
		msg.Header.Set("Nats-Schedule", "@at "+time.Now().UTC().Format(time.RFC3339Nano))
		msg.Header.Set("Nats-Schedule-Target", b.names.InstanceSubject(idTok, string(backend.KindTimer)))
		turn.Trace.SetOn(msg.Header.Set)
		return msg, nil
	case history.ActionSubOrchestration:
		childTok, err := b.idToken(a.InstanceID)
		if err != nil {
			return nil, fmt.Errorf("sub-orchestration: %w", err)
		}
		req := backend.StartRequest{
			InstanceID: a.InstanceID, Name: a.Name, Input: a.Input, Time: turn.State.UpdatedAt,
			StartID: taskMsgID(idTok, turn.Generation, a.TaskID, a.Rewind),
			Parent:  &history.ParentRef{InstanceID: turn.InstanceID, Generation: turn.Generation, TaskID: a.TaskID, Rewind: a.Rewind},
		}
		msg := nats.NewMsg(b.names.InstanceSubject(childTok, string(backend.KindStart)))
		msg.Data = mustJSON(req)
		msg.Header.Set(jetstream.MsgIDHeader, startMsgID(req.StartID))
		turn.Trace.SetOn(msg.Header.Set)
		return msg, nil
	}
	return nil, fmt.Errorf("unknown action kind %q", a.Kind)
}

// withTrace returns messages with trace set on those that carry no trace context of their own.
func withTrace(messages []backend.Message, trace backend.TraceContext) []backend.Message {
	if trace == nil {
		return messages
	}
	out := make([]backend.Message, len(messages))
	for i, m := range messages {
		if m.Trace == nil {
			m.Trace = trace
		}
		out[i] = m
	}
	return out
}
