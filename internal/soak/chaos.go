package soak

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"syscall"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
)

// The faults' timing. A worker is SIGSTOPped for the partition lease TTL plus stopMargin, so
// that the others take its partitions while it still believes it owns them.
const (
	killEveryMin   = 3 * time.Second
	killEveryMax   = 6 * time.Second
	restartAfter   = 500 * time.Millisecond
	natsDowntime   = 5 * time.Second
	stopMargin     = 3 * time.Second
	faultsPerSlice = 100 * time.Second // one NATS restart and one SIGSTOP per slice (at least one)
)

// chaos injects the faults into a cluster and keeps a timeline of them.
type chaos struct {
	c    *cluster
	log  io.Writer
	rng  *rand.Rand
	busy []sync.Mutex // one per worker: held while it is stopped or being killed
	// leader returns the node (1..3) leading the instance stream, 0 if unknown.
	leader func() int

	mu       sync.Mutex
	timeline []string
	kills    int
	restarts int // NATS servers
	stops    int
	errs     []string
}

func newChaos(c *cluster, log io.Writer, seed int64, leader func() int) *chaos {
	return &chaos{c: c, log: log, rng: rand.New(rand.NewSource(seed)), busy: make([]sync.Mutex, len(c.workers)), leader: leader}
}

// note records a fault in the timeline and prints it.
func (x *chaos) note(begin time.Time, format string, args ...any) {
	line := fmt.Sprintf("%6.1fs ", time.Since(begin).Seconds()) + fmt.Sprintf(format, args...)
	x.mu.Lock()
	x.timeline = append(x.timeline, line)
	x.mu.Unlock()
	fmt.Fprintln(x.log, "soak: chaos "+line)
}

func (x *chaos) fail(err error) {
	x.mu.Lock()
	x.errs = append(x.errs, err.Error())
	x.mu.Unlock()
}

func (x *chaos) intn(n int) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rng.Intn(n)
}

// run injects faults for d.
func (x *chaos) run(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	begin := time.Now()
	slices := max(1, int(d/faultsPerSlice))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); x.killWorkers(ctx, begin) }()
	go func() {
		defer wg.Done()
		x.atSlices(ctx, begin, d, slices, 0.35, func() { x.restartNode(ctx, begin) })
	}()
	go func() {
		defer wg.Done()
		x.atSlices(ctx, begin, d, slices, 0.7, func() { x.stopWorker(ctx, begin) })
	}()
	wg.Wait()
}

// atSlices calls f at fraction `at` of each of n equal slices of d.
func (x *chaos) atSlices(ctx context.Context, begin time.Time, d time.Duration, n int, at float64, f func()) {
	for k := range n {
		when := begin.Add(time.Duration((float64(k) + at) / float64(n) * float64(d)))
		if sleepUntil(ctx, when) != nil {
			return
		}
		f()
	}
}

// killWorkers SIGKILLs a random worker every few seconds and starts it again.
func (x *chaos) killWorkers(ctx context.Context, begin time.Time) {
	for {
		wait := killEveryMin + time.Duration(x.intn(int(killEveryMax-killEveryMin)))
		if sleepUntil(ctx, time.Now().Add(wait)) != nil {
			return
		}
		i := x.intn(len(x.c.workers))
		if !x.busy[i].TryLock() {
			continue // it is stopped
		}
		w := x.c.workers[i]
		cmd, err := w.kill()
		if err != nil {
			x.fail(err) // it had exited on its own: its supervisor restarts it
		} else {
			x.note(begin, "SIGKILL %s", w.name)
			x.kills++
			time.Sleep(restartAfter)
			if err := w.restart(cmd); err != nil {
				x.fail(err)
			}
		}
		x.busy[i].Unlock()
	}
}

// restartNode SIGKILLs the NATS server leading the instance stream (a random one if that is
// unknown) and starts it again after natsDowntime.
func (x *chaos) restartNode(ctx context.Context, begin time.Time) {
	i, what := x.leader()-1, "the leader of "+instStream
	if i < 0 || i >= len(x.c.nodes) {
		i, what = x.intn(len(x.c.nodes)), "leader unknown"
	}
	n := x.c.nodes[i]
	cmd, err := n.kill()
	if err != nil {
		x.fail(err)
		return
	}
	x.note(begin, "SIGKILL %s (%s)", n.name, what)
	time.Sleep(natsDowntime)
	if err := n.restart(cmd); err != nil {
		x.fail(err)
		return
	}
	x.restarts++
	x.note(begin, "started %s again", n.name)
	if err := n.waitLog(ctx, reServerReady, readyTimeout); err != nil && ctx.Err() == nil {
		x.fail(err)
	}
}

// stopWorker SIGSTOPs the worker that has run longest (so it owns partitions) for longer than
// its lease, then SIGCONTs it.
func (x *chaos) stopWorker(ctx context.Context, begin time.Time) {
	i := 0
	for k, w := range x.c.workers {
		if w.uptime() > x.c.workers[i].uptime() {
			i = k
		}
	}
	x.busy[i].Lock()
	defer x.busy[i].Unlock()
	w := x.c.workers[i]
	if err := w.signal(syscall.SIGSTOP); err != nil {
		x.fail(err)
		return
	}
	d := natsjs.DefaultLeaseTTL + stopMargin
	x.note(begin, "SIGSTOP %s (up %.0fs) for %s (lease TTL %s)", w.name, w.uptime().Seconds(), d, natsjs.DefaultLeaseTTL)
	time.Sleep(d)
	if err := w.signal(syscall.SIGCONT); err != nil {
		x.fail(err)
		return
	}
	x.stops++
	x.note(begin, "SIGCONT %s", w.name)
}
