package soak

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// resendAfter is how long an instance may sit unfinished before the driver publishes again the
// core-NATS events its history lacks (a core publish is unacknowledged and may be lost with a
// server; the same Nats-Msg-Id makes a repeat harmless).
const resendAfter = 15 * time.Second

// settle waits until every instance has ended or the timeout passes, and returns how many
// have not. Meanwhile it resends the unconfirmed publishes that instances still lack.
func settle(ctx context.Context, s *sender, plans []*plan, timeout time.Duration, log io.Writer) int {
	deadline := time.Now().Add(timeout)
	begin := time.Now()
	lastResend := map[string]time.Time{}
	pending := plans
	for {
		pending = unfinished(ctx, s, pending)
		fmt.Fprintf(log, "soak: settling %4.0fs: %d/%d ended\n", time.Since(begin).Seconds(), len(plans)-len(pending), len(plans))
		if len(pending) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return len(pending)
		}
		for _, p := range pending {
			if time.Since(begin) >= resendAfter && time.Since(lastResend[p.ID]) >= resendAfter {
				lastResend[p.ID] = time.Now()
				resendMissing(ctx, s, p, log)
			}
		}
		if sleepUntil(ctx, time.Now().Add(2*time.Second)) != nil {
			return len(pending)
		}
	}
}

// unfinished returns the plans whose instances have not ended (or could not be read).
func unfinished(ctx context.Context, s *sender, plans []*plan) []*plan {
	ended := make([]bool, len(plans))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, p := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			st, err := s.client.GetStatus(ctx, p.ID)
			ended[i] = err == nil && st.Status.IsTerminal()
		}()
	}
	wg.Wait()
	var out []*plan
	for i, p := range plans {
		if !ended[i] {
			out = append(out, p)
		}
	}
	return out
}

// resendMissing publishes again, through JetStream and with the same Nats-Msg-Id, the plan's
// core-NATS events that its history does not hold. The ack tells whether the stream had the
// first publish (a duplicate within its window) or never got it.
func resendMissing(ctx context.Context, s *sender, p *plan, log io.Writer) {
	h, err := s.client.GetHistory(ctx, p.ID)
	if err != nil {
		return
	}
	have := map[string]bool{}
	for _, e := range h {
		if e.Type == history.EventRaised {
			have[e.EventID] = true
		}
	}
	for _, e := range p.Events {
		if e.Via != viaPublish || have[e.ID] {
			continue
		}
		subject, err := s.eventSubject(p.ID, e.Name)
		if err != nil {
			continue
		}
		msg := nats.NewMsg(subject)
		msg.Data = e.Data
		msg.Header.Set(jetstream.MsgIDHeader, e.ID)
		ack, err := s.js.PublishMsg(ctx, msg)
		if err != nil {
			continue
		}
		s.resent.Add(1)
		what := "the stream never had the first publish"
		if ack.Duplicate {
			s.resentDup.Add(1)
			what = "the stream still had the first publish (dropped as a duplicate): not applied yet"
		}
		fmt.Fprintf(log, "soak: resent %s to %s, first published %s: %s\n", e.ID, subject, s.publishedAt(e.ID), what)
	}
}
