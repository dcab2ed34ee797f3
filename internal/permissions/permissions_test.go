package permissions_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
	"github.com/jetflow-dev/jetflow/internal/permissions"
)

// Every check passes against an in-process server started from the repository's nats-tls.conf
// (and so nats.conf), as make prove-permissions runs them against a nats-server process.
func TestPermissions(t *testing.T) {
	f, err := permissions.NewFixture(t.TempDir(), filepath.Join("..", ".."), -1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := permissions.StartServer(f, t.Setenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel)
	}
	passed, failed := permissions.RunChecks(ctx, f, s.ClientURL(), log, func(r permissions.Result) {
		if r.Err != nil {
			t.Error(r)
		} else {
			t.Log(r)
		}
	})
	if passed+failed < 16 {
		t.Errorf("%d checks, want at least 16", passed+failed)
	}
	t.Logf("%d passed, %d failed", passed, failed)
}

// The users of the repository's configurations: deploy/nats.conf has nats.conf's, and the
// raiser may do everything api may (nats.conf repeats api's list in the raiser's).
func TestConfUsers(t *testing.T) {
	for k, v := range natsserver.ConfDefaults {
		t.Setenv(k, v)
	}
	users := map[string]map[string]*server.User{}
	for _, file := range []string{"nats.conf", "deploy/nats.conf"} {
		o, err := server.ProcessConfigFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		users[file] = map[string]*server.User{}
		for _, u := range o.Users {
			users[file][u.Username] = u
		}
		if len(o.Users) != len(permissions.Roles) {
			t.Errorf("%s has %d users, want %v", file, len(o.Users), permissions.Roles)
		}
	}
	for _, role := range permissions.Roles {
		a, b := users["nats.conf"][role], users["deploy/nats.conf"][role]
		if a == nil || b == nil || !reflect.DeepEqual(a.Permissions, b.Permissions) {
			t.Errorf("user %s: nats.conf and deploy/nats.conf differ", role)
		}
	}
	api, rs := users["nats.conf"]["api"].Permissions.Publish.Allow, users["nats.conf"]["raiser"].Permissions.Publish.Allow
	for _, subject := range api {
		if !slices.Contains(rs, subject) {
			t.Errorf("the raiser may not publish to %s, which api may", subject)
		}
	}
}

// deploy/nats-tls.conf parses, with TLS for clients and routes.
func TestDeployTLSConf(t *testing.T) {
	for k, v := range natsserver.ConfDefaults {
		t.Setenv(k, v)
	}
	certs, err := permissions.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_SERVER_CERT", strconv.Quote(certs.ServerCert))
	t.Setenv("NATS_SERVER_KEY", strconv.Quote(certs.ServerKey))
	t.Setenv("NATS_SERVER_CA", strconv.Quote(certs.CA))
	o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats-tls.conf"))
	if err != nil {
		t.Fatal(err)
	}
	verifies := func(c *tls.Config) bool { return c != nil && c.ClientAuth == tls.RequireAndVerifyClientCert }
	if !verifies(o.TLSConfig) || !verifies(o.Cluster.TLSConfig) || len(o.Routes) != 3 {
		t.Errorf("mutual TLS for clients %v, for routes %v, %d routes; want mutual TLS on both, 3 routes",
			verifies(o.TLSConfig), verifies(o.Cluster.TLSConfig), len(o.Routes))
	}
	if err := natsserver.CheckConf(o); err != nil {
		t.Error(err)
	}
}
