package natsjs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/backendtest"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// TestConformance runs the backend suite on one embedded JetStream, each test under a prefix of
// its own (its own streams, buckets and consumers).
func TestConformance(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	n := 0
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		n++
		b, err := natsjs.New(context.Background(), js, natsjs.WithPrefix(fmt.Sprintf("conf%d", n)), natsjs.WithPartitions(2))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
