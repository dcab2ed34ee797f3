package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// sample returns the value of the series line that starts with series (a name with its labels,
// as the text format writes them), -1 if there is none.
func sample(body, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestDevServesHealthAndMetrics: `jetflow dev --health-addr 127.0.0.1:0` serves /livez, /readyz
// and /metrics, whose jetflow_ series move when a BudgetApproval instance runs.
func TestDevServesHealthAndMetrics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.NATSListen = "127.0.0.1:-1"
	cfg.HealthAddr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), examplestack.WaitTimeout)
	defer cancel()
	d, err := startDev(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatalf("startDev: %v", err)
	}
	t.Cleanup(d.Stop)
	base := "http://" + d.health.Addr()
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := get(t, base+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %q, want 200", path, code, body)
		}
	}
	_, before := get(t, base+"/metrics")
	if v := sample(before, "jetflow_instances_started_total"); v != 0 {
		t.Fatalf("jetflow_instances_started_total = %v before any instance, want 0\n%s", v, before)
	}

	id, err := d.w.client.ScheduleNew(ctx, "BudgetApproval", engine.WithInput(activities.BudgetRequest{AmountCents: 500000, Requester: "ana"}))
	if err != nil {
		t.Fatal(err)
	}
	examplestack.StartWaiting(t, d.w.client, "BudgetApproval", "budget-2", activities.BudgetRequest{AmountCents: 1}, "Approval")
	for _, i := range []string{id, "budget-2"} {
		if err := d.w.client.RaiseEvent(ctx, i, "Approval", true); err != nil {
			t.Fatal(err)
		}
		examplestack.WaitEnded(t, d.w.client, i)
	}
	want := map[string]float64{
		"jetflow_instances_started_total":                                      2,
		`jetflow_instances_ended_total{status="Completed"}`:                    2,
		`jetflow_activity_executions_total{name="ApproveBudget",outcome="ok"}`: 2,
		"jetflow_events_raised_total":                                          2,
	}
	natstest.CheckFor(t, examplestack.WaitTimeout, 20*time.Millisecond, func() error {
		_, after := get(t, base+"/metrics")
		var errs []error
		// At least a start and an activity result per instance (an event may share a turn).
		if v := sample(after, "jetflow_turns_total"); v < 4 {
			errs = append(errs, fmt.Errorf("jetflow_turns_total = %v, want >= 4", v))
		}
		for series, n := range want {
			if v := sample(after, series); v != n {
				errs = append(errs, fmt.Errorf("%s = %v, want %v", series, v, n))
			}
		}
		return errors.Join(errs...)
	})
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runInBackground runs the command until the test ends.
func runInBackground(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		_, stderr, code := runCmd(ctx, args...)
		done <- fmt.Sprintf("exit %d: %s", code, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		t.Logf("%s %s", args[0], <-done)
	})
}

// waitReady waits until url answers 200.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	natstest.CheckFor(t, examplestack.WaitTimeout, 50*time.Millisecond, func() error {
		resp, err := http.Get(url) //nolint:noctx // a test poll
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
		}
		return nil
	})
}

// TestAPIAndRaiserServeHealth: `jetflow api` and `jetflow raiser` serve /livez, /readyz and
// /metrics on --health-addr; the raiser's message counter moves when it dead-letters a message.
func TestAPIAndRaiserServeHealth(t *testing.T) {
	d := startTestDev(t, zerolog.WarnLevel)
	apiHealth, raiserHealth := freeAddr(t), freeAddr(t)
	runInBackground(t, "api", "--nats", d.URL(), "--listen", "127.0.0.1:0", "--health-addr", apiHealth, "--log-level", "warn")
	runInBackground(t, "raiser", "--nats", d.URL(), "--queue", "health-queue", "--event", "Approval", "--health-addr", raiserHealth, "--log-level", "warn")
	for _, addr := range []string{apiHealth, raiserHealth} {
		waitHealthy(t, "http://"+addr+"/readyz")
		if code, _ := get(t, "http://"+addr+"/livez"); code != http.StatusOK {
			t.Errorf("%s/livez: %d", addr, code)
		}
		if _, body := get(t, "http://"+addr+"/metrics"); sample(body, "jetflow_timers_pending") != 0 {
			t.Errorf("%s/metrics has no jetflow_timers_pending 0:\n%s", addr, body)
		}
	}
	// The queue exists once the raiser has set it up (it is ready before); publish until the
	// message is taken.
	series := `jetflow_raiser_messages_total{outcome="dead_lettered",queue="health-queue"}`
	natstest.CheckFor(t, examplestack.WaitTimeout, 100*time.Millisecond, func() error {
		if _, body := get(t, "http://"+raiserHealth+"/metrics"); sample(body, series) >= 1 {
			return nil
		}
		if err := d.nc.Publish("health-queue", []byte("no-such-instance")); err != nil {
			return err
		}
		return fmt.Errorf("%s not counted yet", series)
	})
}

// TestReadyzReportsNotReady: /readyz answers 503 with the reason while the check fails.
func TestReadyzReportsNotReady(t *testing.T) {
	mux := healthMux(func(context.Context) error { return errors.New("stream JETFLOW_INST: not found") }, prometheus.NewRegistry())
	h, err := serveHealthMux(t, mux)
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, h+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "JETFLOW_INST") {
		t.Errorf("GET /readyz = %d %q, want 503 with the reason", code, body)
	}
	if code, _ := get(t, h+"/livez"); code != http.StatusOK {
		t.Errorf("GET /livez = %d, want 200", code)
	}
}

// serveHealthMux serves mux on a free port until the test ends and returns its base URL.
func serveHealthMux(t *testing.T, mux http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}
