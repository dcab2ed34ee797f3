package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/internal/examplestack"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/httpapi"
)

// listIDs lists with query q, following continuation tokens; it returns the IDs in order, the
// number of pages and the first page's objects.
func listIDs(t *testing.T, e *env, q string) (ids []string, pages int, first []map[string]any) {
	t.Helper()
	token := ""
	for {
		var h []string
		if token != "" {
			h = []string{httpapi.ContinuationTokenHeader, token}
		}
		r := do(t, "GET", api(e.open, "instances?"+q), "", h...)
		expectCode(t, r, http.StatusOK, "list "+q)
		var page []map[string]any
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatalf("list %s: body %s: %v", q, r.body, err)
		}
		if pages == 0 {
			first = page
		}
		pages++
		for _, s := range page {
			if _, ok := s["historyEvents"]; ok {
				t.Errorf("list %s: historyEvents in %v", q, s)
			}
			ids = append(ids, s["instanceId"].(string))
		}
		token = r.header.Get(httpapi.ContinuationTokenHeader)
		if token == "" {
			return ids, pages, first
		}
		if pages > 50 {
			t.Fatalf("list %s: too many pages", q)
		}
	}
}

func TestListPurgeRestart(t *testing.T) {
	e := newEnv(t)
	// Orchestrator Nope is not registered: its instances fail at once.
	failed := []string{"f-1", "f-2", "f/3"}
	for _, id := range failed {
		expectCode(t, do(t, "POST", api(e.open, "orchestrators/Nope/"+url.PathEscape(id)), `{"n": 1}`), http.StatusAccepted, "start "+id)
		examplestack.WaitEnded(t, e.client, id)
	}
	mid := url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))
	running := []string{"r-1", "r-2"}
	for _, id := range running {
		e.startBudget(t, e.open, id)
	}
	all := append(slices.Clone(failed), running...)
	slices.Sort(all)

	t.Run("paging", func(t *testing.T) {
		ids, pages, first := listIDs(t, e, "top=2")
		if !slices.Equal(ids, all) || pages != 3 {
			t.Fatalf("got %q in %d pages, want %q in 3", ids, pages, all)
		}
		if len(first) != 2 || first[0]["input"] == nil || first[0]["runtimeStatus"] != "Failed" || first[0]["name"] != "Nope" {
			t.Errorf("first page %v", first)
		}
		if ids, pages, _ := listIDs(t, e, ""); !slices.Equal(ids, all) || pages != 1 {
			t.Fatalf("no top: got %q in %d pages", ids, pages)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, c := range []struct {
			q    string
			want []string
		}{
			{"runtimeStatus=Running", running},
			{"runtimeStatus=failed,bogus", failed},
			{"runtimeStatus=bogus", all},
			{"runtimeStatus=Running&runtimeStatus=Failed&top=1", all},
			{"runtimeStatus=Completed", nil},
			{"instanceIdPrefix=r-", running},
			{"instanceIdPrefix=f&top=1", failed},
			{"createdTimeFrom=" + mid, running},
			{"createdTimeTo=" + mid, failed},
			{"createdTimeFrom=2000-01-01T00:00:00Z&createdTimeTo=2001-01-01T00:00:00Z", nil},
			{"createdTimeFrom=" + mid + "&runtimeStatus=Failed", nil},
		} {
			if ids, _, _ := listIDs(t, e, c.q); !slices.Equal(ids, c.want) {
				t.Errorf("%s: got %q, want %q", c.q, ids, c.want)
			}
		}
		// showInput defaults to true, as in Durable Functions (its Python client reads input).
		for q, want := range map[string]bool{"": true, "&showInput=true": true, "&showInput=false": false} {
			_, _, first := listIDs(t, e, "instanceIdPrefix=r-1"+q)
			if len(first) != 1 || (first[0]["input"] != nil) != want {
				t.Errorf("list%s: %v, want input shown %v", q, first, want)
			}
		}
	})

	t.Run("restart", func(t *testing.T) {
		r := do(t, "POST", inst(e.open, "f-1", "/restart"), "")
		expectCode(t, r, http.StatusAccepted, "restart f-1")
		newID, _ := r.json(t)["id"].(string)
		if newID == "" || newID == "f-1" {
			t.Fatalf("restart with a new ID: id %q", newID)
		}
		if loc := r.header.Get("Location"); loc != inst(e.open, newID, "") {
			t.Errorf("Location %q", loc)
		}
		s := examplestack.WaitEnded(t, e.client, newID)
		var in struct{ N int }
		if s.Name != "Nope" || json.Unmarshal(s.Input, &in) != nil || in.N != 1 {
			t.Errorf("restarted instance: %s %s", s.Name, s.Input)
		}

		before, err := e.client.GetStatus(t.Context(), "f/3")
		if err != nil {
			t.Fatal(err)
		}
		r = do(t, "POST", inst(e.open, "f/3", "/restart?restartWithNewInstanceId=false"), "")
		expectCode(t, r, http.StatusAccepted, "restart f/3 in place")
		if id := r.json(t)["id"]; id != "f/3" {
			t.Fatalf("restart in place: id %v", id)
		}
		examplestack.WaitFor(t, e.client, "f/3", "failed again", func(s *engine.Status) bool {
			return s.Generation > before.Generation && s.Status == history.StatusFailed
		})

		r = do(t, "POST", inst(e.open, "r-1", "/restart?restartWithNewInstanceId=false"), "")
		expectCode(t, r, http.StatusInternalServerError, "restart running in place")
		r = do(t, "POST", inst(e.open, "nope", "/restart"), "")
		expectCode(t, r, http.StatusBadRequest, "restart unknown")
	})

	t.Run("purge many", func(t *testing.T) {
		r := do(t, "DELETE", api(e.open, "instances"), "")
		expectCode(t, r, http.StatusBadRequest, "purge without createdTimeFrom")
		r = do(t, "DELETE", api(e.open, "instances?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Running"), "")
		expectCode(t, r, http.StatusNotFound, "purge running ones")
		r = do(t, "DELETE", api(e.open, "instances?createdTimeFrom=2000-01-01T00:00:00Z"), "")
		expectCode(t, r, http.StatusOK, "purge many")
		if got := r.json(t)["instancesDeleted"]; got != float64(len(failed)+1) {
			t.Errorf("instancesDeleted %v, want %d", got, len(failed)+1)
		}
		if ids, _, _ := listIDs(t, e, ""); !slices.Equal(ids, running) {
			t.Errorf("after purge: %q, want %q", ids, running)
		}
		r = do(t, "DELETE", api(e.open, "instances?createdTimeFrom=2000-01-01T00:00:00Z"), "")
		expectCode(t, r, http.StatusNotFound, "purge again")
	})
}
