// Package soak is the chaos soak test of `make soak`: a local 3-node JetStream cluster, three
// jetflow workers, the HTTP API and the raiser as separate processes, a load of example
// orchestrations whose events arrive over HTTP, plain NATS publishes and the raiser's queues,
// and faults injected meanwhile (workers SIGKILLed and restarted, a NATS server killed and
// restarted, a worker SIGSTOPped past its lease). At the end it checks every instance's output
// and history, counts activity executions and reads the dead letters.
package soak

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is what a soak run does; ConfigFromEnv reads it from the environment.
type Config struct {
	N       int           // instances (SOAK_N, default 2000)
	Chaos   time.Duration // how long faults are injected (SOAK_SECONDS, default 120)
	Settle  time.Duration // how long to wait for instances after the chaos (SOAK_SETTLE, default 240)
	Seed    int64         // random seed (SOAK_SEED, default: the time)
	Dir     string        // data and logs, emptied at start (SOAK_DIR, default .jetflow/soak)
	Port    int           // first client port; routes +2000, monitoring +4000 (SOAK_PORT, default 14222)
	APIPort int           // the HTTP API's port (SOAK_API_PORT, default 17071)
	// Binaries and the server configuration every node includes.
	JetflowBin, NATSServerBin, NATSConf string
	// Log receives progress lines.
	Log io.Writer
}

// ConfigFromEnv returns the configuration given by the environment read through getenv.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Dir: ".jetflow/soak", JetflowBin: "bin/jetflow", NATSServerBin: "bin/nats-server",
		NATSConf: "nats.conf", Log: os.Stderr, Seed: time.Now().UnixNano(),
	}
	ints := []struct {
		env string
		dst *int
		def int
	}{{"SOAK_N", &c.N, 2000}, {"SOAK_PORT", &c.Port, 14222}, {"SOAK_API_PORT", &c.APIPort, 17071}}
	for _, v := range ints {
		n, err := envInt(getenv, v.env, v.def)
		if err != nil {
			return c, err
		}
		*v.dst = n
	}
	durs := []struct {
		env string
		dst *time.Duration
		def int
	}{{"SOAK_SECONDS", &c.Chaos, 120}, {"SOAK_SETTLE", &c.Settle, 240}}
	for _, v := range durs {
		n, err := envInt(getenv, v.env, v.def)
		if err != nil {
			return c, err
		}
		*v.dst = time.Duration(n) * time.Second
	}
	if s := getenv("SOAK_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("SOAK_SEED: %q is not an integer", s)
		}
		c.Seed = seed
	}
	for env, dst := range map[string]*string{"SOAK_DIR": &c.Dir, "JETFLOW_BIN": &c.JetflowBin,
		"NATS_SERVER_BIN": &c.NATSServerBin, "SOAK_NATS_CONF": &c.NATSConf} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	return c, c.validate()
}

// envInt reads a positive integer from env, def if unset.
func envInt(getenv func(string) string, env string, def int) (int, error) {
	s := strings.TrimSpace(getenv(env))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: want an integer >= 1, got %q", env, s)
	}
	return n, nil
}

// validate checks the values and makes the paths absolute.
func (c *Config) validate() error {
	if c.N < 5 {
		return fmt.Errorf("SOAK_N: at least 5 instances (one of each example), got %d", c.N)
	}
	for _, p := range []*string{&c.Dir, &c.JetflowBin, &c.NATSServerBin, &c.NATSConf} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("path %s: %w", *p, err)
		}
		*p = abs
	}
	for _, f := range []string{c.JetflowBin, c.NATSServerBin, c.NATSConf} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("soak needs %s (make soak builds the binaries): %w", f, err)
		}
	}
	return nil
}
