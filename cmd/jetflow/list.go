package main

import (
	"context"
	"encoding/json"
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
	statuses := fs.String("status", "", "only instances with these `statuses` (comma-separated, e.g. Running,Failed)")
	prefix := fs.String("prefix", "", "only instances whose ID starts with `P`")
	from := fs.String("from", "", "only instances created at or after `T` (RFC 3339)")
	to := fs.String("to", "", "only instances created at or before `T` (RFC 3339)")
	top := fs.Int("top", backend.DefaultTop, fmt.Sprintf("page size, 1 to %d", backend.MaxTop))
	all := fs.Bool("all", false, "print every page")
	token := fs.String("continue", "", "continue a listing from `TOKEN`")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	q := engine.Query{IDPrefix: *prefix, Top: *top, ContinuationToken: *token}
	if *top < 1 || *top > backend.MaxTop {
		return usageErrorf("list: --top must be 1 to %d, got %d", backend.MaxTop, *top)
	}
	if q.Statuses, err = parseStatuses(*statuses); err != nil {
		return err
	}
	for _, t := range []struct {
		flag, v string
		t       *time.Time
	}{{"--from", *from, &q.CreatedFrom}, {"--to", *to, &q.CreatedTo}} {
		if t.v == "" {
			continue
		}
		if *t.t, err = time.Parse(time.RFC3339, t.v); err != nil {
			return usageErrorf("list: %s must be an RFC 3339 time like 2026-01-02T15:04:05Z: %v", t.flag, err)
		}
	}
	timeout := clientTimeout
	if *all {
		timeout = listAllTimeout
	}
	return withClient(ctx, env, cfg, timeout, func(ctx context.Context, c *engine.Client) error {
		var found []*engine.Status
		for {
			page, err := c.ListInstances(ctx, q)
			if err != nil {
				return err
			}
			found = append(found, page.Instances...)
			if page.ContinuationToken == "" {
				break
			}
			if !*all {
				fmt.Fprintf(env.Stderr, "more instances: run again with --all, or with --continue %s\n", page.ContinuationToken)
				break
			}
			q.ContinuationToken = page.ContinuationToken
		}
		if *asJSON {
			if found == nil {
				found = []*engine.Status{}
			}
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(found)
		}
		printList(env.Stdout, found)
		return nil
	})
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
