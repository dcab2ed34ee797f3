package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats-server/v2/server"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3" (make build does).
var version = "dev"

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "version", "", "Prints the version of jetflow, of Go and of the embedded nats-server.")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version // go install github.com/jetflow-dev/jetflow/cmd/jetflow@vX
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	fmt.Fprintf(env.Stdout, "jetflow %s, %s %s/%s, nats-server %s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, server.VERSION)
	return nil
}
