package natsjs

// Retention (WithRetention): when a turn ends an instance, the worker that publishes the turn
// also schedules a purge message (a scheduled message, as durable timers are) that the server
// publishes to the instance's inbox, kind "purge", once the retention has passed. The worker
// that takes it purges the instance if it is still the one that ended in that turn; a purge of
// an instance started again since (a later turn) is stale and dropped. The purge travels with
// the instance's own messages, so the worker owning its partition does it, with no sweeper to
// elect and no scan of all instances.

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kindPurge is the kind of the inbox message that purges an ended instance; the backend handles
// it, the engine never sees it.
const kindPurge = "purge"

// purgeRequest is the body of a purge message: the turn that ended the instance.
type purgeRequest struct {
	Turn uint64 `json:"turn"`
}

// purgeSchedule is the scheduled purge of the instance that turn ended.
func (b *Backend) purgeSchedule(idTok string, turn *turnRecord) *nats.Msg {
	msg := nats.NewMsg(b.names.PurgeScheduleSubject(idTok))
	msg.Data = mustJSON(purgeRequest{Turn: turn.Number})
	at := turn.State.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	msg.Header.Set(jetstream.ScheduleHeader, "@at "+at.Add(b.opts.retention).UTC().Format(time.RFC3339Nano))
	msg.Header.Set(jetstream.ScheduleTargetHeader, b.names.InstanceSubject(idTok, kindPurge))
	return msg
}

// takePurges handles the purge messages among msgs and returns the others.
func (w *workItems) takePurges(ctx context.Context, id string, msgs []inboxMessage) []inboxMessage {
	rest := msgs[:0:0]
	for _, m := range msgs {
		if m.Kind != kindPurge {
			rest = append(rest, m)
			continue
		}
		if err := w.purgeIfDue(ctx, id, m); err != nil {
			w.b.log.Warn().Err(err).Str(fieldInstance, id).Msg("purging an ended instance; trying again")
			w.held.remove([]inboxMessage{m})
			if m.msg != nil {
				_ = m.msg.NakWithDelay(time.Second)
			}
			continue
		}
		w.ackAll([]inboxMessage{m})
	}
	return rest
}

// purgeIfDue purges instance id if it still is the instance that purge message m was scheduled
// for: ended, in the turn m names.
func (w *workItems) purgeIfDue(ctx context.Context, id string, m inboxMessage) error {
	var req purgeRequest
	if json.Unmarshal(m.Data, &req) != nil || req.Turn == 0 {
		w.b.log.Warn().Str(fieldInstance, id).Msg("dropped a purge message that does not name a turn")
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	s, err := w.b.readState(ctx, id)
	if err != nil {
		return err
	}
	if s == nil || !s.Status.IsTerminal() || s.Turn != req.Turn {
		return nil // purged already, or started again since
	}
	if err := w.b.purge(ctx, id, s); err != nil {
		return err
	}
	w.remember(id, nil)
	w.b.log.Debug().Str(fieldInstance, id).Uint64("turn", req.Turn).Msg("purged an ended instance after its retention")
	return nil
}
