package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
)

const clusterAbout = `
jetflow cluster status prints the live workers (their heartbeat is younger than the lease TTL;
workers that left do not appear), the owner of each partition of the instances, the lag of
every consumer of the instance and activity streams (pending: not delivered yet; ack pending:
delivered, not acked) and the number of dead letters.
`

func runCluster(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "cluster", "status", clusterAbout)
	cfg.clientFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "status" {
		return usageErrorf("usage: jetflow cluster status")
	}
	return withBackend(ctx, env, cfg, func(ctx context.Context, b *natsjs.Backend) error {
		st, err := b.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		printClusterStatus(env.Stdout, st)
		return nil
	})
}

// printClusterStatus prints st as three tables and a count.
func printClusterStatus(out io.Writer, st *natsjs.ClusterStatus) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "members: %d\n", len(st.Members))
	fmt.Fprintln(tw, "  ID\tHOST\tPID\tSTARTED\tLAST SEEN\tPARTITIONS")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s ago\t%s\n", m.ID, m.Host, m.PID, m.Started.Format(time.RFC3339),
			time.Since(m.LastSeen).Round(time.Millisecond), intList(m.Partitions))
	}
	owned := 0
	for _, p := range st.Partitions {
		if p.Owner != "" {
			owned++
		}
	}
	fmt.Fprintf(tw, "partitions: %d, %d owned\n", len(st.Partitions), owned)
	fmt.Fprintln(tw, "  PARTITION\tOWNER\tEPOCH")
	for _, p := range st.Partitions {
		owner := p.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%d\n", p.Partition, owner, p.Epoch)
	}
	fmt.Fprintf(tw, "consumers: %d\n", len(st.Consumers))
	fmt.Fprintln(tw, "  STREAM\tCONSUMER\tPENDING\tACK PENDING\tREDELIVERED")
	for _, c := range st.Consumers {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\n", c.Stream, c.Name, c.Pending, c.AckPending, c.Redelivered)
	}
	fmt.Fprintf(tw, "dead letters: %d\n", st.DeadLetters)
	_ = tw.Flush()
}

func intList(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
