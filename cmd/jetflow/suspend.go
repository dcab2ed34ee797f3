package main

import (
	"context"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const suspendAbout = `
Pauses an instance: events and activity results that arrive are kept, and applied after
'jetflow resume'.
`

func runSuspend(ctx context.Context, env *Env, args []string) error {
	return runControl(ctx, env, args, "suspend", suspendAbout, "suspension requested for", (*engine.Client).Suspend)
}
