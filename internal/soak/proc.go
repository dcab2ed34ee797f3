package soak

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// proc is one long-running process of the cluster (a NATS server, a worker, the API or the
// raiser), started again after each kill. Each run writes its own log, <dir>/<name>.<run>.log.
type proc struct {
	name string
	dir  string
	args []string
	env  []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	runs   int
	logs   []string
	since  time.Time // when the current run started
}

func newProc(name, dir string, env []string, args ...string) *proc {
	return &proc{name: name, dir: dir, args: args, env: env}
}

// start starts a new run of the process, in its own process group.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, p.runs))
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	defer f.Close()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited, p.since = cmd, exited, time.Now()
	p.logs = append(p.logs, logPath)
	return nil
}

// current returns the running command, its exit channel and its log.
func (p *proc) current() (*exec.Cmd, chan struct{}, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, nil, ""
	}
	return p.cmd, p.exited, p.logs[len(p.logs)-1]
}

// uptime is how long the current run has been running.
func (p *proc) uptime() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Since(p.since)
}

// allLogs returns the logs of every run so far.
func (p *proc) allLogs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	cmd, _, _ := p.current()
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("sending %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// kill SIGKILLs the process and waits until it has exited.
func (p *proc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, exited, _ := p.current()
	<-exited
	return nil
}

// stop ends the process: SIGCONT (in case it is stopped) and SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	cmd, exited, _ := p.current()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// running reports whether the current run has not exited.
func (p *proc) running() bool {
	_, exited, _ := p.current()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// waitLog waits until the current run's log matches re, failing if the process exits first.
func (p *proc) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) error {
	_, exited, logPath := p.current()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(logPath); err == nil && re.Match(b) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before logging %q; the end of its log:\n%s", p.name, re, tail(logPath, 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s (log %s)", p.name, re, timeout, logPath)
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
