package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// Config is everything the subcommands can be configured with. Each value comes from its flag if
// given, else from its environment variable if set, else from DefaultConfig. A subcommand
// registers only the flags it uses.
type Config struct {
	// NATS connection (client commands and worker).
	NATSURL  string
	User     string
	Password string
	Creds    string
	NKey     string // an nkey seed file
	// InboxPrefix is the prefix of reply subjects; "" means _INBOX_<User> with a user, else
	// _INBOX (nats.conf lets each user subscribe to its own prefix only).
	InboxPrefix string
	TLSCert     string
	TLSKey      string
	TLSCA       string

	LogLevel string

	// Worker (worker and dev).
	Replicas            int
	Partitions          int
	CacheSize           int
	Concurrency         int
	ActivityConcurrency int
	HealthAddr          string
	// Retention is how long ended instances are kept before the workers purge them; 0 keeps them.
	Retention time.Duration
	// DrainGrace is how long running activities may go on when the worker is asked to stop.
	DrainGrace time.Duration

	// Embedded server (dev).
	Data       string
	NATSListen string
}

// DefaultConfig returns the configuration used when neither flags nor environment say otherwise.
// The worker's values are the defaults of the natsjs and engine options they set, and the NATS
// server is the one nats.conf configures and `jetflow dev` embeds, on this machine.
func DefaultConfig() Config {
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(natsserver.Port))
	return Config{
		NATSURL:             "nats://" + local,
		LogLevel:            "info",
		Replicas:            natsjs.DefaultReplicas,
		Partitions:          natsjs.DefaultPartitions,
		CacheSize:           engine.DefaultCacheSize,
		Concurrency:         engine.DefaultConcurrency,
		ActivityConcurrency: engine.DefaultActivityConcurrency,
		DrainGrace:          engine.DefaultDrainGrace,
		Data:                "./.jetflow",
		NATSListen:          local,
	}
}

// setting names one configuration value: its flag and its environment variable (and an older
// name of the variable, read when the variable is unset).
type setting struct {
	flag string
	env  string
	old  string
}

// The settings. Flags and variables are documented in README.md; keep the two in step.
var (
	setNATS        = setting{"nats", "NATS_URL", ""}
	setUser        = setting{"nats-user", "NATS_USER", ""}
	setPassword    = setting{"nats-password", "NATS_PASSWORD", ""}
	setCreds       = setting{"nats-creds", "NATS_CREDS", ""}
	setNKey        = setting{"nats-nkey", "NATS_NKEY", ""}
	setInbox       = setting{"nats-inbox-prefix", "NATS_INBOX_PREFIX", ""}
	setTLSCert     = setting{"tls-cert", "NATS_TLS_CERT", "NATS_CERT"}
	setTLSKey      = setting{"tls-key", "NATS_TLS_KEY", "NATS_KEY"}
	setTLSCA       = setting{"tls-ca", "NATS_TLS_CA", "NATS_CA"}
	setLogLevel    = setting{"log-level", "JETFLOW_LOG_LEVEL", ""}
	setReplicas    = setting{"replicas", "JETFLOW_REPLICAS", ""}
	setPartitions  = setting{"partitions", "JETFLOW_PARTITIONS", ""}
	setCacheSize   = setting{"cache-size", "JETFLOW_CACHE_SIZE", ""}
	setConcurrency = setting{"concurrency", "JETFLOW_CONCURRENCY", ""}
	setActConc     = setting{"activity-concurrency", "JETFLOW_ACTIVITY_CONCURRENCY", ""}
	setHealthAddr  = setting{"health-addr", "JETFLOW_HEALTH_ADDR", ""}
	setRetention   = setting{"retention", "JETFLOW_RETENTION", ""}
	setDrainGrace  = setting{"drain-grace", "JETFLOW_DRAIN_GRACE", ""}
	setData        = setting{"data", "JETFLOW_DATA", ""}
	setNATSListen  = setting{"nats-listen", "JETFLOW_NATS_LISTEN", ""}
)

// ConfigError is a configuration value that cannot be used.
type ConfigError struct {
	Setting string // the flag name, e.g. "replicas"
	Env     string // its environment variable, e.g. "JETFLOW_REPLICAS"
	Msg     string
	// Err is the error of the option the value was given to (wrapping natsjs.ErrInvalidOption or
	// engine.ErrInvalidOption), if the package it configures refused it; Msg is then empty.
	Err error
}

func (e *ConfigError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("invalid config: --%s (env %s): %v", e.Setting, e.Env, e.Err)
	}
	return fmt.Sprintf("invalid config: --%s (env %s) %s", e.Setting, e.Env, e.Msg)
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(s setting, format string, args ...any) *ConfigError {
	return &ConfigError{Setting: s.flag, Env: s.env, Msg: fmt.Sprintf(format, args...)}
}

// loadConfig returns DefaultConfig overridden by the environment read through getenv.
func loadConfig(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var errs []error
	str := func(s setting, dst *string) {
		if v := getenv(s.env); v != "" {
			*dst = v
		} else if v := getenv(s.old); s.old != "" && v != "" {
			*dst = v
		}
	}
	num := func(s setting, dst *int) {
		v := getenv(s.env)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, configErr(s, "must be an integer, got %q", v))
			return
		}
		*dst = n
	}
	str(setNATS, &c.NATSURL)
	str(setUser, &c.User)
	str(setPassword, &c.Password)
	str(setCreds, &c.Creds)
	str(setNKey, &c.NKey)
	str(setInbox, &c.InboxPrefix)
	str(setTLSCert, &c.TLSCert)
	str(setTLSKey, &c.TLSKey)
	str(setTLSCA, &c.TLSCA)
	str(setLogLevel, &c.LogLevel)
	num(setReplicas, &c.Replicas)
	num(setPartitions, &c.Partitions)
	num(setCacheSize, &c.CacheSize)
	num(setConcurrency, &c.Concurrency)
	num(setActConc, &c.ActivityConcurrency)
	str(setHealthAddr, &c.HealthAddr)
	dur := func(s setting, dst *time.Duration) {
		if v := getenv(s.env); v != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, configErr(s, "must be a duration such as 30s or 720h, got %q", v))
			}
			*dst = d
		}
	}
	dur(setRetention, &c.Retention)
	dur(setDrainGrace, &c.DrainGrace)
	str(setData, &c.Data)
	str(setNATSListen, &c.NATSListen)
	return c, errors.Join(errs...)
}

// configured is an option made from the value of a setting.
type configured[O any] struct {
	setting setting
	opt     O
}

// backendOptions are the natsjs options the worker settings make. natsjs checks their values:
// Validate reports its errors.
func (c Config) backendOptions() []configured[natsjs.Option] {
	return []configured[natsjs.Option]{
		{setReplicas, natsjs.WithReplicas(c.Replicas)},
		{setPartitions, natsjs.WithPartitions(c.Partitions)},
		{setActConc, natsjs.WithActivityConcurrency(c.ActivityConcurrency)},
		{setRetention, natsjs.WithRetention(c.Retention)},
	}
}

// workerOptions are the engine options the worker settings make. The engine checks their values:
// Validate reports its errors. --activity-concurrency sets the engine's and natsjs's alike.
func (c Config) workerOptions() []configured[engine.WorkerOption] {
	return []configured[engine.WorkerOption]{
		{setCacheSize, engine.WithCacheSize(c.CacheSize)},
		{setConcurrency, engine.WithConcurrency(c.Concurrency)},
		{setActConc, engine.WithActivityConcurrency(c.ActivityConcurrency)},
		{setDrainGrace, engine.WithDrainGrace(c.DrainGrace)},
	}
}

// options returns the options of cs.
func options[O any](cs []configured[O]) []O {
	opts := make([]O, len(cs))
	for i, c := range cs {
		opts[i] = c.opt
	}
	return opts
}

// The flag groups. Each binds flags to c's fields with c's current values as defaults, so call
// them after loadConfig: a flag given on the command line then overrides the environment.

func usageFor(s setting, text string) string { return fmt.Sprintf("%s (env %s)", text, s.env) }

// connFlags adds the NATS connection flags.
func (c *Config) connFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.NATSURL, setNATS.flag, c.NATSURL, usageFor(setNATS, "NATS server `URL`(s), comma-separated"))
	fs.StringVar(&c.User, setUser.flag, c.User, usageFor(setUser, "NATS `user` (nats.conf: worker, api, raiser, publisher)"))
	fs.StringVar(&c.Password, setPassword.flag, c.Password, usageFor(setPassword, "NATS `password` of --nats-user (prefer the variable: flags show in ps)"))
	fs.StringVar(&c.Creds, setCreds.flag, c.Creds, usageFor(setCreds, "NATS user credentials `file` (JWT and nkey seed)"))
	fs.StringVar(&c.NKey, setNKey.flag, c.NKey, usageFor(setNKey, "NATS nkey seed `file`"))
	fs.StringVar(&c.InboxPrefix, setInbox.flag, c.InboxPrefix, usageFor(setInbox, "`prefix` of reply subjects (default _INBOX_<user> with --nats-user, else _INBOX)"))
	fs.StringVar(&c.TLSCert, setTLSCert.flag, c.TLSCert, usageFor(setTLSCert, "TLS client certificate `file`"))
	fs.StringVar(&c.TLSKey, setTLSKey.flag, c.TLSKey, usageFor(setTLSKey, "TLS client key `file`"))
	fs.StringVar(&c.TLSCA, setTLSCA.flag, c.TLSCA, usageFor(setTLSCA, "TLS certificate authority `file`"))
	// The nats tool's names for the same settings.
	for _, alias := range []struct {
		name, of string
		dst      *string
	}{
		{"server", setNATS.flag, &c.NATSURL},
		{"s", setNATS.flag, &c.NATSURL},
		{"creds", setCreds.flag, &c.Creds},
		{"user", setUser.flag, &c.User},
		{"password", setPassword.flag, &c.Password},
		{"nkey", setNKey.flag, &c.NKey},
		{"inbox-prefix", setInbox.flag, &c.InboxPrefix},
		{"tlscert", setTLSCert.flag, &c.TLSCert},
		{"tlskey", setTLSKey.flag, &c.TLSKey},
		{"tlsca", setTLSCA.flag, &c.TLSCA},
	} {
		fs.StringVar(alias.dst, alias.name, *alias.dst, "same as --"+alias.of+" (the nats tool's name)")
	}
}

// logFlags adds --log-level.
func (c *Config) logFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, setLogLevel.flag, c.LogLevel, usageFor(setLogLevel, "log `level`: trace, debug, info, warn, error"))
}

// workerFlags adds the worker's tuning flags; withReplicas adds --replicas.
func (c *Config) workerFlags(fs *flag.FlagSet, withReplicas bool) {
	if withReplicas {
		fs.IntVar(&c.Replicas, setReplicas.flag, c.Replicas, usageFor(setReplicas, fmt.Sprintf("replicas of jetflow's streams and buckets, 1..%d (3 in a cluster)", natsjs.MaxReplicas)))
	}
	fs.IntVar(&c.Partitions, setPartitions.flag, c.Partitions, usageFor(setPartitions, fmt.Sprintf("partitions the instances are spread over, 1..%d (fixed when the streams are created; at most one worker reads each)", natsjs.MaxPartitions)))
	fs.IntVar(&c.CacheSize, setCacheSize.flag, c.CacheSize, usageFor(setCacheSize, "running instances kept in memory between turns; 0 replays every turn"))
	fs.IntVar(&c.Concurrency, setConcurrency.flag, c.Concurrency, usageFor(setConcurrency, "instances running a turn at once"))
	fs.IntVar(&c.ActivityConcurrency, setActConc.flag, c.ActivityConcurrency, usageFor(setActConc, "activities running at once"))
	fs.DurationVar(&c.DrainGrace, setDrainGrace.flag, c.DrainGrace, usageFor(setDrainGrace, "on SIGTERM, how `long` running activities may go on before they are handed back"))
	fs.DurationVar(&c.Retention, setRetention.flag, c.Retention, usageFor(setRetention, "purge ended instances this `long` after they ended, e.g. 720h (default 0: keep them)"))
}

// healthFlags adds --health-addr.
func (c *Config) healthFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HealthAddr, setHealthAddr.flag, c.HealthAddr, usageFor(setHealthAddr, "serve /livez, /readyz and /metrics (Prometheus) on this `address`, e.g. :8081 (default off)"))
}

// devFlags adds the embedded server's flags.
func (c *Config) devFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, setData.flag, c.Data, usageFor(setData, "`directory` of the embedded server's JetStream data"))
	fs.StringVar(&c.NATSListen, setNATSListen.flag, c.NATSListen, usageFor(setNATSListen, "`host:port` the embedded NATS server listens on (port -1: any free port)"))
}

// Validate reports every value that cannot be used, each error naming its flag and variable.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	bad := func(s setting, format string, args ...any) { add(configErr(s, format, args...)) }
	c.validateConnection(bad)
	c.validateWorker(bad, add)
	c.validateDev(bad)
	return errors.Join(errs...)
}

// reportFunc records that setting s has a value that cannot be used.
type reportFunc func(s setting, format string, args ...any)

// validateConnection checks the NATS URLs, the credentials and the TLS files.
func (c Config) validateConnection(bad reportFunc) {
	if strings.TrimSpace(c.NATSURL) == "" {
		bad(setNATS, "must not be empty")
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		validateNATSURL(bad, strings.TrimSpace(u))
	}
	fileSetting := func(s setting, path string) {
		if path == "" {
			return
		}
		if _, err := os.Stat(path); err != nil {
			bad(s, "names a file that cannot be read: %v", err)
		}
	}
	fileSetting(setCreds, c.Creds)
	fileSetting(setNKey, c.NKey)
	c.validateAuth(bad)
	fileSetting(setTLSCert, c.TLSCert)
	fileSetting(setTLSKey, c.TLSKey)
	fileSetting(setTLSCA, c.TLSCA)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		if c.TLSCert == "" {
			bad(setTLSCert, "must be set together with --%s", setTLSKey.flag)
		} else {
			bad(setTLSKey, "must be set together with --%s", setTLSCert.flag)
		}
	}
}

// validateAuth checks that at most one way of authenticating is given, a password only with a
// user, and an inbox prefix that is a subject without wildcards.
func (c Config) validateAuth(bad reportFunc) {
	n := 0
	for _, set := range []bool{c.User != "", c.Creds != "", c.NKey != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		bad(setUser, "cannot be combined with --%s or --%s: give one way to authenticate", setCreds.flag, setNKey.flag)
	case c.Password != "" && c.User == "":
		bad(setPassword, "needs --%s", setUser.flag)
	}
	if p := c.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t") || strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".")) {
		bad(setInbox, "must be a subject without wildcards, got %q", p)
	}
}

// inboxPrefix is the prefix of reply subjects: InboxPrefix, else _INBOX_<User> with a user (the
// prefix nats.conf gives each user), else nats.go's default.
func (c Config) inboxPrefix() string {
	switch {
	case c.InboxPrefix != "":
		return c.InboxPrefix
	case c.User != "":
		return "_INBOX_" + c.User
	}
	return ""
}

// validateNATSURL checks one of the comma-separated NATS URLs ("" is skipped).
func validateNATSURL(bad reportFunc, u string) {
	if u == "" {
		return
	}
	if !strings.Contains(u, "://") {
		u = "nats://" + u // nats.Connect accepts host:port
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		bad(setNATS, "has a URL that cannot be parsed: %q", u)
		return
	}
	switch p.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		bad(setNATS, "has URL %q with scheme %q; want nats, tls, ws or wss", u, p.Scheme)
	}
}

// validateWorker checks the log level, the worker's tuning and the health address; add records
// an option's own error.
func (c Config) validateWorker(bad reportFunc, add func(error)) {
	if _, err := zerolog.ParseLevel(strings.ToLower(c.LogLevel)); err != nil || c.LogLevel == "" {
		bad(setLogLevel, "must be trace, debug, info, warn or error, got %q", c.LogLevel)
	}
	// The worker settings' ranges are those of the options they make; a setting given to two
	// options is reported once.
	refusedSettings := map[setting]bool{}
	refused := func(s setting, err error) {
		if err != nil && !refusedSettings[s] {
			refusedSettings[s] = true
			add(&ConfigError{Setting: s.flag, Env: s.env, Err: err})
		}
	}
	for _, o := range c.backendOptions() {
		refused(o.setting, natsjs.CheckOptions(o.opt))
	}
	for _, o := range c.workerOptions() {
		refused(o.setting, engine.CheckWorkerOptions(o.opt))
	}
	if c.HealthAddr != "" {
		if _, _, err := net.SplitHostPort(c.HealthAddr); err != nil {
			bad(setHealthAddr, "must be host:port or :port, got %q", c.HealthAddr)
		}
	}
}

// validateDev checks the embedded server's settings.
func (c Config) validateDev(bad reportFunc) {
	if strings.TrimSpace(c.Data) == "" {
		bad(setData, "must not be empty")
	}
	if _, _, err := c.listenHostPort(); err != nil {
		bad(setNATSListen, "%v", err)
	}
}

// listenHostPort splits NATSListen; port -1 asks for any free port.
func (c Config) listenHostPort() (string, int, error) {
	host, p, err := net.SplitHostPort(c.NATSListen)
	if err != nil {
		return "", 0, fmt.Errorf("must be host:port, got %q", c.NATSListen)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("has port %q; want 0..65535, or -1 for any free port", p)
	}
	return host, port, nil
}

// logLevel is the parsed LogLevel; call it on a validated Config.
func (c Config) logLevel() zerolog.Level {
	l, err := zerolog.ParseLevel(strings.ToLower(c.LogLevel))
	if err != nil {
		return zerolog.InfoLevel
	}
	return l
}

// clientTimeout bounds client commands that do not have their own timeout.
const clientTimeout = 30 * time.Second
