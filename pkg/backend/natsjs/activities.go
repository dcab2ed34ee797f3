package natsjs

// Activity tasks: one durable consumer per activity name, shared by every worker that runs it.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

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
	var closing sync.Mutex // guards stopped; orders the callbacks' running.Add before the shutdown's Wait
	var consumers []jetstream.ConsumeContext
	stopped := false
	defer func() {
		closing.Lock()
		stopped = true
		closing.Unlock()
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
			closing.Lock()
			if stopped || ctx.Err() != nil {
				closing.Unlock()
				return // shutting down: the task is redelivered to another worker
			}
			running.Add(1) // under the lock, so it never races with the Wait at shutdown
			closing.Unlock()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				running.Done()
				return
			}
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
