package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// TestUnknownNames: `jetflow workers` lists the dev server's worker and what it serves; `jetflow
// start` of an orchestrator it does not serve exits with exitUnknown, unless
// --allow-unknown-names; the dev server's HTTP API answers 400 for it and 202 for a served one;
// terminate and purge recurse by default and take --recursive=false.
func TestUnknownNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	apiCfg, err := loadAPIConfig(func(string) string { return "" }, "api-")
	if err != nil {
		t.Fatal(err)
	}
	apiCfg.Listen = "127.0.0.1:-1"
	d := startTestDev(t, zerolog.ErrorLevel, apiCfg)
	c := devCLI{ctx: ctx, client: d.w.client, nats: []string{"--nats", d.URL()}}

	out, _ := c.run(t, 0, "workers")
	for _, want := range []string{"workers: 1", "BudgetApproval", "ApproveBudget"} {
		if !strings.Contains(out, want) {
			t.Errorf("workers does not say %q:\n%s", want, out)
		}
	}
	out, _ = c.run(t, 0, "workers", "--json")
	var ws []engine.WorkerInfo
	if err := json.Unmarshal([]byte(out), &ws); err != nil || len(ws) != 1 || !ws[0].Serves("BudgetApproval") {
		t.Fatalf("workers --json: %v %+v\n%s", err, ws, out)
	}

	_, errOut := c.run(t, exitUnknown, "start", "NoSuchFlow")
	if !strings.Contains(errOut, "no live worker serves it") {
		t.Errorf("start of an unknown orchestrator says %q", errOut)
	}
	c.run(t, exitUnknown, "start", "NoSuchFlow", "--event", "Go")
	c.run(t, 0, "start", "NoSuchFlow", "--id", "unknown-1", "--allow-unknown-names")
	if _, err := c.client.GetStatus(ctx, "unknown-1"); err != nil {
		t.Fatalf("allowed start: %v, want the instance created", err)
	}

	post := func(path string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", d.api.URL()+path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("orchestrators/NoSuchFlow"); code != http.StatusBadRequest {
		t.Errorf("HTTP start of an unknown orchestrator: %d, want 400", code)
	}
	if code := post("orchestrators/BudgetApproval/known-1"); code != http.StatusAccepted {
		t.Errorf("HTTP start of a served orchestrator: %d, want 202", code)
	}
	c.run(t, 0, "terminate", "known-1", "--recursive=false")
	c.run(t, exitEnded, "wait", "known-1", "--timeout", "20s")
	if _, errOut := c.run(t, 0, "purge", "known-1"); !strings.Contains(errOut, "1 instances") {
		t.Errorf("purge says %q", errOut)
	}
}

// The allow setting is read from the environment, for api and dev alike.
func TestAllowUnknownNamesSetting(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    bool
		wantErr bool
	}{{"", false, false}, {"true", true, false}, {"0", false, false}, {"maybe", false, true}} {
		c, err := loadAPIConfig(func(k string) string {
			if k == setAllowUnknown.env {
				return tc.env
			}
			return ""
		}, "")
		if (err != nil) != tc.wantErr || c.AllowUnknownNames != tc.want {
			t.Errorf("%s=%q: allow %v, error %v; want %v, error %v", setAllowUnknown.env, tc.env, c.AllowUnknownNames, err, tc.want, tc.wantErr)
		}
		if got := len(nameCheck(c.AllowUnknownNames)); got != map[bool]int{true: 0, false: 1}[c.AllowUnknownNames] {
			t.Errorf("%q: %d client options", tc.env, got)
		}
	}
}
