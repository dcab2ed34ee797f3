package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWorkloadsSmall runs every workload with N 20 and checks the JSON lines: so that the
// benchmark code keeps working as the engine changes. The figures themselves are not checked.
func TestWorkloadsSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 20
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	opts := Options{Workload: "all", N: n, C: 5, CacheSize: -1, Timeout: time.Minute}
	if err := Run(ctx, opts, func(r Result) error { return enc.Encode(r) }); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got []string
	for _, line := range lines {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, k := range []string{"engine", "workload", "n", "c", "seconds", "per_sec", "p50_ms", "p99_ms", "notes"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("line %q: no %q", line, k)
			}
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, r.Workload)
		wantC := 5
		if r.Workload == "latency" || r.Workload == "historyseq" {
			wantC = 1
		}
		switch {
		case r.Engine != Engine:
			t.Errorf("%s: engine %q", r.Workload, r.Engine)
		case r.N != n || r.C != wantC:
			t.Errorf("%s: n %d c %d, want %d and %d", r.Workload, r.N, r.C, n, wantC)
		case r.Seconds <= 0 || r.PerSec <= 0:
			t.Errorf("%s: seconds %v per_sec %v, want > 0", r.Workload, r.Seconds, r.PerSec)
		case r.P50ms <= 0 || r.P99ms < r.P50ms:
			t.Errorf("%s: p50 %v p99 %v", r.Workload, r.P50ms, r.P99ms)
		case !strings.Contains(r.Notes, "cpus=") || !strings.Contains(r.Notes, "load="):
			t.Errorf("%s: notes without the machine: %q", r.Workload, r.Notes)
		}
		// per_sec counts what the workload says it counts.
		units := float64(n)
		if r.Workload == "fanout" {
			units = n * fanoutWidth
		}
		if want := units / r.Seconds; r.PerSec < want*0.9 || r.PerSec > want*1.1 {
			t.Errorf("%s: per_sec %v, but %v units in %vs", r.Workload, r.PerSec, units, r.Seconds)
		}
		if r.Workload == "idle" {
			for _, k := range []string{"worker_rss_mb=", "rss_total_mb=", "kv_bytes_per_instance=", "embedded"} {
				if !strings.Contains(r.Notes, k) {
					t.Errorf("idle notes without %q: %q", k, r.Notes)
				}
			}
		}
	}
	if !slices.Equal(got, Workloads()) {
		t.Errorf("workloads %v, want %v", got, Workloads())
	}
}

func TestSelectWorkloads(t *testing.T) {
	ws, err := selectWorkloads("history, idle")
	if err != nil || len(ws) != 2 || ws[0].name != "history" || ws[1].name != "idle" {
		t.Errorf("selectWorkloads: %v, %v", ws, err)
	}
	if _, err := selectWorkloads("nope"); !errors.Is(err, ErrUnknownWorkload) {
		t.Errorf("unknown workload: %v", err)
	}
	if ws, _ := selectWorkloads("all"); len(ws) != len(workloads) {
		t.Errorf("all: %d workloads", len(ws))
	}
}

func TestPercentiles(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100-i) * time.Millisecond
	}
	p50, p99 := percentiles(d)
	if p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v, want 50 and 99", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("empty: %v %v", p50, p99)
	}
}

func TestProcessRSS(t *testing.T) {
	rss, err := processRSS()
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if rss < 1<<20 {
		t.Errorf("RSS %d bytes", rss)
	}
}
