// Command jetflow runs durable orchestrations on NATS JetStream: a development server with
// everything in one process, workers, and the commands that start, inspect and drive instances.
//
// Each subcommand lives in its own file with its own flag set; run `jetflow help` for the list
// and `jetflow <command> -h` for its flags. Configuration comes from flags, then environment
// variables (NATS_URL, JETFLOW_...), then defaults (config.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// commands in the order `jetflow help` lists them.
var commands = []command{
	{"dev", "run an embedded NATS server and a worker with the examples (local development)", runDev},
	{"worker", "run a worker with the examples against a NATS server or cluster", runWorker},
	{"api", "serve the Durable Functions HTTP API against a NATS server or cluster", runAPI},
	{"raiser", "raise events on instances from queue messages (JetStream work queues)", runRaiser},
	{"start", "start an orchestration instance and print its ID", runStart},
	{"raise", "raise an event on an instance", runRaise},
	{"status", "show an instance's status (and history)", runStatus},
	{"wait", "wait for an instance to end and print its output", runWait},
	{"history", "print an instance's history as a timeline", runHistory},
	{"terminate", "terminate an instance", runTerminate},
	{"suspend", "suspend an instance", runSuspend},
	{"resume", "resume a suspended instance", runResume},
	{"purge", "delete an ended instance's state and history", runPurge},
	{"list", "list instances, filtered by status, ID prefix and creation time", runList},
	{"restart", "start an instance's orchestrator again with its input", runRestart},
	{"rewind", "rerun the failed tasks of a failed instance and carry on", runRewind},
	{"subject", "print the NATS subject that raises an event on an instance", runSubject},
	{"cluster", "show the workers, partition owners, consumer lag and dead letters", runCluster},
	{"workers", "list the live workers and the orchestrators and activities each serves", runWorkers},
	{"dlq", "list, show, replay or delete dead letters", runDLQ},
	{"bench", "run the benchmark workloads and print one JSON line per result", runBench},
	{"conf-check", "check NATS server configuration files", runConfCheck},
	{"version", "print the version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the process
	}()
	env := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	err := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(report(env, err))
}

// run runs the subcommand named by args[0].
func run(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		usage(env)
		return &exitErr{code: exitUsage, err: errors.New("no command"), printed: true}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return run(ctx, env, []string{rest[0], "-h"})
		}
		usage(env)
		return nil
	case "-v", "-version", "--version":
		name = "version"
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, env, rest)
		}
	}
	usage(env)
	return &exitErr{code: exitUsage, err: fmt.Errorf("unknown command %q", name), printed: false}
}

func usage(env *Env) {
	var b strings.Builder
	b.WriteString("jetflow: durable orchestrations on NATS JetStream\n\nusage: jetflow <command> [arguments] [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'jetflow <command> -h' for a command's flags. Exit codes: 0 ok, 1 error, 2 usage,\n" +
		"3 instance not found, 4 instance failed or terminated (wait), 5 timed out (wait),\n" +
		"6 instance exists (start), 7 no live worker serves the orchestrator (start).\n")
	fmt.Fprint(env.Stderr, b.String())
}

// report prints err (unless already printed) and returns the exit code.
func report(env *Env, err error) int {
	code := exitCode(err)
	if code == exitOK {
		return code
	}
	var ee *exitErr
	if errors.As(err, &ee) && ee.printed {
		return code
	}
	fmt.Fprintf(env.Stderr, "jetflow: %v\n", err)
	return code
}
