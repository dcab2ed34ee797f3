package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// httpShutdownGrace is how long the HTTP servers of the commands (the health endpoint, the API)
// wait for requests in flight when they stop.
const httpShutdownGrace = 5 * time.Second

// serveHealth serves the worker's probes on addr until stop is called:
//
//	/livez   200 while the process runs (liveness)
//	/readyz  200 while connected to NATS, 503 otherwise (readiness)
//
// With no addr it serves nothing.
func serveHealth(ctx context.Context, addr string, nc *nats.Conn, log zerolog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !nc.IsConnected() {
			http.Error(w, "not connected to NATS: "+nc.Status().String(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health endpoint")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /livez and /readyz")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownGrace)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}
