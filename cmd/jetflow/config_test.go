package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

func getenvFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// parseWorkerConfig does what the worker command does with its configuration.
func parseWorkerConfig(t *testing.T, env map[string]string, args ...string) Config {
	t.Helper()
	cfg, err := loadConfig(getenvFrom(env))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.connFlags(fs)
	cfg.workerFlags(fs, true)
	cfg.logFlags(fs)
	if _, err := parseArgs(fs, args); err != nil {
		t.Fatalf("parseArgs: %v", err)
	}
	return cfg
}

func TestConfigPrecedence(t *testing.T) {
	def := DefaultConfig()
	tests := []struct {
		name         string
		env          map[string]string
		args         []string
		wantURL      string
		wantReplicas int
		wantLevel    string
	}{
		{"defaults", nil, nil, def.NATSURL, def.Replicas, def.LogLevel},
		{"env over default",
			map[string]string{"NATS_URL": "nats://env:4222", "JETFLOW_REPLICAS": "3", "JETFLOW_LOG_LEVEL": "debug"},
			nil, "nats://env:4222", 3, "debug"},
		{"flag over env",
			map[string]string{"NATS_URL": "nats://env:4222", "JETFLOW_REPLICAS": "3", "JETFLOW_LOG_LEVEL": "debug"},
			[]string{"--nats", "nats://flag:4222", "--replicas", "5", "--log-level", "warn"},
			"nats://flag:4222", 5, "warn"},
		{"flag over default, env for the rest",
			map[string]string{"JETFLOW_REPLICAS": "3"},
			[]string{"--nats=nats://flag:4222"},
			"nats://flag:4222", 3, def.LogLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parseWorkerConfig(t, tt.env, tt.args...)
			if cfg.NATSURL != tt.wantURL {
				t.Errorf("NATSURL = %q, want %q", cfg.NATSURL, tt.wantURL)
			}
			if cfg.Replicas != tt.wantReplicas {
				t.Errorf("Replicas = %d, want %d", cfg.Replicas, tt.wantReplicas)
			}
			if cfg.LogLevel != tt.wantLevel {
				t.Errorf("LogLevel = %q, want %q", cfg.LogLevel, tt.wantLevel)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestLoadConfigBadEnv(t *testing.T) {
	_, err := loadConfig(getenvFrom(map[string]string{"JETFLOW_CACHE_SIZE": "lots"}))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	if ce.Env != "JETFLOW_CACHE_SIZE" || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("err = %v, want one naming JETFLOW_CACHE_SIZE and the value", err)
	}
	if got := exitCode(err); got != exitUsage {
		t.Errorf("exit code = %d, want %d", got, exitUsage)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // part of the error
	}{
		{"empty NATS URL", func(c *Config) { c.NATSURL = "" }, "--nats (env NATS_URL) must not be empty"},
		{"bad NATS scheme", func(c *Config) { c.NATSURL = "http://x:4222" }, `--nats (env NATS_URL) has URL "http://x:4222" with scheme "http"`},
		{"missing creds", func(c *Config) { c.Creds = "/does/not/exist.creds" }, "--nats-creds (env NATS_CREDS) names a file that cannot be read"},
		{"tls key without cert", func(c *Config) { c.TLSKey = "config_test.go" }, "--tls-cert (env NATS_TLS_CERT) must be set together with --tls-key"},
		{"password without user", func(c *Config) { c.Password = "x" }, "--nats-password (env NATS_PASSWORD) needs --nats-user"},
		{"user and creds", func(c *Config) { c.User, c.Creds = "api", "config_test.go" }, "--nats-user (env NATS_USER) cannot be combined with --nats-creds or --nats-nkey"},
		{"missing nkey", func(c *Config) { c.NKey = "/does/not/exist.nk" }, "--nats-nkey (env NATS_NKEY) names a file that cannot be read"},
		{"inbox prefix", func(c *Config) { c.InboxPrefix = "_INBOX.>" }, `--nats-inbox-prefix (env NATS_INBOX_PREFIX) must be a subject without wildcards, got "_INBOX.>"`},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, `--log-level (env JETFLOW_LOG_LEVEL) must be trace, debug, info, warn or error, got "loud"`},
		// The worker settings are checked by the options they make (natsjs, engine).
		{"replicas", func(c *Config) { c.Replicas = 7 }, "--replicas (env JETFLOW_REPLICAS): invalid option: replicas must be 1..5, got 7"},
		{"partitions", func(c *Config) { c.Partitions = 0 }, "--partitions (env JETFLOW_PARTITIONS): invalid option: partitions must be 1..1024, got 0"},
		{"cache size", func(c *Config) { c.CacheSize = -1 }, "--cache-size (env JETFLOW_CACHE_SIZE): invalid option: cache size must be >= 0, got -1"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "--concurrency (env JETFLOW_CONCURRENCY): invalid option: concurrency must be >= 1, got 0"},
		{"activity concurrency", func(c *Config) { c.ActivityConcurrency = 0 }, "--activity-concurrency (env JETFLOW_ACTIVITY_CONCURRENCY): invalid option: activity concurrency must be >= 1, got 0"},
		{"health addr", func(c *Config) { c.HealthAddr = "8081" }, "--health-addr (env JETFLOW_HEALTH_ADDR) must be host:port"},
		{"data", func(c *Config) { c.Data = " " }, "--data (env JETFLOW_DATA) must not be empty"},
		{"listen", func(c *Config) { c.NATSListen = "localhost" }, `--nats-listen (env JETFLOW_NATS_LISTEN) must be host:port, got "localhost"`},
		{"listen port", func(c *Config) { c.NATSListen = "127.0.0.1:99999" }, `--nats-listen (env JETFLOW_NATS_LISTEN) has port "99999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("defaults are valid", func(t *testing.T) {
		if err := DefaultConfig().Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("any free port", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.NATSListen = "127.0.0.1:-1"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reports every bad field", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Replicas, cfg.Concurrency = 0, 0
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "--replicas") || !strings.Contains(err.Error(), "--concurrency") {
			t.Errorf("Validate() = %v, want both --replicas and --concurrency", err)
		}
	})
	t.Run("option errors", func(t *testing.T) {
		for _, tt := range []struct {
			change  func(*Config)
			setting string
			option  error
		}{
			{func(c *Config) { c.Partitions = natsjs.MaxPartitions + 1 }, "partitions", natsjs.ErrInvalidOption},
			{func(c *Config) { c.CacheSize = -1 }, "cache-size", engine.ErrInvalidOption},
		} {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Setting != tt.setting {
				t.Errorf("Validate() = %v, want a *ConfigError for --%s", err, tt.setting)
			}
			if !errors.Is(err, tt.option) {
				t.Errorf("Validate() = %v, want it to wrap %v", err, tt.option)
			}
			if got := exitCode(err); got != exitUsage {
				t.Errorf("exit code = %d, want %d", got, exitUsage)
			}
		}
	})
	t.Run("a setting of two options is reported once", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.ActivityConcurrency = 0
		err := cfg.Validate()
		if n := strings.Count(fmt.Sprint(err), "--activity-concurrency"); n != 1 {
			t.Errorf("Validate() = %v, want --activity-concurrency once, not %d times", err, n)
		}
	})
	t.Run("env out of range", func(t *testing.T) {
		cfg, err := loadConfig(getenvFrom(map[string]string{"JETFLOW_PARTITIONS": "0"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--partitions (env JETFLOW_PARTITIONS)") {
			t.Errorf("Validate() = %v, want one naming --partitions and JETFLOW_PARTITIONS", err)
		}
	})
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos string
		wantID  string
	}{
		{[]string{"Foo", "--id", "x"}, "Foo", "x"},
		{[]string{"--id", "x", "Foo"}, "Foo", "x"},
		{[]string{"a", "--id=x", "b", "c"}, "a b c", "x"},
		{[]string{"a", "-5", "--id", "x"}, "a -5", "x"},
		{[]string{"a", "--", "--id", "x"}, "a --id x", ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		id := fs.String("id", "", "")
		pos, err := parseArgs(fs, tt.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if got := strings.Join(pos, " "); got != tt.wantPos || *id != tt.wantID {
			t.Errorf("parseArgs(%q) = %q, --id %q; want %q, --id %q", tt.args, got, *id, tt.wantPos, tt.wantID)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"--nope"}); exitCode(err) != exitUsage {
		t.Errorf("unknown flag: exit code %d (%v), want %d", exitCode(err), err, exitUsage)
	}
}

func TestParseJSON(t *testing.T) {
	if _, err := parseJSON("event data", `{"a": 1}`); err != nil {
		t.Errorf("valid JSON: %v", err)
	}
	_, err := parseJSON("event data", "yes")
	if exitCode(err) != exitUsage {
		t.Errorf("exit code %d, want %d", exitCode(err), exitUsage)
	}
	if want := `a string must be quoted: '"yes"'`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want the hint %q", err, want)
	}
}

func TestNATSToolFlagNames(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"cert.pem", "key.pem", "ca.pem", "user.creds"} {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = path
	}
	for _, args := range [][]string{
		{"--server", "nats://a:4222", "--tlscert", files["cert.pem"], "--tlskey", files["key.pem"], "--tlsca", files["ca.pem"], "--creds", files["user.creds"]},
		{"-s", "nats://a:4222", "--tls-cert", files["cert.pem"], "--tls-key", files["key.pem"], "--tls-ca", files["ca.pem"], "--creds", files["user.creds"]},
	} {
		cfg := parseWorkerConfig(t, nil, args...)
		if cfg.NATSURL != "nats://a:4222" || cfg.TLSCert != files["cert.pem"] || cfg.TLSKey != files["key.pem"] ||
			cfg.TLSCA != files["ca.pem"] || cfg.Creds != files["user.creds"] {
			t.Errorf("%q: %+v", args, cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: Validate: %v", args, err)
		}
	}
	cfg := parseWorkerConfig(t, map[string]string{"NATS_CERT": files["cert.pem"], "NATS_KEY": files["key.pem"], "NATS_CA": files["ca.pem"], "NATS_CREDS": files["user.creds"]})
	if cfg.TLSCert != files["cert.pem"] || cfg.TLSKey != files["key.pem"] || cfg.TLSCA != files["ca.pem"] || cfg.Creds != files["user.creds"] {
		t.Errorf("from the nats tool's environment variables: %+v", cfg)
	}
}

// Credentials and TLS files come from the NATS_* variables; NATS_TLS_* win over the older
// NATS_CA, NATS_CERT, NATS_KEY; a user gets its own inbox prefix, _INBOX_<user>.
func TestConnectionSettings(t *testing.T) {
	env := map[string]string{
		"NATS_USER": "api", "NATS_PASSWORD": "secret", "NATS_TLS_CA": "new-ca.pem", "NATS_CA": "old-ca.pem",
		"NATS_CERT": "old-cert.pem", "NATS_KEY": "old-key.pem",
	}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "api" || c.Password != "secret" || c.TLSCA != "new-ca.pem" || c.TLSCert != "old-cert.pem" || c.TLSKey != "old-key.pem" {
		t.Errorf("config = %+v", c)
	}
	if got := c.inboxPrefix(); got != "_INBOX_api" {
		t.Errorf("inbox prefix = %q, want _INBOX_api", got)
	}
	c.InboxPrefix = "_INBOX_custom"
	if got := c.inboxPrefix(); got != "_INBOX_custom" {
		t.Errorf("inbox prefix = %q, want _INBOX_custom", got)
	}
	if got := DefaultConfig().inboxPrefix(); got != "" {
		t.Errorf("inbox prefix without a user = %q, want nats.go's default", got)
	}
}
