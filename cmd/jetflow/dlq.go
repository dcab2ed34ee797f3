package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
)

const dlqAbout = `
The dead letters: messages that could not be processed, with the reason.

  jetflow dlq list [--after N] [--top N]   one line each: position, time, source, subject, reason
  jetflow dlq show <position>              one dead letter as JSON, its data included
  jetflow dlq replay <position>            publish its message again to the subject it was first
                                           published to, and delete it (headers such as an event
                                           ID are not kept in dead letters)
  jetflow dlq purge <position>... | --all  delete dead letters

Exit code 3 if a position holds no dead letter.
`

func runDLQ(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "dlq", "list|show|replay|purge [position...]", dlqAbout)
	cfg.clientFlags(fs)
	after := fs.Uint64("after", 0, "list: start after this position")
	top := fs.Int("top", 100, "list: at most this many")
	all := fs.Bool("all", false, "purge: every dead letter")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 1, 1<<20, "list, show, replay or purge"); err != nil {
		return err
	}
	verb := pos[0]
	positions, err := dlqPositions(pos[1:])
	if err != nil {
		return err
	}
	if err := checkDLQArgs(verb, positions, *all); err != nil {
		return err
	}
	return withBackend(ctx, env, cfg, func(ctx context.Context, b *natsjs.Backend) error {
		err := dlqRun(ctx, env, b, verb, positions, *after, *top)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return withCode(exitNotFound, err)
		}
		return err
	})
}

// checkDLQArgs reports arguments that do not fit verb.
func checkDLQArgs(verb string, positions []uint64, all bool) error {
	switch verb {
	case "list":
		if len(positions) > 0 {
			return usageErrorf("dlq list takes no position (use --after)")
		}
	case "show", "replay":
		if len(positions) != 1 {
			return usageErrorf("dlq %s takes one position", verb)
		}
	case "purge":
		if all == (len(positions) > 0) {
			return usageErrorf("dlq purge takes positions or --all")
		}
	default:
		return usageErrorf("unknown dlq command %q: list, show, replay or purge", verb)
	}
	return nil
}

func dlqPositions(args []string) ([]uint64, error) {
	out := make([]uint64, len(args))
	for i, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usageErrorf("position %q is not a positive integer", a)
		}
		out[i] = n
	}
	return out, nil
}

// dlqRun runs one dlq command.
func dlqRun(ctx context.Context, env *Env, b *natsjs.Backend, verb string, positions []uint64, after uint64, top int) error {
	switch verb {
	case "list":
		letters, err := b.DeadLetters(ctx, after, top)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POSITION\tTIME\tSOURCE\tSUBJECT\tREASON")
		for _, d := range letters {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.Position, d.Time.Format(time.RFC3339), d.Source, d.Subject, d.Reason)
		}
		return tw.Flush()
	case "show":
		d, err := b.DeadLetter(ctx, positions[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "replay":
		if err := b.ReplayDeadLetter(ctx, positions[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "replayed dead letter %d\n", positions[0])
		return nil
	}
	if err := b.DeleteDeadLetters(ctx, positions...); err != nil {
		return err
	}
	fmt.Fprintln(env.Stderr, "deleted")
	return nil
}
