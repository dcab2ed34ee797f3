package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

const workersAbout = `
Lists the live workers: each one's ID, host, process ID, start time, and the orchestrators and
activities it serves (name@version when a name has a version). A worker is listed while it runs:
one that stops cleanly leaves at once, one that dies when its entry expires (15s by default).
The API and 'jetflow start' refuse orchestrators that no worker listed here serves.
`

func runWorkers(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "workers", "[--json]", workersAbout)
	cfg.clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the workers as a JSON array")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	return withClient(ctx, env, cfg, clientTimeout, func(ctx context.Context, c *engine.Client) error {
		workers, err := c.Workers(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if workers == nil {
				workers = []engine.WorkerInfo{}
			}
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(workers)
		}
		printWorkers(env.Stdout, workers)
		return nil
	})
}

// printWorkers prints the workers as a table.
func printWorkers(out io.Writer, workers []engine.WorkerInfo) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workers: %d\n", len(workers))
	fmt.Fprintln(tw, "  ID\tHOST\tPID\tSTARTED\tORCHESTRATORS\tACTIVITIES")
	for _, w := range workers {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", w.ID, w.Host, w.PID, w.Started.Format(time.RFC3339),
			servedList(w.Orchestrators), servedList(w.Activities))
	}
	_ = tw.Flush()
}

// servedList is names as "a, b@v2", or "-" for none.
func servedList(names []engine.ServedName) string {
	if len(names) == 0 {
		return "-"
	}
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = n.Name
		if n.Version != "" {
			s[i] += "@" + n.Version
		}
	}
	return strings.Join(s, ", ")
}
