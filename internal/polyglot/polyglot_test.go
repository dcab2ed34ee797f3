package polyglot_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/internal/polyglot"
)

// RequireNodeEnv names the environment variable that, set to 1, makes a missing node or
// node_modules fail the test instead of skipping it (CI sets it).
const RequireNodeEnv = "JETFLOW_REQUIRE_NODE"

// TestPlaceOrderWithNodeWorker runs PlaceOrder with the Go worker serving the orchestrator and
// the Node worker of examples/activity-worker-node serving CheckAndReserveInventory.
func TestPlaceOrderWithNodeWorker(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "activity-worker-node")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "nats"))
	}
	if err != nil {
		if os.Getenv(RequireNodeEnv) == "1" {
			t.Fatalf("%s=1 but node or the Node worker's packages are missing (install nodejs and npm, run npm ci in %s): %v", RequireNodeEnv, dir, err)
		}
		t.Skipf("skipping the Node worker test: node or %s/node_modules is missing (%v); install nodejs and npm and run npm ci there, or set %s=1 to make this a failure", dir, err, RequireNodeEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := polyglot.Run(ctx, polyglot.Config{NodeDir: dir, Node: node, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.NodeLine, res.InstanceID) || !strings.HasSuffix(res.NodeLine, "reserved=true") {
		t.Fatalf("the Node worker's line %q does not say it reserved the items of %s", res.NodeLine, res.InstanceID)
	}
	if !strings.Contains(res.Output, `"orderId"`) {
		t.Fatalf("PlaceOrder output %s, want an invoice", res.Output)
	}
}
