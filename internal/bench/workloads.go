package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// fanoutWidth is how many activities one fanout instance runs in parallel.
const fanoutWidth = 100

// registry returns the benchmark orchestrators and activities.
func (e *env) registry() (*durable.Registry, error) {
	reg := durable.NewRegistry()
	orchestrators := map[string]durable.OrchestratorFunc{
		"BenchApproval": benchApproval,
		"BenchLatency":  benchLatency,
		"BenchFanout":   benchFanout,
		"BenchTicks":    benchTicks,
		"BenchIdle":     benchIdle,
	}
	ok := func(context.Context, any) (bool, error) { return true, nil }
	activities := map[string]durable.ActivityFunc{
		"Reserve": durable.Activity(ok),
		"Pay":     durable.Activity(ok),
		"Stamp":   durable.Activity(e.stamp),
		"Work": durable.Activity(func(_ context.Context, i int) (int, error) {
			e.work.Add(1)
			return i, nil
		}),
	}
	for name, fn := range orchestrators {
		if err := reg.AddOrchestrator(name, fn); err != nil {
			return nil, fmt.Errorf("registering orchestrator %s: %w", name, err)
		}
	}
	for name, fn := range activities {
		if err := reg.AddActivity(name, fn); err != nil {
			return nil, fmt.Errorf("registering activity %s: %w", name, err)
		}
	}
	return reg, nil
}

// benchApproval reserves, waits for Approval, then pays.
func benchApproval(ctx *durable.OrchestrationContext) (any, error) {
	if err := ctx.CallActivity("Reserve", nil).Await(nil); err != nil {
		return nil, err
	}
	var approved bool
	if err := ctx.WaitForExternalEvent("Approval").Await(&approved); err != nil {
		return nil, err
	}
	return approved, ctx.CallActivity("Pay", nil).Await(nil)
}

// benchLatency waits for Go, then calls Stamp, which reports when it ran.
func benchLatency(ctx *durable.OrchestrationContext) (any, error) {
	if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
		return nil, err
	}
	return nil, ctx.CallActivity("Stamp", nil).Await(nil)
}

// benchFanout runs fanoutWidth Work activities in parallel and returns the sum of their results.
func benchFanout(ctx *durable.OrchestrationContext) (any, error) {
	tasks := make([]*durable.Task, fanoutWidth)
	for i := range tasks {
		tasks[i] = ctx.CallActivity("Work", i)
	}
	if err := ctx.WhenAll(tasks...).Await(nil); err != nil {
		return nil, err
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return nil, err
		}
		sum += v
	}
	return sum, nil
}

// benchTicks waits for its input's number of Tick events, setting the custom status to the
// count after each.
func benchTicks(ctx *durable.OrchestrationContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		if err := ctx.WaitForExternalEvent("Tick").Await(nil); err != nil {
			return nil, err
		}
		if err := ctx.SetCustomStatus(i); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// benchIdle waits for Wake.
func benchIdle(ctx *durable.OrchestrationContext) (any, error) {
	return nil, ctx.WaitForExternalEvent("Wake").Await(nil)
}

// stamp is the Stamp activity: it sends the time it runs to the instance's channel in e.stamps.
func (e *env) stamp(ctx context.Context, _ any) (bool, error) {
	now := time.Now()
	info, _ := durable.ActivityInfoFrom(ctx)
	if ch, found := e.stamps.Load(info.InstanceID); found {
		select {
		case ch.(chan time.Time) <- now:
		default: // a redelivery: the first run counts
		}
	}
	return true, nil
}

func terminal(s *backend.Instance) bool { return s.Status.IsTerminal() }

// waitingFor returns a condition: the instance runs and waits for event name.
func waitingFor(name string) func(*backend.Instance) bool {
	return func(s *backend.Instance) bool {
		return s.Status == history.StatusRunning && s.Waiting != nil && slices.Contains(s.Waiting.Events, name)
	}
}

// parallel calls f for i in 0..n-1 from c goroutines (at most c calls at once) and returns the
// first error; an error cancels the calls not yet made.
func parallel(ctx context.Context, n, c int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(c, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// parallelReporting is parallel for long phases: it reports how many calls are done every 10
// seconds.
func (e *env) parallelReporting(ctx context.Context, what string, n, c int, f func(ctx context.Context, i int) error) error {
	var done atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				e.opts.progress("%s: %s: %d of %d", e.workload, what, done.Load(), n)
			}
		}
	}()
	return parallel(ctx, n, c, func(ctx context.Context, i int) error {
		err := f(ctx, i)
		done.Add(1)
		return err
	})
}

// runApproval: N instances of Reserve → wait for Approval → Pay, at most C in flight, each
// raised right after it is scheduled. per_sec: completed instances/s; p50/p99: start→completion.
func runApproval(ctx context.Context, e *env, n, c int) (Result, error) {
	done := e.track(n, terminal)
	lat := make([]time.Duration, n)
	start := time.Now()
	err := parallel(ctx, n, c, func(ctx context.Context, i int) error {
		id := e.id(i)
		t0 := time.Now()
		if _, err := e.client.ScheduleNew(ctx, "BenchApproval", engine.WithInstanceID(id)); err != nil {
			return fmt.Errorf("starting %s: %w", id, err)
		}
		if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
			return fmt.Errorf("raising Approval on %s: %w", id, err)
		}
		if err := e.await(ctx, done.done(i), id+" to complete"); err != nil {
			return err
		}
		lat[i] = done.when(i).Sub(t0)
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	elapsed := done.last().Sub(start)
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n, elapsed), P50ms: p50, P99ms: p99,
		Notes: "per_sec completed instances; p50/p99 ScheduleNew call → Completed state seen by a KV watcher; " +
			"event raised with Client.RaiseEvent right after ScheduleNew",
	}, nil
}

// runLatency: N instances one after another, each waiting for Go and then calling Stamp; Go is
// raised once the state says the instance waits for it. p50/p99: raise call → Stamp running.
func runLatency(ctx context.Context, e *env, n, _ int) (Result, error) {
	waiting := e.track(n, waitingFor("Go"))
	done := e.track(n, terminal)
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		id := e.id(i)
		ch := make(chan time.Time, 1)
		e.stamps.Store(id, ch)
		if _, err := e.client.ScheduleNew(ctx, "BenchLatency", engine.WithInstanceID(id)); err != nil {
			return Result{}, fmt.Errorf("starting %s: %w", id, err)
		}
		if err := e.await(ctx, waiting.done(i), id+" to wait for Go"); err != nil {
			return Result{}, err
		}
		t0 := time.Now()
		if err := e.client.RaiseEvent(ctx, id, "Go", nil); err != nil {
			return Result{}, fmt.Errorf("raising Go on %s: %w", id, err)
		}
		select {
		case stamp := <-ch:
			lat[i] = stamp.Sub(t0)
		case <-e.failed:
			return Result{}, e.failErr
		case <-ctx.Done():
			return Result{}, fmt.Errorf("waiting for Stamp of %s: %w", id, ctx.Err())
		}
		// Let the instance finish before the next one starts, so that they do not overlap.
		if err := e.await(ctx, done.done(i), id+" to complete"); err != nil {
			return Result{}, err
		}
		e.stamps.Delete(id)
	}
	elapsed := time.Since(start)
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n, elapsed), P50ms: p50, P99ms: p99,
		Notes: "p50/p99 Client.RaiseEvent call → Stamp activity running (time.Now in the activity); " +
			"per_sec instances/s one at a time, each started, waited for (KV watcher) and completed before the next",
	}, nil
}

// runFanout: N instances each running fanoutWidth activities in parallel (WhenAll), C in flight.
// per_sec: activities/s; p50/p99: start→completion of an instance.
func runFanout(ctx context.Context, e *env, n, c int) (Result, error) {
	done := e.track(n, terminal)
	lat := make([]time.Duration, n)
	start := time.Now()
	err := parallel(ctx, n, c, func(ctx context.Context, i int) error {
		id := e.id(i)
		t0 := time.Now()
		if _, err := e.client.ScheduleNew(ctx, "BenchFanout", engine.WithInstanceID(id)); err != nil {
			return fmt.Errorf("starting %s: %w", id, err)
		}
		if err := e.await(ctx, done.done(i), id+" to complete"); err != nil {
			return err
		}
		lat[i] = done.when(i).Sub(t0)
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	elapsed := done.last().Sub(start)
	runs := e.work.Load()
	if runs < int64(n*fanoutWidth) {
		return Result{}, fmt.Errorf("%d Work activities ran, want at least %d", runs, n*fanoutWidth)
	}
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n*fanoutWidth, elapsed), P50ms: p50, P99ms: p99,
		Notes: fmt.Sprintf("width=%d; per_sec activities (%d activities, %d activity runs counting redeliveries); p50/p99 instance start→completion",
			fanoutWidth, n*fanoutWidth, runs),
	}, nil
}

// startTicks starts a BenchTicks instance waiting for n Ticks and returns once it waits.
func startTicks(ctx context.Context, e *env, n int) (string, *counter, *tracker, error) {
	waiting := e.track(1, waitingFor("Tick"))
	done := e.track(1, terminal)
	id := e.id(0)
	ticks := e.count(id, n)
	if _, err := e.client.ScheduleNew(ctx, "BenchTicks", engine.WithInstanceID(id), engine.WithInput(n)); err != nil {
		return "", nil, nil, fmt.Errorf("starting %s: %w", id, err)
	}
	if err := e.await(ctx, waiting.done(0), id+" to wait for Tick"); err != nil {
		return "", nil, nil, err
	}
	return id, ticks, done, nil
}

// runHistory: one instance waits for N Ticks, all published up front with at most C
// unacknowledged publishes. seconds: first publish → completion seen.
func runHistory(ctx context.Context, e *env, n, c int) (Result, error) {
	id, ticks, done, err := startTicks(ctx, e, n)
	if err != nil {
		return Result{}, err
	}
	idTok, err := natsjs.EncodeInstanceID(id)
	if err != nil {
		return Result{}, err
	}
	nameTok, err := natsjs.EncodeEventName("Tick")
	if err != nil {
		return Result{}, err
	}
	subject := e.names.EventSubject(idTok, nameTok)
	sent := make([]time.Time, n)
	start := time.Now()
	for lo := 0; lo < n; lo += c {
		hi := min(n, lo+c)
		acks := make([]jetstream.PubAckFuture, 0, hi-lo)
		for k := lo; k < hi; k++ {
			sent[k] = time.Now()
			f, err := e.js.PublishAsync(subject, []byte("null"))
			if err != nil {
				return Result{}, fmt.Errorf("publishing Tick %d: %w", k+1, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return Result{}, fmt.Errorf("publishing Tick: %w", err)
			case <-ctx.Done():
				return Result{}, fmt.Errorf("waiting for publish acks: %w", ctx.Err())
			}
		}
	}
	published := time.Since(start)
	if err := e.await(ctx, done.done(0), id+" to complete"); err != nil {
		return Result{}, err
	}
	elapsed := done.when(0).Sub(start)
	if err := e.await(ctx, ticks.wait(n), fmt.Sprintf("custom status %d", n)); err != nil {
		return Result{}, err
	}
	lat := make([]time.Duration, n)
	for k := range n {
		lat[k] = ticks.reached(k + 1).Sub(sent[k])
	}
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n, elapsed), P50ms: p50, P99ms: p99,
		Notes: fmt.Sprintf("events raised by plain JetStream async publishes to %s (as `nats pub` would), at most c=%d unacknowledged, all published in %.3fs; "+
			"seconds first publish → Completed state seen; per_sec events/s; p50/p99 publish of Tick k → state with custom status ≥ k; "+
			"%d state updates (turns) applied the %d events", subject, c, published.Seconds(), ticks.updates(), n),
	}, nil
}

// runHistorySeq: one instance waits for N Ticks, raised one at a time, each after the state
// shows the previous one applied. p50/p99: per turn.
func runHistorySeq(ctx context.Context, e *env, n, _ int) (Result, error) {
	id, ticks, done, err := startTicks(ctx, e, n)
	if err != nil {
		return Result{}, err
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for k := 1; k <= n; k++ {
		t0 := time.Now()
		if err := e.client.RaiseEvent(ctx, id, "Tick", nil); err != nil {
			return Result{}, fmt.Errorf("raising Tick %d: %w", k, err)
		}
		if err := e.await(ctx, ticks.wait(k), fmt.Sprintf("Tick %d to be applied", k)); err != nil {
			return Result{}, err
		}
		lat[k-1] = ticks.reached(k).Sub(t0)
	}
	elapsed := time.Since(start)
	if err := e.await(ctx, done.done(0), id+" to complete"); err != nil {
		return Result{}, err
	}
	tail := slices.Clone(lat[max(0, n-100):])
	tail50, tail99 := percentiles(tail)
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n, elapsed), P50ms: p50, P99ms: p99,
		Notes: fmt.Sprintf("per turn: Client.RaiseEvent call → state with the new custom status seen by a KV watcher; the history grows from 0 to %d events, "+
			"p50/p99 over all %d turns; last %d turns (history ≈ %d): p50 %.3f ms, p99 %.3f ms",
			n, n, len(tail), n, tail50, tail99),
	}, nil
}

// runIdle: N instances waiting for Wake (created by C goroutines); memory and KV bytes are
// measured once all wait; then each gets one Wake (C goroutines). per_sec: completions/s;
// p50/p99: raise call → Completed state seen.
func runIdle(ctx context.Context, e *env, n, c int) (Result, error) {
	waiting := e.track(n, waitingFor("Wake"))
	done := e.track(n, terminal)
	before, err := e.footprint(ctx)
	if err != nil {
		return Result{}, err
	}

	createStart := time.Now()
	err = e.parallelReporting(ctx, "creating", n, c, func(ctx context.Context, i int) error {
		if _, err := e.client.ScheduleNew(ctx, "BenchIdle", engine.WithInstanceID(e.id(i))); err != nil {
			return fmt.Errorf("starting %s: %w", e.id(i), err)
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	created := time.Since(createStart)
	e.opts.progress("idle: %d instances created in %.1fs; waiting for all to wait", n, created.Seconds())
	if err := e.awaitAll(ctx, waiting, "every instance to wait for Wake"); err != nil {
		return Result{}, err
	}
	allWaiting := waiting.last().Sub(createStart)
	after, err := e.footprint(ctx)
	if err != nil {
		return Result{}, err
	}
	e.opts.progress("idle: %d instances wait; RSS %.1f MB (%.1f MB before); raising", n, mb(after.mem.rss), mb(before.mem.rss))

	start := time.Now()
	lat, err := e.wakeAll(ctx, n, c, done)
	if err != nil {
		return Result{}, err
	}
	elapsed := done.last().Sub(start)
	p50, p99 := percentiles(lat)
	return Result{
		Seconds: seconds(elapsed), PerSec: rate(n, elapsed), P50ms: p50, P99ms: p99,
		Notes: e.idleNotes(n, c, before, after, created, allWaiting),
	}, nil
}

// footprint is what runIdle measures before and after creating the instances.
type footprint struct {
	mem         memory
	hist, state uint64 // bytes in the history and state buckets
}

func (e *env) footprint(ctx context.Context) (footprint, error) {
	var f footprint
	var err error
	if f.mem, err = measureMemory(); err != nil {
		return f, err
	}
	f.hist, f.state, err = e.kvBytes(ctx)
	return f, err
}

// wakeAll raises Wake on the n idle instances (c goroutines) and returns, for each, the time from
// its raise call to its Completed state (seen by done).
func (e *env) wakeAll(ctx context.Context, n, c int, done *tracker) ([]time.Duration, error) {
	raised := make([]int64, n)
	err := e.parallelReporting(ctx, "raising", n, c, func(ctx context.Context, i int) error {
		raised[i] = time.Now().UnixNano()
		if err := e.client.RaiseEvent(ctx, e.id(i), "Wake", nil); err != nil {
			return fmt.Errorf("raising Wake on %s: %w", e.id(i), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.awaitAll(ctx, done, "every instance to complete"); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, n)
	for i := range n {
		lat[i] = done.when(i).Sub(time.Unix(0, raised[i]))
	}
	return lat, nil
}

// idleNotes are the idle workload's notes: memory and KV bytes per instance, and how the n
// instances were created (c goroutines, in created, all waiting after allWaiting) and woken.
func (e *env) idleNotes(n, c int, before, after footprint, created, allWaiting time.Duration) string {
	measured := "one process with the embedded NATS server, the worker and the bench client: RSS includes the server's memory"
	if e.srv == nil {
		measured = "one process with the worker and the bench client (server external)"
	}
	perInst := func(after, before uint64) float64 { return round(float64(after-before) / float64(n)) }
	mem, base := after.mem, before.mem
	return fmt.Sprintf("worker_rss_mb=%.1f (RSS with all waiting %.1f MB minus %.1f MB before creating them; after GC) rss_total_mb=%.1f heap_inuse_mb=%.1f (before %.1f); measured: %s; "+
		"kv_bytes_per_instance=%.0f (stream %s); created by %d goroutines with Client.ScheduleNew in %.1fs (%.0f/s), all waiting after %.1fs; "+
		"raised by %d goroutines with Client.RaiseEvent; seconds first raise → last Completed state seen; p50/p99 raise call → Completed state seen",
		mb(mem.rss-base.rss), mb(mem.rss), mb(base.rss), mb(mem.rss), mb(int64(mem.heap)), mb(int64(base.heap)), measured,
		perInst(after.hist+after.state, before.hist+before.state), e.names.HistoryStream(),
		c, created.Seconds(), rate(n, created), allWaiting.Seconds(), c)
}
