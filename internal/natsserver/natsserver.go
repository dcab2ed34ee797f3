// Package natsserver defines jetflow's embedded NATS server once: the settings of the server
// `jetflow dev` runs, of the servers natstest starts for tests and of the one jetflow bench
// starts. The nats-server that nats.conf and deploy/nats.conf configure must agree with them
// where jetflow depends on it: conf-check holds configuration files to that (CheckConf), and
// this package's tests hold the repository's two files to it.
package natsserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	// MaxPayload is the largest message a client may publish, in bytes: max_payload in
	// nats.conf ("8MB", powers of 1024 there). It leaves room above jetflow's largest history
	// entry (backend.MaxTurnBytes plus one backend.DefaultMaxPayload message) and for raising
	// the payload limit.
	MaxPayload = 8 << 20

	// Port is the client port of jetflow's servers: nats.conf's listen port, where `jetflow dev`
	// listens unless told otherwise, and the port of the default NATS URL of jetflow's commands.
	Port = server.DEFAULT_PORT

	// ReadyTimeout bounds how long a started server may take to accept connections: generous,
	// because make test runs packages side by side with -race on 2 cores, and a clustered
	// server once took over 10 s there.
	ReadyTimeout = 30 * time.Second
)

// Options returns the options of an embedded server named name, listening for clients on
// host:port (port -1: any free port), with JetStream storing its data under storeDir, a
// MaxPayload of max_payload, and signals left to the process. Logging is off (NoLog): a caller
// that wants the server's log sets NoLog to false or installs a logger (SetLoggerV2). Callers
// may change the options before starting the server (a cluster block, for example), but not
// those CheckConf compares.
func Options(name, host string, port int, storeDir string) *server.Options {
	return &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		MaxPayload: MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
}

// ConfDefaults are the values of the environment variables nats.conf and deploy/nats.conf read,
// used where they are unset by conf-check and by the tests that parse those files. nats-server
// itself has no defaults for variables; nats.conf's header lists these.
var ConfDefaults = map[string]string{
	"NATS_SERVER_NAME":      "jetflow-1",
	"NATS_STORE_DIR":        "/tmp/jetflow-nats",
	"NATS_MAX_MEMORY_STORE": "256MB",
	"NATS_MAX_FILE_STORE":   "10GB",
	"NATS_CLUSTER_NAME":     "jetflow",
	// The users' password hashes have no default: a real server must be given each one. These
	// placeholders (not the hash of any password) only let conf-check and the tests parse the
	// files.
	"NATS_WORKER_PASSWORD_HASH":    PasswordPlaceholder,
	"NATS_API_PASSWORD_HASH":       PasswordPlaceholder,
	"NATS_RAISER_PASSWORD_HASH":    PasswordPlaceholder,
	"NATS_PUBLISHER_PASSWORD_HASH": PasswordPlaceholder,
}

// PasswordPlaceholder stands for an unset password hash variable in conf-check and the tests:
// shaped like a bcrypt hash, it matches no password.
const PasswordPlaceholder = "$2a$11$conf.check.placeholder.matches.no.password.at.all"

// CheckConf reports the settings of a parsed NATS server configuration (nats.conf) that
// disagree with the embedded server's (Options) where jetflow depends on them: JetStream must be
// enabled and max_payload must be MaxPayload, so that whatever one of jetflow's servers accepts
// the others accept too.
func CheckConf(o *server.Options) error {
	var errs []error
	if !o.JetStream {
		errs = append(errs, errors.New("jetstream is not enabled; jetflow keeps everything in JetStream"))
	}
	switch {
	case o.MaxPayload == 0:
		errs = append(errs, fmt.Errorf("max_payload is not set (the server's default is %d bytes); jetflow's servers allow %d (8MB)", server.MAX_PAYLOAD_SIZE, MaxPayload))
	case o.MaxPayload != MaxPayload:
		errs = append(errs, fmt.Errorf("max_payload is %d bytes; jetflow's servers allow %d (8MB)", o.MaxPayload, MaxPayload))
	}
	return errors.Join(errs...)
}
