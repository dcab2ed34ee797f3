package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// natsOptions are the connection options from c; name identifies the connection on the server
// (`nats server report connections`).
func (c Config) natsOptions(name string, log zerolog.Logger) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS error")
		}),
	}
	return append(opts, c.authOptions()...)
}

// authOptions are the options that authenticate the connection and set its TLS files and its
// inbox prefix; call them on a validated Config.
func (c Config) authOptions() []nats.Option {
	var opts []nats.Option
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			opt = func(*nats.Options) error { return fmt.Errorf("--%s: %w", setNKey.flag, err) }
		}
		opts = append(opts, opt)
	}
	if p := c.inboxPrefix(); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	return opts
}

// connect opens a connection to c.NATSURL.
func connect(c Config, name string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(c.NATSURL, append(c.natsOptions(name, log), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", c.NATSURL, err)
	}
	return nc, nil
}

// clientConn is an open connection with a client over it.
type clientConn struct {
	nc      *nats.Conn
	backend *natsjs.Backend
	client  *engine.Client
}

func (cc *clientConn) Close() {
	cc.client.Close()
	cc.nc.Close()
}

// openClient connects and returns a client for the commands that manage instances. It binds to
// jetflow's existing streams (natsjs.Open), so it never changes their configuration.
func openClient(ctx context.Context, c Config, log zerolog.Logger, opts ...engine.ClientOption) (*clientConn, error) {
	host, _ := os.Hostname()
	nc, err := connect(c, "jetflow cli "+host, log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	b, err := natsjs.Open(ctx, js, natsjs.WithReplicas(c.Replicas), natsjs.WithLogger(log))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &clientConn{nc: nc, backend: b, client: engine.NewClient(b, opts...)}, nil
}

// connectService connects a long-running service (worker, api, raiser) that reconnects for ever,
// and returns the connection and its JetStream context.
func connectService(c Config, service string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	host, _ := os.Hostname()
	nc, err := connect(c, "jetflow "+service+" "+host, log, nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("connected to NATS")
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream: %w", err)
	}
	return nc, js, nil
}
