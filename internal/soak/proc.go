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
	// expected is set when the current run is killed or stopped on purpose; stopping when the
	// process is being stopped for good.
	expected, stopping bool
	crashes            []string
}

func newProc(name, dir string, env []string, args ...string) *proc {
	return &proc{name: name, dir: dir, args: args, env: env}
}

// start starts a new run of the process, in its own process group.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked()
}

// restart starts a new run if the current one is still cmd (so that a supervisor and a fault
// injector restarting the same exit start one run), unless the process is being stopped.
func (p *proc) restart(cmd *exec.Cmd) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != cmd || p.stopping {
		return nil
	}
	return p.startLocked()
}

func (p *proc) startLocked() error {
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
	p.cmd, p.exited, p.since, p.expected = cmd, exited, time.Now(), false
	p.logs = append(p.logs, logPath)
	go p.watch(cmd, exited, p.runs, logPath)
	return nil
}

// watch waits for a run to exit. An exit nobody asked for is recorded as a crash, and the
// process is started again a second later, as a supervisor (Kubernetes) would.
func (p *proc) watch(cmd *exec.Cmd, exited chan struct{}, run int, logPath string) {
	err := cmd.Wait()
	p.mu.Lock()
	crashed := p.cmd == cmd && !p.expected
	if crashed {
		p.crashes = append(p.crashes, fmt.Sprintf("%s run %d (%s) exited on its own (%v); its last line: %s",
			p.name, run, filepath.Base(logPath), err, tail(logPath, 1)))
	}
	p.mu.Unlock()
	close(exited)
	if crashed {
		time.Sleep(time.Second)
		if err := p.restart(cmd); err != nil {
			p.mu.Lock()
			p.crashes = append(p.crashes, err.Error())
			p.mu.Unlock()
		}
	}
}

// crashReports returns the crashes recorded so far.
func (p *proc) crashReports() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.crashes...)
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

// kill SIGKILLs the process, waits until it has exited and returns the run it killed.
func (p *proc) kill() (*exec.Cmd, error) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.expected = true
	p.mu.Unlock()
	if cmd == nil {
		return nil, fmt.Errorf("%s is not running", p.name)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return cmd, fmt.Errorf("killing %s: %w", p.name, err)
	}
	<-exited
	return cmd, nil
}

// stop ends the process for good: SIGCONT (in case it is stopped) and SIGTERM, then SIGKILL
// after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.expected, p.stopping = true, true
	p.mu.Unlock()
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
