package main

import (
	"context"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const resumeAbout = `
Continues a suspended instance.
`

func runResume(ctx context.Context, env *Env, args []string) error {
	return runControl(ctx, env, args, "resume", resumeAbout, "resumption requested for", (*engine.Client).Resume)
}
