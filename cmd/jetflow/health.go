package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/metrics"
)

// httpShutdownGrace is how long the HTTP servers of the commands (the health endpoint, the API)
// wait for requests in flight when they stop.
const httpShutdownGrace = 5 * time.Second

// readyTimeout bounds one readiness check.
const readyTimeout = 3 * time.Second

// newMetrics returns a registry with the Go runtime and process collectors and jetflow's
// metrics, for one process: dev, worker, api and raiser each make one and serve it on /metrics.
func newMetrics() (*prometheus.Registry, *metrics.Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	return reg, m, nil
}

// healthServer is the health endpoint of a command.
type healthServer struct {
	srv *http.Server
	ln  net.Listener
}

// Addr is the address the endpoint listens on ("" when it serves nothing).
func (h *healthServer) Addr() string {
	if h == nil || h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// Stop shuts the endpoint down, waiting up to httpShutdownGrace for requests in flight.
func (h *healthServer) Stop() {
	if h == nil || h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}

// healthMux routes the probes and the metrics:
//
//	/livez    200 while the process runs (liveness)
//	/readyz   200 while ready reports nil (connected to NATS, jetflow's streams present), else 503
//	/metrics  the Prometheus metrics of gatherer
func healthMux(ready func(context.Context) error, gatherer prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// serveHealth serves healthMux on addr until Stop is called. With no addr it serves nothing.
func serveHealth(addr string, ready func(context.Context) error, gatherer prometheus.Gatherer, log zerolog.Logger) (*healthServer, error) {
	if addr == "" {
		return &healthServer{}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint: %w", err)
	}
	h := &healthServer{srv: &http.Server{Handler: healthMux(ready, gatherer), ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health endpoint")
		}
	}()
	log.Info().Str("addr", h.Addr()).Msg("serving /livez, /readyz and /metrics")
	return h, nil
}
