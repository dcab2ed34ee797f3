package permissions

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
)

// StartServer starts an in-process NATS server from f's configuration and returns it; setenv
// sets the variables the configuration reads (t.Setenv in a test: the configuration parser
// reads the process environment). Shut it down when done.
func StartServer(f *Fixture, setenv func(key, value string)) (*server.Server, error) {
	for k, v := range f.ServerEnv {
		setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(f.Conf)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", f.Conf, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(natsserver.ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("the server was not ready after %v", natsserver.ReadyTimeout)
	}
	return s, nil
}
