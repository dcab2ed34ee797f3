package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// TestDashboardSeries: the Grafana dashboard (deploy/grafana) is valid JSON, queries only series
// jetflow exports, and shows every one of them.
func TestDashboardSeries(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/jetflow-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exported := map[string]bool{}
	for _, name := range seriesNames(t) {
		exported[name] = true
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`jetflow_[a-z_]+`).FindAllString(string(raw), -1) {
		m = strings.TrimSuffix(m, "_bucket")
		used[m] = true
		if !exported[m] {
			t.Errorf("the dashboard queries %s, which jetflow does not export", m)
		}
	}
	for name := range exported {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

// seriesNames returns the names of every jetflow series, read from their descriptions.
func seriesNames(t *testing.T) []string {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 100)
	var names []string
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for _, c := range metrics.Collectors(m) {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}
