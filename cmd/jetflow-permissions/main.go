// Command jetflow-permissions proves the users of the repository's nats.conf against a real
// nats-server process (make prove-permissions): it generates a certificate authority, server and
// client certificates and the users' passwords in a temporary directory, starts the nats-server
// binary with nats-tls.conf (nats.conf with TLS), and runs internal/permissions' checks: what
// each role must be able to do, end to end, and what the server must refuse it. It prints one
// line per check and "N passed, M failed" last, and exits 1 if any check failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/permissions"
)

func main() {
	serverBin := flag.String("nats-server", "bin/nats-server", "the nats-server `binary` to run")
	repo := flag.String("repo", ".", "the repository's `directory` (nats.conf and nats-tls.conf)")
	verbose := flag.Bool("v", false, "show the server's and the worker's log")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed, err := run(ctx, *serverBin, *repo, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetflow-permissions:", err)
		os.Exit(1)
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// run starts the server, runs the checks and returns how many failed.
func run(ctx context.Context, serverBin, repo string, verbose bool) (int, error) {
	dir, err := os.MkdirTemp("", "jetflow-permissions-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	f, err := permissions.NewFixture(dir, repo, port)
	if err != nil {
		return 0, err
	}
	url := fmt.Sprintf("tls://127.0.0.1:%d", port)
	stopServer, err := startServer(ctx, f, serverBin, url, verbose)
	if err != nil {
		return 0, err
	}
	defer stopServer()
	log := zerolog.Nop()
	if verbose {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.InfoLevel)
	}
	fmt.Printf("nats-server %s -c %s (nats-tls.conf including nats.conf, at %s)\n", serverBin, f.Conf, url)
	passed, failed := permissions.RunChecks(ctx, f, url, log, func(r permissions.Result) { fmt.Println(r) })
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	return failed, nil
}

// startServer starts serverBin with f's configuration and environment and waits until the
// worker can connect to url; the returned function stops it.
func startServer(ctx context.Context, f *permissions.Fixture, serverBin, url string, verbose bool) (func(), error) {
	bin, err := filepath.Abs(serverBin)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", f.Conf)
	cmd.Env = os.Environ()
	for k, v := range f.ServerEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logFile, err := os.Create(filepath.Join(f.Dir, "nats-server.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (make prove-permissions builds it): %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	if err := waitReady(ctx, f, url); err != nil {
		stop()
		log, _ := os.ReadFile(logFile.Name())
		return nil, fmt.Errorf("%w; the server's log:\n%s", err, log)
	}
	return stop, nil
}

// waitReady connects as the worker until it succeeds, for up to 30 seconds.
func waitReady(ctx context.Context, f *permissions.Fixture, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.UserInfo("worker", f.Passwords["worker"]), nats.RootCAs(f.Certs.CA),
			nats.ClientCert(f.Certs.ClientCert, f.Certs.ClientKey), nats.CustomInboxPrefix(permissions.InboxPrefix("worker")))
		if err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(fmt.Errorf("the server at %s is not ready", url), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
