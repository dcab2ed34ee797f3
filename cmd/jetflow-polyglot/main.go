// Command jetflow-polyglot runs PlaceOrder end to end with a Go worker and the Node.js activity
// worker of examples/activity-worker-node (internal/polyglot); `make polyglot` runs it. It
// prints polyglot.Success when PlaceOrder completed with the Node worker's reservation, else the
// error and the Node worker's output, and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetflow-dev/jetflow/internal/polyglot"
)

func main() {
	var cfg polyglot.Config
	flag.StringVar(&cfg.NodeDir, "node-dir", "examples/activity-worker-node", "the Node worker's directory, with node_modules installed (npm ci)")
	flag.StringVar(&cfg.Node, "node", "node", "the node binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := polyglot.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "polyglot:", err)
		os.Exit(1)
	}
	fmt.Println(polyglot.Success)
}
