package backend_test

import (
	"errors"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

func TestCheckMaxPayload(t *testing.T) {
	for _, n := range []int{backend.MinMaxPayload, backend.DefaultMaxPayload, 64 << 20} {
		if err := backend.CheckMaxPayload(n); err != nil {
			t.Errorf("CheckMaxPayload(%d) = %v, want nil", n, err)
		}
	}
	for _, n := range []int{-1, 0, 1, backend.MinMaxPayload - 1} {
		if err := backend.CheckMaxPayload(n); !errors.Is(err, backend.ErrInvalidOption) {
			t.Errorf("CheckMaxPayload(%d) = %v, want ErrInvalidOption", n, err)
		}
	}
}
