package memory_test

import (
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/backendtest"
	"github.com/jetflow-dev/jetflow/pkg/backend/memory"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := memory.New()
		t.Cleanup(b.Close)
		return b
	})
}
