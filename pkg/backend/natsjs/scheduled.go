package natsjs

// Scheduled starts: a start with a start time in the future (backend.StartRequest.StartAt) is
// published as a scheduled message, as durable timers are, on
// jetflow.sched.<id>.start.<startId>; the server publishes its body to jetflow.inst.<id>.start
// when it is due. The pending record, written at once, holds the scheduled start time.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// scheduledStart returns the scheduled message of start req for instance idTok, whose record is
// cur; it returns backend.ErrInstanceExists if the instance is pending, running or suspended
// (by another start: the same start again is published again, replacing its schedule).
func (b *Backend) scheduledStart(idTok string, cur *storedState, req backend.StartRequest) (*nats.Msg, error) {
	if cur != nil && !cur.Status.IsTerminal() && cur.StartID != req.StartID {
		return nil, fmt.Errorf("starting %q: %w (status %s)", req.InstanceID, backend.ErrInstanceExists, cur.Status)
	}
	startTok, err := EncodeToken(req.StartID)
	if err != nil {
		return nil, fmt.Errorf("starting %q: start ID: %w", req.InstanceID, err)
	}
	msg := nats.NewMsg(b.names.ScheduledStartSubject(idTok, startTok))
	msg.Header.Set("Nats-Schedule", "@at "+req.StartAt.UTC().Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", b.names.InstanceSubject(idTok, string(backend.KindStart)))
	return msg, nil
}

// unschedule withdraws the scheduled start on subject, whose record could not be written (its
// instance exists): left alone, it would start the instance later.
func (b *Backend) unschedule(subject string) {
	ctx, cancel := withDefaultTimeout(context.Background())
	defer cancel()
	if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		b.log.Warn().Err(err).Str("subject", subject).Msg("withdrawing a scheduled start that was refused")
	}
}
