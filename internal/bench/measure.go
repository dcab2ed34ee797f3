package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// tracker follows instances 0..n-1 of a run and records when each first satisfies cond. Its
// memory is allocated up front (idle measures RSS around it).
type tracker struct {
	prefix string
	cond   func(*backend.Instance) bool

	mu     sync.Mutex
	at     []int64 // UnixNano when cond was first seen; 0: not yet
	left   int
	notify map[int]chan struct{}
	all    chan struct{}
}

// track returns a tracker over e's instances 0..n-1 that the state watcher feeds.
func (e *env) track(n int, cond func(*backend.Instance) bool) *tracker {
	t := &tracker{
		prefix: e.run + "-" + e.workload + "-",
		cond:   cond,
		at:     make([]int64, n),
		left:   n,
		notify: map[int]chan struct{}{},
		all:    make(chan struct{}),
	}
	if n == 0 {
		close(t.all)
	}
	e.follow(t.see)
	return t
}

func (t *tracker) see(s *backend.Instance) {
	rest, ok := strings.CutPrefix(s.ID, t.prefix)
	if !ok {
		return
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= len(t.at) || !t.cond(s) {
		return
	}
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at[i] != 0 {
		return
	}
	t.at[i] = now
	if ch := t.notify[i]; ch != nil {
		close(ch)
		delete(t.notify, i)
	}
	if t.left--; t.left == 0 {
		close(t.all)
	}
}

// done returns a channel closed once instance i has satisfied the condition (at once if it has).
func (t *tracker) done(i int) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	if t.at[i] != 0 {
		close(ch)
		return ch
	}
	if old := t.notify[i]; old != nil {
		return old
	}
	t.notify[i] = ch
	return ch
}

// count returns how many instances have satisfied the condition.
func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.at) - t.left
}

// when returns when instance i satisfied the condition (call after done(i) closed).
func (t *tracker) when(i int) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Unix(0, t.at[i])
}

// last returns when the last instance satisfied the condition (call after all closed).
func (t *tracker) last() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Unix(0, slices.Max(t.at))
}

// counter follows the custom status (an integer) of one instance: wait(k) is closed once it
// has reached k, and reached(k) says when that was seen.
type counter struct {
	id   string
	mu   sync.Mutex
	cur  int
	at   []int64 // at[k-1]: when the custom status first reached k
	ws   map[int]chan struct{}
	seen int // state updates with a new value (turns that applied ticks)
}

// count returns a counter over instance id's custom status, for values 1..n.
func (e *env) count(id string, n int) *counter {
	c := &counter{id: id, at: make([]int64, n), ws: map[int]chan struct{}{}}
	e.follow(c.see)
	return c
}

func (c *counter) see(s *backend.Instance) {
	if s.ID != c.id || len(s.CustomStatus) == 0 {
		return
	}
	v, err := strconv.Atoi(string(s.CustomStatus))
	if err != nil {
		return
	}
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if v <= c.cur {
		return
	}
	c.seen++
	for k := c.cur + 1; k <= v && k <= len(c.at); k++ {
		c.at[k-1] = now
	}
	c.cur = v
	for k, ch := range c.ws {
		if k <= v {
			close(ch)
			delete(c.ws, k)
		}
	}
}

// wait returns a channel closed once the custom status has reached k.
func (c *counter) wait(k int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	if c.cur >= k {
		close(ch)
		return ch
	}
	if old := c.ws[k]; old != nil {
		return old
	}
	c.ws[k] = ch
	return ch
}

// reached returns when the custom status reached k (call after wait(k) closed).
func (c *counter) reached(k int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, c.at[k-1])
}

// updates returns how many state updates advanced the counter.
func (c *counter) updates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen
}

// percentiles returns the 50th and 99th percentiles of d in milliseconds (nearest rank); d is
// sorted in place.
func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(float64(len(d))*p+0.999999) - 1
		return d[max(0, min(len(d)-1, i))]
	}
	return ms(rank(0.50)), ms(rank(0.99))
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

// round keeps three decimals.
func round(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// seconds returns d in seconds, to the microsecond.
func seconds(d time.Duration) float64 { return d.Round(time.Microsecond).Seconds() }

// rate returns n per second of d.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round(float64(n) / d.Seconds())
}

// memory is the process's memory after a garbage collection that returns what it can to the OS.
type memory struct {
	rss  int64 // bytes, VmRSS
	heap uint64
}

func measureMemory() (memory, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err := processRSS()
	return memory{rss: rss, heap: ms.HeapInuse}, err
}

// processRSS reads VmRSS from /proc/self/status.
func processRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading the process's RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing VmRSS %q: %w", sc.Text(), err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading the process's RSS: %w", err)
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

func mb(b int64) float64 { return round(float64(b) / (1 << 20)) }

// kvBytes returns the bytes stored in the history stream (every instance's records, the last
// of which is its state); state is 0, kept for the notes' shape.
func (e *env) kvBytes(ctx context.Context) (hist, state uint64, err error) {
	s, err := e.js.Stream(ctx, e.names.HistoryStream())
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", e.names.HistoryStream(), err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("info of stream %s: %w", e.names.HistoryStream(), err)
	}
	return info.State.Bytes, 0, nil
}
