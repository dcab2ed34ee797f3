package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

const listAbout = `
Lists instances in instance-ID order as a table (id, name, status, created, updated), or as
JSON with --json (an array of status objects). Filters: --status (comma-separated runtime
statuses), --prefix (instance ID prefix), --from and --to (creation time, RFC 3339, inclusive).
One page of --top instances is printed; when there are more, the command says so on stderr
with the token to pass to --continue, and --all prints every page. Each page lists every
instance key of the store, so listing large stores is slow.
`

// listAllTimeout bounds `list --all`, which reads page after page.
const listAllTimeout = 10 * clientTimeout

func runList(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "list", "[--status S,S] [--prefix P] [--from T] [--to T] [--top N] [--all] [--json]", listAbout)
	cfg.clientFlags(fs)
	var f listFlags
	f.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	q, err := f.query()
	if err != nil {
		return err
	}
	timeout := clientTimeout
	if f.all {
		timeout = listAllTimeout
	}
	return withClient(ctx, env, cfg, timeout, func(ctx context.Context, c *engine.Client) error {
		found, err := listPages(ctx, c, q, f.all, env.Stderr)
		if err != nil {
			return err
		}
		if f.asJSON {
			return printListJSON(env.Stdout, found)
		}
		printList(env.Stdout, found)
		return nil
	})
}

// listFlags are the flags of `jetflow list`.
type listFlags struct {
	statuses, prefix, from, to, token string
	top                               int
	all, asJSON                       bool
}

func (f *listFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.statuses, "status", "", "only instances with these `statuses` (comma-separated, e.g. Running,Failed)")
	fs.StringVar(&f.prefix, "prefix", "", "only instances whose ID starts with `P`")
	fs.StringVar(&f.from, "from", "", "only instances created at or after `T` (RFC 3339)")
	fs.StringVar(&f.to, "to", "", "only instances created at or before `T` (RFC 3339)")
	fs.IntVar(&f.top, "top", backend.DefaultTop, fmt.Sprintf("page size, 1 to %d", backend.MaxTop))
	fs.BoolVar(&f.all, "all", false, "print every page")
	fs.StringVar(&f.token, "continue", "", "continue a listing from `TOKEN`")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON")
}

// query is the query the flags ask for; it returns a usage error for a bad value.
func (f listFlags) query() (engine.Query, error) {
	q := engine.Query{IDPrefix: f.prefix, Top: f.top, ContinuationToken: f.token}
	if f.top < 1 || f.top > backend.MaxTop {
		return q, usageErrorf("list: --top must be 1 to %d, got %d", backend.MaxTop, f.top)
	}
	var err error
	if q.Statuses, err = parseStatuses(f.statuses); err != nil {
		return q, err
	}
	for _, t := range []struct {
		flag, v string
		t       *time.Time
	}{{"--from", f.from, &q.CreatedFrom}, {"--to", f.to, &q.CreatedTo}} {
		if t.v == "" {
			continue
		}
		if *t.t, err = time.Parse(time.RFC3339, t.v); err != nil {
			return q, usageErrorf("list: %s must be an RFC 3339 time like 2026-01-02T15:04:05Z: %v", t.flag, err)
		}
	}
	return q, nil
}

// listPages lists the instances q selects: one page, or with all every page. When it stops
// before the last page it tells stderr how to go on.
func listPages(ctx context.Context, c *engine.Client, q engine.Query, all bool, stderr io.Writer) ([]*engine.Status, error) {
	var found []*engine.Status
	for {
		page, err := c.ListInstances(ctx, q)
		if err != nil {
			return nil, err
		}
		found = append(found, page.Instances...)
		if page.ContinuationToken == "" {
			return found, nil
		}
		if !all {
			fmt.Fprintf(stderr, "more instances: run again with --all, or with --continue %s\n", page.ContinuationToken)
			return found, nil
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

// printListJSON writes the statuses as an indented JSON array ([] for none).
func printListJSON(w io.Writer, found []*engine.Status) error {
	if found == nil {
		found = []*engine.Status{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(found)
}

// parseStatuses parses a comma-separated list of runtime statuses (any case).
func parseStatuses(s string) ([]history.RuntimeStatus, error) {
	known := []history.RuntimeStatus{
		history.StatusPending, history.StatusRunning, history.StatusCompleted, history.StatusContinuedAsNew,
		history.StatusFailed, history.StatusCanceled, history.StatusTerminated, history.StatusSuspended,
	}
	var out []history.RuntimeStatus
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ok := false
		for _, st := range known {
			if strings.EqualFold(part, string(st)) {
				out, ok = append(out, st), true
			}
		}
		if !ok {
			names := make([]string, len(known))
			for i, st := range known {
				names[i] = string(st)
			}
			return nil, usageErrorf("list: unknown status %q (want %s)", part, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// printList writes instances as a table for people.
func printList(w io.Writer, instances []*engine.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tNAME\tSTATUS\tCREATED\tUPDATED")
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	for _, s := range instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Status, at(s.CreatedAt), at(s.UpdatedAt))
	}
	tw.Flush()
}
