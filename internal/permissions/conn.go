package permissions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// refusalWait bounds how long a check waits for the server to refuse an operation.
const refusalWait = 10 * time.Second

// conn is a connection of one role, with the asynchronous errors the server sent it.
type conn struct {
	role string
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

// InboxPrefix is the prefix of the reply subjects of role's connections, the only subjects
// nats.conf lets it subscribe to: _INBOX_<role>.
func InboxPrefix(role string) string { return "_INBOX_" + role }

// options are the connection options of role: its user, password and inbox prefix, the
// authority and the client certificate of f, and an error handler that records errors on errs.
func (f *Fixture) options(role string, errs chan error) []nats.Option {
	return []nats.Option{
		nats.Name("jetflow permissions " + role),
		nats.UserInfo(role, f.Passwords[role]),
		nats.CustomInboxPrefix(InboxPrefix(role)),
		nats.RootCAs(f.Certs.CA),
		nats.ClientCert(f.Certs.ClientCert, f.Certs.ClientKey),
		nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default: // a check drains errs before it starts; older errors may be dropped
			}
		}),
	}
}

// connect connects to url as role.
func (f *Fixture) connect(url, role string) (*conn, error) {
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, f.options(role, errs)...)
	if err != nil {
		return nil, fmt.Errorf("connecting as %s: %w", role, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &conn{role: role, nc: nc, js: js, errs: errs}, nil
}

// drain forgets the errors received so far.
func (c *conn) drain() {
	for {
		select {
		case <-c.errs:
		default:
			return
		}
	}
}

// refused runs op and returns nil if the server refused it: it sent a permissions violation
// naming subject, and op did not succeed. op is cancelled once the violation arrived (or
// refusalWait passed); an operation without a reply of its own (a publish, a subscription) blocks
// until then.
func (c *conn) refused(ctx context.Context, subject string, op func(context.Context) error) error {
	c.drain()
	ctx, cancel := context.WithTimeout(ctx, refusalWait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	violation := c.waitViolation(ctx, subject)
	cancel()
	opErr := <-done
	switch {
	case violation == nil:
		return fmt.Errorf("the server sent no permissions violation for %q (operation: %v)", subject, opErr)
	case opErr == nil:
		return fmt.Errorf("the operation succeeded although the server reported %v", violation)
	}
	return nil
}

// waitViolation returns the first permissions violation naming subject that c receives before
// ctx ends, or nil.
func (c *conn) waitViolation(ctx context.Context, subject string) error {
	want := strings.ToLower(`"` + subject + `"`)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(err.Error()), want) {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// publishOp is a core publish of data to subject, flushed, that then waits for ctx to end.
func (c *conn) publishOp(subject string, data []byte) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.nc.Publish(subject, data); err != nil {
			return err
		}
		if err := c.nc.FlushWithContext(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// subscribeOp subscribes to subject and waits for a message or for ctx to end.
func (c *conn) subscribeOp(subject string) func(context.Context) error {
	return func(ctx context.Context) error {
		sub, err := c.nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
		if _, err := sub.NextMsgWithContext(ctx); err != nil {
			return err
		}
		return nil // a message arrived: the subscription works
	}
}

// requestOp sends a request to subject and succeeds if any reply arrives.
func (c *conn) requestOp(subject string, data []byte) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.nc.RequestWithContext(ctx, subject, data)
		return err
	}
}
