package natsjs

// The timer guard: durable timers are scheduled messages that the server publishes when due
// (actionMsg). A clustered server has been seen to leave a due schedule unfired (nats-server
// issue 8423 and the inflight marks a leader change leaves behind): the instance then waits for
// ever. The guard holds the timers this worker scheduled, and those of the partitions it takes
// over; when one is overdue by timerGrace and its schedule is still stored, it publishes the
// timer's message itself and removes the schedule. A timer that fires twice is harmless: the
// engine ignores the second TimerFired of a task.

import (
	"container/heap"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// timerGrace is how long after its due time a schedule may stay unfired before the guard
// fires it: the server fires due schedules every 250 ms at the latest, so a schedule still
// stored this long after is stuck.
const timerGrace = 5 * time.Second

// maxTakeoverTimers caps the schedules one takeover reads into the guard (one direct get each).
const maxTakeoverTimers = 20000

// watchedTimer is a scheduled timer the guard checks once it is overdue.
type watchedTimer struct {
	subject string    // the schedule's subject (jetflow.sched.<id>.<gen>.<task>)
	due     time.Time // when the guard checks it: fire time + timerGrace
}

type timerHeap []watchedTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(watchedTimer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// timerGuard holds the watched timers of one backend. Watching does nothing unless a worker
// delivers instance messages (acquire), so that clients hold no timers.
type timerGuard struct {
	mu      sync.Mutex
	users   int  // consumeInbox calls running
	running bool // the guard's goroutine is running
	timers  timerHeap
	wake    chan struct{}
	now     func() time.Time // time.Now; tests move it
}

func newTimerGuard() *timerGuard {
	return &timerGuard{wake: make(chan struct{}, 1), now: time.Now}
}

// acquire registers a user of the guard and reports whether the caller must start its
// goroutine (runTimerGuard).
func (g *timerGuard) acquire() (start bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.users++
	if !g.running {
		g.running = true
		return true
	}
	return false
}

// release ends a use of the guard; the goroutine stops when no user is left.
func (g *timerGuard) release() {
	g.mu.Lock()
	g.users--
	g.mu.Unlock()
	g.poke()
}

func (g *timerGuard) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// watch adds the timer scheduled on subject to fire at fireAt.
func (g *timerGuard) watch(subject string, fireAt time.Time) {
	g.mu.Lock()
	if g.users == 0 {
		g.mu.Unlock()
		return
	}
	heap.Push(&g.timers, watchedTimer{subject: subject, due: fireAt.Add(timerGrace)})
	first := g.timers[0].subject == subject
	g.mu.Unlock()
	if first {
		g.poke()
	}
}

// due pops the timers due at now and returns how long until the next one is due; stop is true
// when the guard has no user left (it then forgets its timers).
func (g *timerGuard) due(now time.Time) (due []watchedTimer, next time.Duration, stop bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users == 0 {
		g.running, g.timers = false, nil
		return nil, 0, true
	}
	for len(g.timers) > 0 && !g.timers[0].due.After(now) {
		due = append(due, heap.Pop(&g.timers).(watchedTimer))
	}
	next = time.Hour
	if len(g.timers) > 0 {
		next = g.timers[0].due.Sub(now)
	}
	return due, next, false
}

// runTimerGuard checks the watched timers as they fall due, until the guard has no user.
func (b *Backend) runTimerGuard() {
	g := b.timerGuard
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		due, next, stop := g.due(g.now())
		if stop {
			return
		}
		for _, w := range due {
			b.checkTimer(context.Background(), w.subject)
		}
		if len(due) > 0 {
			continue // more may have fallen due meanwhile
		}
		t.Reset(next)
		select {
		case <-g.wake:
		case <-t.C:
		}
	}
}

// checkTimer fires the timer scheduled on subject if its schedule is still stored past its
// due time; a schedule that is gone has fired (or its instance was purged).
func (b *Backend) checkTimer(ctx context.Context, subject string) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := b.inst.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return
	}
	if err != nil {
		b.log.Warn().Err(err).Str("schedule", subject).Msg("checking an overdue timer; checking again later")
		b.timerGuard.watch(subject, b.timerGuard.now())
		return
	}
	fireAt, ok := scheduleTime(msg.Header.Get(jetstream.ScheduleHeader))
	if !ok {
		return // not a timer schedule the guard knows
	}
	if fireAt.Add(timerGrace).After(b.timerGuard.now()) { // replaced by a later schedule
		b.timerGuard.watch(subject, fireAt)
		return
	}
	target := msg.Header.Get(jetstream.ScheduleTargetHeader)
	fired := nats.NewMsg(target)
	fired.Data = msg.Data
	// The same ID for every guard that fires this schedule, so that two fire it once.
	fired.Header.Set(jetstream.MsgIDHeader, "timer-guard."+subject+"."+fireAt.UTC().Format(time.RFC3339Nano))
	if _, err := b.js.PublishMsg(ctx, fired); err != nil {
		b.log.Warn().Err(err).Str("schedule", subject).Msg("firing an overdue timer; trying again later")
		b.timerGuard.watch(subject, b.timerGuard.now())
		return
	}
	if err := b.inst.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		b.log.Debug().Err(err).Str("schedule", subject).Msg("removing a fired timer's schedule")
	}
	b.opts.metrics.TimerRefired()
	b.log.Warn().Str("schedule", subject).Time("fire_at", fireAt).
		Msg("the server had not fired a durable timer well after it was due; the worker fired it")
}

// scheduleTime parses a Nats-Schedule header of the form "@at <RFC 3339 time>".
func scheduleTime(header string) (time.Time, bool) {
	at, ok := strings.CutPrefix(header, "@at ")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	return t, err == nil
}

// watchPartitionTimers adds the timers of partition p's instances to the guard, so that the
// timers a worker that is gone scheduled are watched too. It reads at most maxTakeoverTimers.
func (b *Backend) watchPartitionTimers(ctx context.Context, p int) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	info, err := b.inst.Info(ctx, jetstream.WithSubjectFilter(b.names.TimerSchedules()))
	if err != nil {
		b.log.Debug().Err(err).Int("partition", p).Msg("listing the timers of a partition taken over")
		return
	}
	read := 0
	for subject := range info.State.Subjects {
		idTok, ok := b.names.ParseTimerSchedule(subject)
		if !ok || PartitionOf(idTok, b.partitions) != p {
			continue
		}
		if read++; read > maxTakeoverTimers {
			b.log.Warn().Int("partition", p).Int("limit", maxTakeoverTimers).
				Msg("too many timers to watch after a takeover; the rest are left to the server")
			return
		}
		msg, err := b.inst.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			continue
		}
		if fireAt, ok := scheduleTime(msg.Header.Get(jetstream.ScheduleHeader)); ok {
			b.timerGuard.watch(subject, fireAt)
		}
	}
}
