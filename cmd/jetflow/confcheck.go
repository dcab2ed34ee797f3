package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetflow-dev/jetflow/internal/natsserver"
)

const confCheckAbout = `
Checks NATS server configuration files the way 'nats-server -t -c FILE' does, without needing
the nats-server binary: a file with errors or warnings fails. So does a file whose settings
disagree with jetflow's embedded server (the one 'jetflow dev' runs) where jetflow depends on
them: JetStream must be enabled and max_payload must be 8MB. Variables the file reads from the
environment ($NATS_SERVER_NAME, ...) take the defaults documented in nats.conf when unset.
`

func runConfCheck(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "conf-check", "FILE...", confCheckAbout)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1<<20, "one or more files"); err != nil {
		return err
	}
	var text strings.Builder
	for _, file := range pos {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		text.Write(b)
	}
	var defaulted []string
	for k, v := range natsserver.ConfDefaults {
		if _, ok := os.LookupEnv(k); ok {
			continue
		}
		// ProcessConfigFile reads the process environment; this process ends right after.
		if err := os.Setenv(k, v); err != nil {
			return err
		}
		if strings.Contains(text.String(), "$"+k) {
			defaulted = append(defaulted, k+"="+v)
		}
	}
	sort.Strings(defaulted)
	if len(defaulted) > 0 {
		fmt.Fprintf(env.Stderr, "unset, using defaults: %s\n", strings.Join(defaulted, " "))
	}
	failed := 0
	for _, file := range pos {
		opts := &server.Options{}
		err := opts.ProcessConfigFile(file)
		if err == nil {
			err = natsserver.CheckConf(opts)
		}
		if err != nil {
			failed++
			fmt.Fprintf(env.Stderr, "%s: invalid:\n  %s\n", file, strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "\n  "))
			continue
		}
		fmt.Fprintf(env.Stdout, "%s: ok (server_name %q, listen %s:%d, monitoring port %d, max_payload %d, jetstream %v, store_dir %q)\n",
			file, opts.ServerName, opts.Host, opts.Port, opts.HTTPPort, opts.MaxPayload, opts.JetStream, opts.StoreDir)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d configuration files invalid", failed, len(pos))
	}
	return nil
}
