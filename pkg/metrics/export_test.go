package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ExpireTimersPending makes the next scrape count the pending timers again.
func ExpireTimersPending(m *Metrics) {
	m.timersPending.mu.Lock()
	defer m.timersPending.mu.Unlock()
	m.timersPending.at = time.Time{}
}

// Collectors returns m's collectors.
func Collectors(m *Metrics) []prometheus.Collector { return m.collectors() }
