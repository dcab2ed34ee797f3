package main

import (
	"context"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const terminateAbout = `
Ends a pending, running or suspended instance with status Terminated; its output is the reason.
The request is queued: use 'jetflow wait' to see it take effect.
`

func runTerminate(ctx context.Context, env *Env, args []string) error {
	return runControl(ctx, env, args, "terminate", terminateAbout, "termination requested for", (*engine.Client).Terminate)
}
