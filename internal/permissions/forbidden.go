package permissions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Subjects the forbidden checks try.
const (
	activitySubject = "jetflow.activity." + activityName
	resultSubject   = "jetflow.inst." + eventID + ".result"
	fetchActivity   = "$JS.API.CONSUMER.MSG.NEXT.JETFLOW_ACT.activity-" + activityName
	directGetHist   = "$JS.API.DIRECT.GET.JETFLOW_HIST.jetflow.hist." + eventID
	// newID is an instance the publisher tries to start.
	newID = "perm-new"
)

// forbiddenChecks are what each role must be refused by the server.
func forbiddenChecks() []Check {
	pub := func(subject string) func(context.Context, *Run, *conn) error {
		return func(ctx context.Context, _ *Run, c *conn) error {
			return c.refused(ctx, subject, c.publishOp(subject, []byte(`{}`)))
		}
	}
	req := func(subject, body string) func(context.Context, *Run, *conn) error {
		return func(ctx context.Context, _ *Run, c *conn) error {
			return c.refused(ctx, subject, c.requestOp(subject, []byte(body)))
		}
	}
	sub := func(subject string) func(context.Context, *Run, *conn) error {
		return func(ctx context.Context, _ *Run, c *conn) error {
			return c.refused(ctx, subject, c.subscribeOp(subject))
		}
	}
	fetch := `{"batch": 1, "expires": 1000000000}`
	return []Check{
		forbid("api", "publish activity tasks ("+activitySubject+")", pub(activitySubject)),
		forbid("api", "consume activity tasks (fetch from consumer activity-"+activityName+")", req(fetchActivity, fetch)),
		forbid("api", "publish activity results ("+resultSubject+")", pub(resultSubject)),
		forbid("api", "schedule timers (jetflow.sched.>)", pub("jetflow.sched."+eventID+".1.1")),
		forbid("api", "write the lease bucket ($KV.jetflow-leases.>)", pub("$KV.jetflow-leases.partitions.0")),
		forbid("api", "write the worker registry ($KV.jetflow-workers.>)", pub("$KV.jetflow-workers.fake")),
		forbid("api", "delete a stream", req("$JS.API.STREAM.DELETE.JETFLOW_INST", "")),
		forbid("raiser", "publish activity tasks ("+activitySubject+")", pub(activitySubject)),
		forbid("raiser", "consume activity tasks (fetch from consumer activity-"+activityName+")", req(fetchActivity, fetch)),
		forbid("raiser", "publish activity results ("+resultSubject+")", pub(resultSubject)),
		forbid("publisher", "read a history (direct get from JETFLOW_HIST)", req(directGetHist, "")),
		forbid("publisher", "read history records in flight (subscribe to jetflow.hist.>)", sub("jetflow.hist.>")),
		forbid("publisher", "start an instance (jetflow.inst.<id>.start)", pub("jetflow.inst."+newID+".start")),
		forbid("publisher", "terminate an instance (jetflow.inst.<id>.terminate)", pub("jetflow.inst."+eventID+".terminate")),
		forbid("publisher", "publish activity results ("+resultSubject+")", pub(resultSubject)),
		forbid("publisher", "read other users' replies (subscribe to _INBOX_api.>)", sub(InboxPrefix("api")+".>")),
		forbid("publisher", "read instance messages (subscribe to jetflow.inst.>)", sub("jetflow.inst.>")),
		forbid("worker", "delete a stream", req("$JS.API.STREAM.DELETE.JETFLOW_HIST", "")),
		forbid("worker", "purge the instance stream", req("$JS.API.STREAM.PURGE.JETFLOW_INST", "")),
		forbid("worker", "read other users' replies (subscribe to _INBOX.>)", sub("_INBOX.>")),
	}
}

// forbid makes a check that role is refused what run tries over its connection.
func forbid(role, what string, run func(context.Context, *Run, *conn) error) Check {
	return Check{Role: role, What: what, run: func(ctx context.Context, r *Run) error {
		return run(ctx, r, r.conns[role])
	}}
}

// connectionChecks are about who may connect at all: every user needs its password and, as
// nats-tls.conf configures, TLS with a client certificate.
func connectionChecks() []Check {
	return []Check{
		{anyone, false, "connect without a user and password", func(_ context.Context, r *Run) error {
			return connectRefused(r, true, nats.ErrAuthorization)
		}},
		{anyone, false, "connect with a wrong password", func(_ context.Context, r *Run) error {
			return connectRefused(r, true, nats.ErrAuthorization, nats.UserInfo("publisher", "wrong-"+r.f.Passwords["publisher"]))
		}},
		{anyone, false, "connect without a client certificate", func(_ context.Context, r *Run) error {
			return connectRefused(r, false, nil, nats.UserInfo("api", r.f.Passwords["api"]))
		}},
		{anyone, false, "connect without TLS", plainRefused},
	}
}

// connectRefused connects to the server trusting the fixture's authority, with its client
// certificate if withCert, and opts, and returns nil if the server refused the connection (with
// an error matching want, if not nil).
func connectRefused(r *Run, withCert bool, want error, opts ...nats.Option) error {
	base := []nats.Option{nats.RootCAs(r.f.Certs.CA), nats.NoReconnect(), nats.Timeout(5 * time.Second)}
	if withCert {
		base = append(base, nats.ClientCert(r.f.Certs.ClientCert, r.f.Certs.ClientKey))
	}
	nc, err := nats.Connect(r.url, append(base, opts...)...)
	if err == nil {
		nc.Close()
		return errors.New("the server accepted the connection")
	}
	if want != nil && !errors.Is(err, want) {
		return fmt.Errorf("refused with %v, want %v", err, want)
	}
	return nil
}

// plainRefused sends a CONNECT with a valid user and password without TLS and expects the
// server to close the connection rather than answer the PING after it.
func plainRefused(ctx context.Context, r *Run) error {
	return rawConnect(ctx, r.url, fmt.Sprintf(`CONNECT {"user":"api","pass":%q,"verbose":false,"pedantic":false}`+"\r\nPING\r\n", r.f.Passwords["api"]),
		func(reply string) error {
			if strings.Contains(reply, "PONG") {
				return errors.New("the server answered PING over a plain connection")
			}
			return nil
		})
}
