package main

import (
	"context"
	"errors"
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
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
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
	nc     *nats.Conn
	client *engine.Client
}

func (cc *clientConn) Close() { cc.nc.Close() }

// openClient connects and returns a client for the commands that manage instances.
//
// natsjs.New creates or updates jetflow's streams and buckets with the replica count it is given,
// so a client passing the default (1) would scale down a 3-replica deployment. openClient passes
// the replica count of the existing instance stream instead, and c.Replicas only when there is
// none yet.
func openClient(ctx context.Context, c Config, log zerolog.Logger) (*clientConn, error) {
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
	replicas, err := existingReplicas(ctx, js, c.Replicas)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b, err := natsjs.New(ctx, js, natsjs.WithReplicas(replicas), natsjs.WithLogger(log))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening jetflow's streams: %w", err)
	}
	return &clientConn{nc: nc, client: engine.NewClient(b)}, nil
}

// existingReplicas returns the replica count of jetflow's instance stream, or def if it does not
// exist yet.
func existingReplicas(ctx context.Context, js jetstream.JetStream, def int) (int, error) {
	names, err := natsjs.NewNames(natsjs.DefaultPrefix)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, names.InstanceStream())
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return def, nil
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return 0, fmt.Errorf("the NATS server has no JetStream for this account: %w", err)
	case err != nil:
		return 0, fmt.Errorf("looking up stream %s: %w", names.InstanceStream(), err)
	}
	if r := s.CachedInfo().Config.Replicas; r > 0 {
		return r, nil
	}
	return def, nil
}
