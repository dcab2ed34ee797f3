package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// benchEnv is an embedded JetStream with a worker and a client, plus one watcher over every
// instance state so that waiting for many instances costs one consumer, not one each.
type benchEnv struct {
	client *engine.Client
	js     jetstream.JetStream

	mu      sync.Mutex
	waiters map[string]func(*engine.Status) bool
}

func newBenchEnv(b *testing.B, reg *durable.Registry, opts ...engine.WorkerOption) *benchEnv {
	b.Helper()
	srv := natstest.RunServer(b)
	_, js := natstest.Connect(b, srv)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	be, err := natsjs.New(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	w, err := engine.NewWorker(be, reg, opts...)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })

	env := &benchEnv{client: engine.NewClient(be), js: js, waiters: map[string]func(*engine.Status) bool{}}
	kv, err := js.KeyValue(ctx, "jetflow-instances")
	if err != nil {
		b.Fatal(err)
	}
	watch, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for entry := range watch.Updates() {
			if entry == nil || entry.Operation() != jetstream.KeyValuePut {
				continue
			}
			var s engine.Status
			if json.Unmarshal(entry.Value(), &s) != nil {
				continue
			}
			env.mu.Lock()
			if f := env.waiters[s.ID]; f != nil && f(&s) {
				delete(env.waiters, s.ID)
			}
			env.mu.Unlock()
		}
	}()
	return env
}

// expect registers a condition on an instance's state before the action that leads to it; the
// returned channel closes when a state update satisfies it.
func (e *benchEnv) expect(id string, ok func(*engine.Status) bool) <-chan struct{} {
	ch := make(chan struct{})
	e.mu.Lock()
	e.waiters[id] = func(s *engine.Status) bool {
		if ok(s) {
			close(ch)
			return true
		}
		return false
	}
	e.mu.Unlock()
	return ch
}

func await(b *testing.B, ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		b.Fatalf("timed out waiting for %s", what)
	}
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	return ms(d[len(d)/2]), ms(d[min(len(d)-1, len(d)*99/100)])
}

func completed(s *engine.Status) bool { return s.Status.IsTerminal() }

// BenchmarkApproval: CallActivity("Reserve") → WaitForExternalEvent("Approval") →
// CallActivity("Pay"); the event is raised right after scheduling; up to 200 in flight.
func BenchmarkApproval(b *testing.B) {
	reg := mustRegistry(b, map[string]durable.OrchestratorFunc{
		"Approval": func(ctx *durable.OrchestrationContext) (any, error) {
			if err := ctx.CallActivity("Reserve", nil).Await(nil); err != nil {
				return nil, err
			}
			var ok bool
			if err := ctx.WaitForExternalEvent("Approval").Await(&ok); err != nil {
				return nil, err
			}
			return nil, ctx.CallActivity("Pay", nil).Await(nil)
		},
	}, map[string]durable.ActivityFunc{
		"Reserve": durable.Activity(func(context.Context, any) (bool, error) { return true, nil }),
		"Pay":     durable.Activity(func(context.Context, any) (bool, error) { return true, nil }),
	})
	e := newBenchEnv(b, reg)
	ctx := context.Background()
	const inFlight = 200
	sem := make(chan struct{}, inFlight)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := "approval-" + strconv.Itoa(i)
			t0 := time.Now()
			done := e.expect(id, completed)
			if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(id)); err != nil {
				b.Error(err)
				return
			}
			if err := e.client.RaiseEvent(ctx, id, "Approval", true); err != nil {
				b.Error(err)
				return
			}
			await(b, done, id)
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "instances/s")
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkRaiseLatency: an instance waits for "Go" then calls activity "Stamp", which records
// the time; latency is raise → activity running. Instances run one after another.
func BenchmarkRaiseLatency(b *testing.B) {
	var mu sync.Mutex
	stamps := map[string]chan time.Time{}
	reg := mustRegistry(b, map[string]durable.OrchestratorFunc{
		"Latency": func(ctx *durable.OrchestrationContext) (any, error) {
			if err := ctx.WaitForExternalEvent("Go").Await(nil); err != nil {
				return nil, err
			}
			return nil, ctx.CallActivity("Stamp", nil).Await(nil)
		},
	}, map[string]durable.ActivityFunc{
		"Stamp": durable.Activity(func(ctx context.Context, _ any) (bool, error) {
			now := time.Now()
			info, _ := durable.ActivityInfoFrom(ctx)
			mu.Lock()
			ch := stamps[info.InstanceID]
			mu.Unlock()
			if ch != nil {
				select {
				case ch <- now:
				default:
				}
			}
			return true, nil
		}),
	})
	e := newBenchEnv(b, reg)
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := "latency-" + strconv.Itoa(i)
		ch := make(chan time.Time, 1)
		mu.Lock()
		stamps[id] = ch
		mu.Unlock()
		waiting := e.expect(id, func(s *engine.Status) bool { return s.Waiting != nil && len(s.Waiting.Events) == 1 })
		if _, err := e.client.ScheduleNew(ctx, "Latency", engine.WithInstanceID(id)); err != nil {
			b.Fatal(err)
		}
		await(b, waiting, id+" waiting")
		t0 := time.Now()
		if err := e.client.RaiseEvent(ctx, id, "Go", nil); err != nil {
			b.Fatal(err)
		}
		select {
		case stamp := <-ch:
			lat[i] = stamp.Sub(t0)
		case <-time.After(30 * time.Second):
			b.Fatalf("no stamp for %s", id)
		}
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
}

// BenchmarkTurnCost measures one turn (raise one event → state committed) on an instance whose
// history already holds N events, hot (executor cached) and cold (replayed every turn).
func BenchmarkTurnCost(b *testing.B) {
	for _, cache := range []int{10000, 0} {
		for _, n := range []int{100, 1000, 10000} {
			name := fmt.Sprintf("history=%d/cache=%v", n, cache > 0)
			b.Run(name, func(b *testing.B) {
				if cache == 0 && n == 10000 && b.N > 20 {
					b.N = 20 // a cold 10k replay per turn is the slow case being shown
				}
				benchTurnCost(b, n, cache)
			})
		}
	}
}

func benchTurnCost(b *testing.B, n, cache int) {
	reg := mustRegistry(b, map[string]durable.OrchestratorFunc{
		"Ticks": func(ctx *durable.OrchestrationContext) (any, error) {
			for i := 1; ; i++ {
				if err := ctx.WaitForExternalEvent("Tick").Await(nil); err != nil {
					return nil, err
				}
				ctx.SetCustomStatus(i)
			}
		},
	}, nil)
	e := newBenchEnv(b, reg, engine.WithCacheSize(cache))
	ctx := context.Background()
	id := "ticks"
	seen := func(k int) func(*engine.Status) bool {
		want := strconv.Itoa(k)
		return func(s *engine.Status) bool { return string(s.CustomStatus) == want }
	}
	ready := e.expect(id, seen(n))
	if _, err := e.client.ScheduleNew(ctx, "Ticks", engine.WithInstanceID(id)); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := e.js.PublishAsync("jetflow.inst.ticks.event.Tick", nil); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 { // stay inside the connection's async publish window
			<-e.js.PublishAsyncComplete()
		}
	}
	<-e.js.PublishAsyncComplete()
	await(b, ready, "history build-up")
	b.ResetTimer()
	for i := range b.N {
		done := e.expect(id, seen(n+i+1))
		if err := e.client.RaiseEvent(ctx, id, "Tick", nil); err != nil {
			b.Fatal(err)
		}
		await(b, done, "turn")
	}
}
