package soak

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// loadConcurrency bounds the starts and sends in flight.
const loadConcurrency = 32

// load starts the plans' instances spread evenly over window and raises their events a moment
// after each start. started counts the instances started.
type load struct {
	s       *sender
	bad     *badInputs
	started atomic.Int64
	sem     chan struct{}
}

// run drives every plan and returns when all have been started and their events sent.
func (l *load) run(ctx context.Context, plans []*plan, window time.Duration, seed int64) {
	l.sem = make(chan struct{}, loadConcurrency)
	begin := time.Now()
	var wg sync.WaitGroup
	for i, p := range plans {
		at := begin.Add(window * time.Duration(i) / time.Duration(len(plans)))
		rng := rand.New(rand.NewSource(seed + int64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.drive(ctx, p, at, rng); err != nil {
				l.s.failed(err)
			}
		}()
	}
	wg.Wait()
}

// drive starts one instance at its time and sends its bad input and events, a random 0.1-2 s
// later and up to 0.3 s apart (so that some wait and some are buffered).
func (l *load) drive(ctx context.Context, p *plan, at time.Time, rng *rand.Rand) error {
	if err := sleepUntil(ctx, at); err != nil {
		return err
	}
	err := l.limited(func() error { return l.s.start(ctx, p) })
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	l.started.Add(1)
	if err := sleepUntil(ctx, time.Now().Add(time.Duration(100+rng.Intn(1900))*time.Millisecond)); err != nil {
		return err
	}
	if p.Bad != badNone {
		if err := l.limited(func() error { return l.bad.send(ctx, l.s, p) }); err != nil {
			return err
		}
	}
	for _, e := range p.Events {
		if err := l.limited(func() error { return l.s.raise(ctx, p.ID, e) }); err != nil {
			return fmt.Errorf("raising %s on %s via %s: %w", e.Name, p.ID, e.Via, err)
		}
		if err := sleepUntil(ctx, time.Now().Add(time.Duration(rng.Intn(300))*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

// limited runs f while holding one of the load's slots.
func (l *load) limited(f func() error) error {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	return f()
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
