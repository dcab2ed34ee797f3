package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

const waitAbout = `
Waits until an instance completes, fails or is terminated, showing its progress on stderr.
On completion it prints the output (JSON) on stdout and exits 0. It exits 4 if the instance
failed, was terminated or canceled, 5 if --timeout passed first, 3 if there is no such instance.
`

func runWait(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "wait", "<id> [--timeout 30s]", waitAbout)
	cfg.clientFlags(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait; 0 waits for ever")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1, "an instance ID"); err != nil {
		return err
	}
	if *timeout < 0 {
		return usageErrorf("--timeout must be >= 0, got %v", *timeout)
	}
	id := pos[0]
	if err := checkID(id); err != nil {
		return err
	}
	return withClient(ctx, env, cfg, 0, func(ctx context.Context, c *engine.Client) error {
		wctx := ctx
		if *timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		var p *progress
		if !*quiet {
			p = newProgress(env.Stderr, id, isTerminal(env.Stderr))
		}
		s, err := c.WaitFor(wctx, id, func(s *engine.Status) bool {
			p.update(s)
			return s.Status.IsTerminal()
		})
		p.stop()
		switch {
		case err == nil:
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			what := ""
			if s != nil {
				what = fmt.Sprintf(" (status %s", s.Status)
				if s.Waiting != nil && !s.Waiting.IsEmpty() {
					what += ", waiting for " + describeWaiting(*s.Waiting, time.Now())
				}
				what += ")"
			}
			return withCode(exitTimedOut, fmt.Errorf("timed out after %v waiting for %q%s", *timeout, id, what))
		default:
			return err
		}
		return finalOutcome(env, s)
	})
}

// finalOutcome prints an ended instance's output (completed) or reason (failed, terminated) and
// returns the error that gives the exit code.
func finalOutcome(env *Env, s *engine.Status) error {
	switch s.Status {
	case history.StatusCompleted:
		out := string(s.Output)
		if out == "" {
			out = "null"
		}
		fmt.Fprintln(env.Stdout, out)
		return nil
	case history.StatusFailed:
		msg := "no failure details"
		if s.Failure != nil {
			msg = s.Failure.Error()
		}
		return withCode(exitEnded, fmt.Errorf("instance %q failed: %s", s.ID, msg))
	default: // Terminated, Canceled
		msg := fmt.Sprintf("instance %q is %s", s.ID, s.Status)
		if len(s.Output) > 0 {
			msg += ": " + string(s.Output)
		}
		return withCode(exitEnded, errors.New(msg))
	}
}

// progress shows what a waited-for instance is doing. On a terminal it keeps one line up to
// date, with the time waited; otherwise it writes a line whenever the status or what the
// instance waits for changes. A nil *progress does nothing.
type progress struct {
	w     io.Writer
	id    string
	tty   bool
	start time.Time

	mu   sync.Mutex
	last string
	done chan struct{}
	wg   sync.WaitGroup
}

func newProgress(w io.Writer, id string, tty bool) *progress {
	p := &progress{w: w, id: id, tty: tty, start: time.Now(), done: make(chan struct{})}
	if tty {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-p.done:
					return
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

func (p *progress) update(s *engine.Status) {
	if p == nil {
		return
	}
	line := string(s.Status)
	if s.Waiting != nil && !s.Waiting.IsEmpty() {
		line += ", waiting for " + describeWaiting(*s.Waiting, time.Now())
	}
	if len(s.CustomStatus) > 0 {
		line += ", custom status " + shorten(string(s.CustomStatus), 80)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if line == p.last {
		return
	}
	p.last = line
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", p.id, line)
}

// draw rewrites the terminal line; p.mu is held.
func (p *progress) draw() {
	fmt.Fprintf(p.w, "\r\033[K%s: %s (%s)", p.id, p.last, time.Since(p.start).Round(time.Second))
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
