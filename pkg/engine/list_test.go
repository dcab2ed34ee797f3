package engine_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

func echo(ctx *durable.OrchestrationContext) (any, error) {
	var v any
	err := ctx.GetInput(&v)
	return v, err
}

func listRegistry(t *testing.T) *durable.Registry {
	return mustRegistry(t,
		map[string]durable.OrchestratorFunc{"Approval": approval, "Echo": echo},
		map[string]durable.ActivityFunc{"Decide": durable.Activity(decide)})
}

// listAll follows continuation tokens and returns the IDs in order.
func listAll(t *testing.T, c *engine.Client, q engine.Query) (ids []string, pages int) {
	t.Helper()
	for {
		p, err := c.ListInstances(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Instances) > q.PageSize() {
			t.Fatalf("page of %d instances with top %d", len(p.Instances), q.PageSize())
		}
		for _, s := range p.Instances {
			ids = append(ids, s.ID)
		}
		if p.ContinuationToken == "" {
			return ids, pages
		}
		if pages > 100 {
			t.Fatal("too many pages")
		}
		q.ContinuationToken = p.ContinuationToken
	}
}

func TestListPurgeRestart(t *testing.T) {
	e := newEnv(t)
	e.startWorker(listRegistry(t))
	ctx := context.Background()

	ended := []string{"a-1", "a 2", "a/3", "a.4", "a-5"}
	for _, id := range ended {
		if _, err := e.client.ScheduleNew(ctx, "Echo", engine.WithInstanceID(id), engine.WithInput(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ended {
		e.wait(id)
	}
	mid := time.Now().UTC()
	running := []string{"b-1", "b-2"}
	for _, id := range running {
		if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(id)); err != nil {
			t.Fatal(err)
		}
		e.waitFor(id, "waiting", waitingForEvent("Approval"))
	}
	all := append(slices.Clone(ended), running...)
	slices.Sort(all)

	t.Run("paging", func(t *testing.T) {
		ids, pages := listAll(t, e.client, engine.Query{Top: 2})
		if !slices.Equal(ids, all) || pages != 4 {
			t.Fatalf("got %q in %d pages, want %q in 4", ids, pages, all)
		}
		ids, _ = listAll(t, e.client, engine.Query{})
		if !slices.Equal(ids, all) {
			t.Fatalf("one page: got %q, want %q", ids, all)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			q    engine.Query
			want []string
		}{
			{"status", engine.Query{Statuses: []history.RuntimeStatus{history.StatusRunning}}, running},
			{"statuses", engine.Query{Statuses: []history.RuntimeStatus{history.StatusRunning, history.StatusCompleted}}, all},
			{"prefix", engine.Query{IDPrefix: "a", Top: 1}, sorted(ended)},
			{"prefix b", engine.Query{IDPrefix: "b-"}, running},
			{"prefix none", engine.Query{IDPrefix: "zz"}, nil},
			{"from", engine.Query{CreatedFrom: mid}, running},
			{"to", engine.Query{CreatedTo: mid, Top: 3}, sorted(ended)},
			{"to before all", engine.Query{CreatedTo: mid.Add(-time.Hour)}, nil},
		} {
			ids, _ := listAll(t, e.client, tc.q)
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s: got %q, want %q", tc.name, ids, tc.want)
			}
		}
		if _, err := e.client.ListInstances(ctx, engine.Query{ContinuationToken: "!!"}); !errors.Is(err, engine.ErrBadContinuationToken) {
			t.Errorf("bad token: %v", err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		newID, err := e.client.Restart(ctx, "a-1", true)
		if err != nil {
			t.Fatal(err)
		}
		if newID == "a-1" {
			t.Fatal("restart with a new ID kept the ID")
		}
		if s := e.wait(newID); s.Name != "Echo" || string(s.Output) != `"a-1"` {
			t.Fatalf("restarted: %s %s", s.Name, s.Output)
		}
		if err := e.client.Purge(ctx, newID); err != nil {
			t.Fatal(err)
		}
		before, _ := e.client.GetStatus(ctx, "a 2")
		same, err := e.client.Restart(ctx, "a 2", false)
		if err != nil || same != "a 2" {
			t.Fatalf("restart same ID: %q %v", same, err)
		}
		s := e.waitFor("a 2", "completed again", func(s *engine.Status) bool {
			return s.Status == history.StatusCompleted && s.Generation > before.Generation
		})
		if string(s.Output) != `"a 2"` {
			t.Fatalf("output %s", s.Output)
		}
		if _, err := e.client.Restart(ctx, "b-1", false); !errors.Is(err, engine.ErrInstanceExists) {
			t.Errorf("restart running with the same ID: %v", err)
		}
		if _, err := e.client.Restart(ctx, "nope", true); !errors.Is(err, engine.ErrInstanceNotFound) {
			t.Errorf("restart unknown: %v", err)
		}
	})

	t.Run("purge many", func(t *testing.T) {
		n, err := e.client.PurgeInstances(ctx, engine.Query{})
		if err != nil || n != len(ended) {
			t.Fatalf("purged %d (%v), want %d", n, err, len(ended))
		}
		ids, _ := listAll(t, e.client, engine.Query{})
		if !slices.Equal(ids, running) {
			t.Fatalf("left %q, want %q", ids, running)
		}
		if n, err := e.client.PurgeInstances(ctx, engine.Query{}); err != nil || n != 0 {
			t.Fatalf("second purge: %d %v", n, err)
		}
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
