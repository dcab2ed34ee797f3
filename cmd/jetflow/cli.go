package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// Exit codes. Scripts may rely on them; they are listed in README.md.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2 // bad flags, arguments, JSON or names
	exitNotFound  = 3 // no such instance
	exitEnded     = 4 // wait: the instance failed, was terminated or canceled
	exitTimedOut  = 5 // wait: --timeout passed first
	exitExists    = 6 // start: an instance with the ID is pending, running or suspended
	exitUnknown   = 7 // start: no live worker serves the orchestrator
	exitInterrupt = 130
)

// Env is what a subcommand may touch of its process: tests run subcommands with buffers and a
// fake environment.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitErr carries an exit code other than the one exitCode would pick. If printed is set, the
// message has been written already (the flag package prints its own errors).
type exitErr struct {
	code    int
	err     error
	printed bool
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// withCode gives err the exit code code.
func withCode(code int, err error) error { return &exitErr{code: code, err: err} }

// usageErrorf reports bad arguments (exit code 2).
func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// exitCode maps an error returned by a subcommand to the process's exit code.
func exitCode(err error) int {
	var ee *exitErr
	var ce *ConfigError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		return exitUsage
	case errors.Is(err, engine.ErrInstanceNotFound):
		return exitNotFound
	case errors.Is(err, engine.ErrInstanceExists):
		return exitExists
	case errors.Is(err, engine.ErrUnknownOrchestrator):
		return exitUnknown
	case errors.Is(err, engine.ErrInvalidName), errors.Is(err, engine.ErrBadPayload), errors.Is(err, engine.ErrPayloadTooLarge):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupt
	}
	return exitError
}

// newFlagSet returns a flag set for subcommand name whose errors and usage go to env.Stderr.
// synopsis follows the command name in the usage line; about is a paragraph below it.
func newFlagSet(env *Env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("jetflow "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: jetflow %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(about))
		if hasFlags(fs) {
			fmt.Fprintf(env.Stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseArgs parses args with fs and returns the positional arguments. Unlike fs.Parse it accepts
// flags after positional arguments (`start Foo --id x`). Everything after "--" is positional,
// and so is an argument like "-5" that is a JSON number.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		for len(args) > 0 && isNegativeNumber(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitErr{code: exitUsage, err: err, printed: true}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func isNegativeNumber(s string) bool {
	return len(s) > 1 && s[0] == '-' && s[1] >= '0' && s[1] <= '9' && json.Valid([]byte(s))
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, pos []string, minArgs, maxArgs int, what string) error {
	if len(pos) >= minArgs && len(pos) <= maxArgs {
		return nil
	}
	name := strings.TrimPrefix(fs.Name(), "jetflow ")
	return usageErrorf("%s: want %s, got %d argument(s); see 'jetflow %s -h'", name, what, len(pos), name)
}

// parseJSON checks that s is JSON, for --input and event data; what names it in errors.
func parseJSON(what, s string) (json.RawMessage, error) {
	raw := json.RawMessage(strings.TrimSpace(s))
	if json.Valid(raw) {
		return raw, nil
	}
	var syn *json.SyntaxError
	err := json.Unmarshal(raw, new(any))
	msg := "is not valid JSON"
	if errors.As(err, &syn) {
		msg = fmt.Sprintf("is not valid JSON (%v at offset %d)", syn, syn.Offset)
	}
	hint := ""
	if !strings.ContainsAny(s, `{}[]"`) {
		q, _ := json.Marshal(s)
		hint = fmt.Sprintf("; a string must be quoted: '%s'", q)
	}
	return nil, usageErrorf("%s %s%s", what, msg, hint)
}

// parseInstanceArg parses the flags of a command that takes exactly one instance ID and returns
// the checked ID.
func parseInstanceArg(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if err := wantArgs(fs, pos, 1, 1, "an instance ID"); err != nil {
		return "", err
	}
	return pos[0], checkID(pos[0])
}
