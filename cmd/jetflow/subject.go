package main

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
)

const subjectAbout = `
Prints the NATS subject to publish an event to, so that any NATS client can raise it:

  nats pub "$(jetflow subject 'order 42' Approval)" true

Instance IDs and event names made only of letters, digits, '-' and '_' are used as they are;
every other byte is written as '=' and two upper-case hex digits ("order 42" is order=2042).
Without an event name it prints the wildcard matching every message of the instance.
Needs no connection.
`

func runSubject(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "subject", "<id> [event]", subjectAbout)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 2, "an instance ID and an optional event name"); err != nil {
		return err
	}
	subject, err := eventSubject(pos[0], pos[1:]...)
	if err != nil {
		return withCode(exitUsage, err)
	}
	fmt.Fprintln(env.Stdout, subject)
	return nil
}

// eventSubject returns the subject of event on instance id, or with no event the wildcard of
// all the instance's messages.
func eventSubject(id string, event ...string) (string, error) {
	names, err := natsjs.NewNames(natsjs.DefaultPrefix)
	if err != nil {
		return "", err
	}
	idTok, err := natsjs.EncodeInstanceID(id)
	if err != nil {
		return "", err
	}
	if len(event) == 0 {
		return names.InstanceFilter(idTok), nil
	}
	nameTok, err := natsjs.EncodeEventName(event[0])
	if err != nil {
		return "", err
	}
	return names.EventSubject(idTok, nameTok), nil
}
