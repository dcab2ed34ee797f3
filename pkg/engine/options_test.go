package engine

import (
	"errors"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

func TestCheckWorkerOptions(t *testing.T) {
	if err := CheckWorkerOptions(WithCacheSize(0), WithConcurrency(1), WithActivityConcurrency(1), WithMaxBatch(1), WithMaxPayload(backend.MinMaxPayload)); err != nil {
		t.Errorf("the smallest values: %v", err)
	}
	for name, opt := range map[string]WorkerOption{
		"cache size":           WithCacheSize(-1),
		"concurrency":          WithConcurrency(0),
		"activity concurrency": WithActivityConcurrency(0),
		"max batch":            WithMaxBatch(0),
		"max payload":          WithMaxPayload(backend.MinMaxPayload - 1),
	} {
		err := CheckWorkerOptions(opt)
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: err = %v, want ErrInvalidOption", name, err)
		}
		if _, err := NewWorker(nil, nil, opt); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: NewWorker err = %v, want ErrInvalidOption", name, err)
		}
	}
}
