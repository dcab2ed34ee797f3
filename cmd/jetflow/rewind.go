package main

import (
	"context"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const rewindAbout = `
Brings a failed instance back to Running: the activities and sub-orchestrations whose failures
made it fail run again, and the orchestrator carries on from there with the rest of its history.
A failure of the orchestrator's own (an error it returned, a panic) fails it again unless its
code has been fixed. Only failed instances can be rewound: exit code 1 for others, 3 if there is
no such instance. The request is queued: use 'jetflow wait' to see it take effect.
`

func runRewind(ctx context.Context, env *Env, args []string) error {
	return runControl(ctx, env, args, "rewind", rewindAbout, "rewind requested for", (*engine.Client).Rewind)
}
