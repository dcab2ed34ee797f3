package permissions_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

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
