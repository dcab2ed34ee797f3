// Command jetflow-soak runs jetflow's chaos soak test (`make soak`, package internal/soak): a
// local 3-node NATS cluster, workers, API and raiser as processes, a load of example
// orchestrations and faults. Its last line is the verdict; it exits 0 only if the run passed.
//
// Environment: SOAK_N (instances, default 2000), SOAK_SECONDS (fault period, default 120),
// SOAK_SETTLE (wait for stragglers, default 240), SOAK_SEED, SOAK_DIR (default .jetflow/soak),
// SOAK_PORT (default 14222), SOAK_API_PORT (default 17071), JETFLOW_BIN, NATS_SERVER_BIN.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jetflow-dev/jetflow/internal/soak"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := soak.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(2)
	}
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
	res.Report(os.Stdout)
	fmt.Println(res.LastLine())
	if !res.OK() {
		os.Exit(1)
	}
}
