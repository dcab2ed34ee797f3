package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
	"github.com/jetflow-dev/jetflow/pkg/webui"
)

const apiAbout = `
Serves the Durable Functions HTTP API (start, status, raise event, terminate, suspend, resume,
purge) under http://<listen>/runtime/webhooks/durabletask/ against the jetflow streams on the
NATS server. Workers run separately (jetflow worker). Requests must carry one of the keys as
?code=KEY or in the x-functions-key header; with no key configured the API is open to anyone
who can reach it, and a warning says so. Starting an orchestrator that no live worker serves is
refused with 400 (see 'jetflow workers'), unless --allow-unknown-names (for deploying the API
before the workers). The web UI is served under http://<listen>/ui/ (its
pages call the API, so the key is entered there). Stops cleanly on SIGINT or SIGTERM.
`

// The API's settings; `dev` uses them with an "api-" prefix on the flags.
var (
	setAPIListen   = setting{flag: "listen", env: "JETFLOW_API_LISTEN"}
	setAPIKeys     = setting{flag: "keys", env: "JETFLOW_API_KEYS"}
	setAPIKeysFile = setting{flag: "keys-file", env: "JETFLOW_API_KEYS_FILE"}
	setAPIMaxBody  = setting{flag: "max-body", env: "JETFLOW_API_MAX_BODY"}
	// setAllowUnknown is also the flag of `start` (no prefix there).
	setAllowUnknown = setting{flag: "allow-unknown-names", env: "JETFLOW_ALLOW_UNKNOWN_NAMES"}
)

// defaultAPIListen is where `api` and `dev` serve the HTTP API unless told otherwise (the port of
// Azure Functions Core Tools).
const defaultAPIListen = "127.0.0.1:7071"

// apiConfig configures the HTTP API.
type apiConfig struct {
	Listen   string // host:port; port -1 or 0: any free port; "" or "off": no API (dev only)
	Keys     string // comma-separated
	KeysFile string // one key per line; blank lines and lines starting with # are ignored
	MaxBody  int64
	// AllowUnknownNames accepts starts of orchestrators that no live worker serves (for
	// deploying the API before the workers); by default they are refused with 400.
	AllowUnknownNames bool
	prefix            string // flag prefix: "" for api, "api-" for dev
}

// loadAPIConfig returns the defaults overridden by the environment.
func loadAPIConfig(getenv func(string) string, prefix string) (apiConfig, error) {
	c := apiConfig{Listen: defaultAPIListen, MaxBody: httpapi.DefaultMaxBodyBytes, prefix: prefix}
	if v := getenv(setAPIListen.env); v != "" {
		c.Listen = v
	}
	c.Keys = getenv(setAPIKeys.env)
	c.KeysFile = getenv(setAPIKeysFile.env)
	if v := getenv(setAPIMaxBody.env); v != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return c, c.err(setAPIMaxBody, "must be an integer, got %q", v)
		}
		c.MaxBody = n
	}
	allow, err := envBool(getenv, setAllowUnknown)
	if err != nil {
		return c, c.err(setAllowUnknown, "%v", err)
	}
	c.AllowUnknownNames = allow
	return c, nil
}

// envBool reads a boolean setting from the environment (false when unset).
func envBool(getenv func(string) string, s setting) (bool, error) {
	v := strings.TrimSpace(getenv(s.env))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("must be true or false, got %q", v)
	}
	return b, nil
}

// nameCheck is the client option that refuses orchestrators no live worker serves, unless
// allowUnknown.
func nameCheck(allowUnknown bool) []engine.ClientOption {
	if allowUnknown {
		return nil
	}
	return []engine.ClientOption{engine.WithKnownOrchestratorsOnly()}
}

func (c *apiConfig) err(s setting, format string, args ...any) *ConfigError {
	return &ConfigError{Setting: c.prefix + s.flag, Env: s.env, Msg: fmt.Sprintf(format, args...)}
}

// flags adds the API's flags to fs.
func (c *apiConfig) flags(fs *flag.FlagSet) {
	listenHelp := "`host:port` of the HTTP API (port -1 or 0: any free port)"
	if c.prefix != "" {
		listenHelp += `; "off" disables it`
	}
	fs.StringVar(&c.Listen, c.prefix+setAPIListen.flag, c.Listen, usageFor(setAPIListen, listenHelp))
	fs.StringVar(&c.Keys, c.prefix+setAPIKeys.flag, c.Keys, usageFor(setAPIKeys, "API `keys`, comma-separated (default: none, the API is open)"))
	fs.StringVar(&c.KeysFile, c.prefix+setAPIKeysFile.flag, c.KeysFile, usageFor(setAPIKeysFile, "`file` of API keys, one a line"))
	fs.Int64Var(&c.MaxBody, c.prefix+setAPIMaxBody.flag, c.MaxBody, usageFor(setAPIMaxBody, "largest request body in `bytes` (start input, event data)"))
	fs.BoolVar(&c.AllowUnknownNames, c.prefix+setAllowUnknown.flag, c.AllowUnknownNames,
		usageFor(setAllowUnknown, "accept starts of orchestrators no live worker serves (default: 400)"))
}

// enabled reports whether the API is to be served.
func (c apiConfig) enabled() bool { return c.Listen != "" && c.Listen != "off" }

// listenAddr is Listen with port -1 mapped to 0 (any free port).
func (c apiConfig) listenAddr() (string, error) {
	host, p, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("must be host:port, got %q", c.Listen)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", fmt.Errorf("has port %q; want 0..65535, or -1 for any free port", p)
	}
	if port == -1 {
		port = 0
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// keys returns the configured keys: --keys and the lines of --keys-file.
func (c apiConfig) keys() ([]string, error) {
	var keys []string
	for _, k := range strings.Split(c.Keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	if c.KeysFile != "" {
		f, err := os.Open(c.KeysFile)
		if err != nil {
			return nil, c.err(setAPIKeysFile, "names a file that cannot be read: %v", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, c.err(setAPIKeysFile, "cannot be read: %v", err)
		}
	}
	return keys, nil
}

// Validate reports settings that cannot be used.
func (c apiConfig) Validate() error {
	var errs []error
	if c.enabled() || c.prefix == "" {
		if _, err := c.listenAddr(); err != nil {
			errs = append(errs, c.err(setAPIListen, "%v", err))
		}
	}
	if c.MaxBody < 1 {
		errs = append(errs, c.err(setAPIMaxBody, "must be >= 1, got %d", c.MaxBody))
	}
	if _, err := c.keys(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// apiServer is a running HTTP API.
type apiServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error // Serve's result
}

// Addr is the address the API listens on.
func (a *apiServer) Addr() string { return a.ln.Addr().String() }

// URL is the API's base URL.
func (a *apiServer) URL() string { return "http://" + a.Addr() + httpapi.BasePath + "/" }

// startAPI listens on c's address and serves the API over client in a goroutine; it warns loudly
// when no key is configured. Stop it with Stop. It traces requests with tp (nil: none).
func startAPI(c apiConfig, client httpapi.Client, log zerolog.Logger, tp trace.TracerProvider) (*apiServer, error) {
	addr, err := c.listenAddr()
	if err != nil {
		return nil, c.err(setAPIListen, "%v", err)
	}
	keys, err := c.keys()
	if err != nil {
		return nil, err
	}
	h := httpapi.New(client, httpapi.Options{
		Keys:         keys,
		MaxBodyBytes: c.MaxBody,
		OnError: func(r *http.Request, err error) {
			log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("HTTP API request failed")
		},
		TracerProvider: tp,
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API: %w", err)
	}
	a := &apiServer{
		srv:  &http.Server{Handler: withWebUI(h), ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := a.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.done <- err
	}()
	log.Info().Str("url", a.URL()).Str("ui", a.UIURL()).Int("keys", len(keys)).Msg("serving the HTTP API and the web UI")
	if len(keys) == 0 {
		log.Warn().Str("url", a.URL()).Msg(fmt.Sprintf("WARNING: the HTTP API has NO KEYS: anyone who can reach it can start, "+
			"raise events on, terminate and purge instances. Set --%s%s, --%s%s or %s",
			c.prefix, setAPIKeys.flag, c.prefix, setAPIKeysFile.flag, setAPIKeys.env))
	}
	return a, nil
}

// withWebUI serves the web UI (package webui) under /ui/ beside the API, and redirects / to it.
// The UI's pages hold no data: they call the API, which checks the key.
func withWebUI(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	ui := webui.Handler()
	mux.Handle(webui.Path, ui)
	mux.Handle(webui.PathNoSlash, ui)
	mux.Handle("GET /{$}", http.RedirectHandler(webui.Path, http.StatusFound))
	mux.Handle("/", api)
	return mux
}

// UIURL is the web UI's URL.
func (a *apiServer) UIURL() string { return "http://" + a.Addr() + webui.Path }

// Stop shuts the server down (waiting up to httpShutdownGrace for requests in flight) and returns
// Serve's error.
func (a *apiServer) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		_ = a.srv.Close()
	}
	return <-a.done
}

// serveDevAPI starts the API for `dev` in d.wg, reporting a failure to d.failed and stopping when
// ctx ends.
func (d *devServer) serveDevAPI(ctx context.Context, c apiConfig, b *natsjs.Backend) error {
	if !c.enabled() {
		return nil
	}
	client := engine.NewClient(b, append(nameCheck(c.AllowUnknownNames), engine.WithClientTracerProvider(d.traces.Provider()))...)
	a, err := startAPI(c, client, d.log.With().Str("component", "httpapi").Logger(), d.traces.Provider())
	if err != nil {
		client.Close()
		return err
	}
	d.api = a
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer client.Close()
		var err error
		select {
		case <-ctx.Done():
			err = a.Stop()
		case err = <-a.done:
			if err == nil {
				return
			}
		}
		if err != nil {
			select {
			case d.failed <- fmt.Errorf("HTTP API: %w", err):
			default:
			}
		}
	}()
	return nil
}

// printAPIBanner tells the `dev` user where the API is.
func printAPIBanner(w io.Writer, d *devServer) {
	if d.api == nil {
		return
	}
	fmt.Fprintf(w, `The Durable Functions HTTP API is at %[1]s, e.g.

  curl -i -X POST %[1]sorchestrators/BudgetApproval -H 'Content-Type: application/json' -d '{"amountCents": 500000}'

The web UI is at %[2]s

`, d.api.URL(), d.api.UIURL())
}

func runAPI(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	ac, err := loadAPIConfig(env.Getenv, "")
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "api", "[flags]", apiAbout)
	cfg.clientFlags(fs)
	cfg.healthFlags(fs)
	ac.flags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := errors.Join(cfg.Validate(), ac.Validate()); err != nil {
		return err
	}
	log := newLogger(env.Stderr, cfg.logLevel())
	reg, m, err := newMetrics()
	if err != nil {
		return err
	}

	traces, err := startTraces(ctx, "api", log) // traces.go
	if err != nil {
		return err
	}
	defer traces.Stop()
	nc, js, err := connectService(cfg, "api", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	octx, cancel := context.WithTimeout(ctx, clientTimeout)
	b, err := natsjs.Open(octx, js, natsjs.WithReplicas(cfg.Replicas), natsjs.WithLogger(log.With().Str("component", "natsjs").Logger()),
		natsjs.WithMetrics(m))
	cancel()
	if err != nil {
		return err
	}
	health, err := serveHealth(cfg.HealthAddr, b.Ready, reg, log)
	if err != nil {
		return err
	}
	defer health.Stop()
	tp := traces.Provider()
	client := engine.NewClient(b, append(nameCheck(ac.AllowUnknownNames), engine.WithClientTracerProvider(tp))...)
	defer client.Close()
	a, err := startAPI(ac, client, log.With().Str("component", "httpapi").Logger(), tp)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		return a.Stop()
	case err := <-a.done:
		return fmt.Errorf("HTTP API: %w", err)
	}
}
