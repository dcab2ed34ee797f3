package natsjs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

func TestCheckOptions(t *testing.T) {
	if err := CheckOptions(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	ok := []Option{
		WithReplicas(1), WithReplicas(MaxReplicas),
		WithPartitions(1), WithPartitions(MaxPartitions),
		WithMaxPayload(backend.MinMaxPayload),
		WithInboxAckWait(MinAckWait), WithActivityAckWait(MinAckWait),
		WithActivityConcurrency(1), WithLeaseTTL(MinLeaseTTL), WithDuplicateWindow(time.Second),
	}
	for i, opt := range ok {
		if err := CheckOptions(opt); err != nil {
			t.Errorf("option %d: %v", i, err)
		}
	}
	bad := map[string]Option{
		"replicas 0":           WithReplicas(0),
		"replicas over":        WithReplicas(MaxReplicas + 1),
		"partitions 0":         WithPartitions(0),
		"partitions over":      WithPartitions(MaxPartitions + 1),
		"max payload":          WithMaxPayload(backend.MinMaxPayload - 1),
		"inbox ack wait":       WithInboxAckWait(MinAckWait - 1),
		"activity ack wait":    WithActivityAckWait(MinAckWait - 1),
		"activity concurrency": WithActivityConcurrency(0),
		"lease TTL":            WithLeaseTTL(MinLeaseTTL - 1),
		"duplicate window":     WithDuplicateWindow(0),
	}
	for name, opt := range bad {
		if err := CheckOptions(opt); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: err = %v, want ErrInvalidOption", name, err)
		}
	}
	// Every error is reported, not only the first.
	err := CheckOptions(WithReplicas(0), WithPartitions(0))
	if err == nil || !strings.Contains(err.Error(), "replicas") || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("two bad options: %v, want both reported", err)
	}
}
