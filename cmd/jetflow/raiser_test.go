package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

func TestRaiserSettings(t *testing.T) {
	files := map[string]string{
		"two.json": `{"onUnknown": "drop", "queues": [
			{"name": "approval-queue", "event": "Approval", "data": true},
			{"name": "event-queue", "stream": "Q", "consumer": "c"}]}`,
		"typo.json":  `{"queue": [{"name": "q"}]}`,
		"empty.json": `{"queues": []}`,
	}
	readFile := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	tests := []struct {
		name string
		s    raiserSettings
		want string // the config as JSON, or "error: <substring>"
	}{
		{"one queue with event", raiserSettings{Queue: "approval-queue", Event: "Approval", Data: " true "},
			`{"queues":[{"name":"approval-queue","event":"Approval","data":true}]}`},
		{"notification queue", raiserSettings{Queue: "event-queue", OnUnknown: "drop"},
			`{"queues":[{"name":"event-queue"}],"onUnknown":"drop"}`},
		{"file", raiserSettings{Config: "two.json"},
			`{"queues":[{"name":"approval-queue","event":"Approval","data":true},{"name":"event-queue","stream":"Q","consumer":"c"}],"onUnknown":"drop"}`},
		{"file, flag overrides onUnknown", raiserSettings{Config: "two.json", OnUnknown: "deadletter"},
			`{"queues":[{"name":"approval-queue","event":"Approval","data":true},{"name":"event-queue","stream":"Q","consumer":"c"}],"onUnknown":"deadletter"}`},
		{"nothing", raiserSettings{}, "error: --queue (env JETFLOW_RAISER_QUEUE) or --config is required"},
		{"both", raiserSettings{Config: "two.json", Queue: "q"}, "error: --queue (env JETFLOW_RAISER_QUEUE) cannot be used with --config"},
		{"data without event", raiserSettings{Queue: "q", Data: "true"}, "error: --data (env JETFLOW_RAISER_DATA) needs --event"},
		{"bad data", raiserSettings{Queue: "q", Event: "E", Data: "yes"}, "error: is not valid JSON"},
		{"bad on-unknown", raiserSettings{Queue: "q", OnUnknown: "ignore"}, "error: onUnknown"},
		{"missing file", raiserSettings{Config: "nope.json"}, "error: cannot be read"},
		{"unknown field", raiserSettings{Config: "typo.json"}, `error: unknown field "queue"`},
		{"no queues in file", raiserSettings{Config: "empty.json"}, "error: --config (env JETFLOW_RAISER_CONFIG)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.s.config(readFile)
			if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want a ConfigError mentioning %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := jsonString(cfg)
			if got != tt.want {
				t.Errorf("config\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func TestRaiserFlagsAndEnv(t *testing.T) {
	// Bad settings fail with exit code 2 before connecting.
	_, errOut, code := runCmd(context.Background(), "raiser", "--queue", "q", "--data", "true")
	if code != exitUsage || !strings.Contains(errOut, "needs --event") {
		t.Errorf("raiser --data without --event: exit %d, stderr %q", code, errOut)
	}
	var out, errBuf bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errBuf, Getenv: func(k string) string {
		return map[string]string{"JETFLOW_RAISER_QUEUE": "q", "JETFLOW_RAISER_ON_UNKNOWN": "maybe"}[k]
	}}
	if code := report(env, run(context.Background(), env, []string{"raiser"})); code != exitUsage || !strings.Contains(errBuf.String(), "onUnknown") {
		t.Errorf("raiser with JETFLOW_RAISER_ON_UNKNOWN=maybe: exit %d, stderr %q", code, errBuf.String())
	}
	_, errOut, code = runCmd(context.Background(), "raiser", "-h")
	if code != exitOK || !strings.Contains(errOut, `"queues"`) || !strings.Contains(errOut, "--on-unknown") {
		t.Errorf("raiser -h: exit %d, does not document the config file and flags:\n%s", code, errOut)
	}
}

// TestDevRaiser publishes to the queues `jetflow dev` consumes, and runs `jetflow raiser` with a
// config file against the dev server.
func TestDevRaiser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startTestDev(t, zerolog.WarnLevel)
	var banner bytes.Buffer
	printDevBanner(&banner, d)
	for _, want := range []string{"nats pub --server " + d.URL() + " approval-queue <id>", "event-queue"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("dev banner does not mention %q:\n%s", want, banner.String())
		}
	}
	_, js := natstest.Connect(t, d.srv)
	client := d.w.client
	publish := func(subject, body string) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatalf("publishing to %s: %v", subject, err)
		}
	}
	output := func(id string) string {
		t.Helper()
		return string(examplestack.WaitEnded(t, client, id).Output)
	}

	// The dev server's raiser: its queues are set up once startDev returns.
	examplestack.StartWaiting(t, client, "BudgetApproval", "budget-1", json.RawMessage(`{"amountCents": 500000, "requester": "ana"}`), "Approval")
	publish("approval-queue", "budget-1")
	if got := output("budget-1"); got != `"approved"` {
		t.Errorf("budget-1 output %s, want approved", got)
	}
	examplestack.StartWaiting(t, client, "Select", "select-1", json.RawMessage("null"), "Event3")
	publish("event-queue", `{"instanceId": "select-1", "eventName": "Event3", "eventData": 7}`)
	if got := output("select-1"); got != `{"winner":"Event3","value":7}` {
		t.Errorf("select-1 output %s", got)
	}

	// `jetflow raiser --config FILE` against the dev server, with a queue of its own stream.
	file := filepath.Join(t.TempDir(), "raiser.json")
	if err := os.WriteFile(file, []byte(`{"queues": [{"name": "deny-queue", "stream": "DENIALS", "event": "Approval", "data": false}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var code int
	var errOut string
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errOut, code = runCmd(rctx, "raiser", "--config", file, "--nats", d.URL(), "--log-level", "warn")
	}()
	// The command sets its queue up as it starts: poll for its consumer.
	natstest.CheckFor(t, examplestack.WaitTimeout, 10*time.Millisecond, func() error {
		_, err := js.Consumer(ctx, "DENIALS", "raiser-deny-queue")
		return err
	})
	examplestack.StartWaiting(t, client, "BudgetApproval", "budget-2", json.RawMessage(`{"amountCents": 1, "requester": "bo"}`), "Approval")
	publish("deny-queue", "budget-2")
	if got := output("budget-2"); got != `"denied"` {
		t.Errorf("budget-2 output %s, want denied", got)
	}
	stop()
	wg.Wait()
	if code != exitOK {
		t.Errorf("jetflow raiser: exit %d after SIGTERM, stderr:\n%s", code, errOut)
	}
}
