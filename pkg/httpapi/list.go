package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// ContinuationTokenHeader carries the listing's continuation token, in requests and responses.
const ContinuationTokenHeader = "x-ms-continuation-token"

// runtimeStatuses are the values runtimeStatus accepts (case-insensitively).
var runtimeStatuses = []history.RuntimeStatus{
	history.StatusPending, history.StatusRunning, history.StatusCompleted, history.StatusContinuedAsNew,
	history.StatusFailed, history.StatusCanceled, history.StatusTerminated, history.StatusSuspended,
}

// parseQuery reads createdTimeFrom, createdTimeTo, runtimeStatus and instanceIdPrefix; it answers
// 400 and returns ok false for a time that does not parse.
func parseQuery(w http.ResponseWriter, r *http.Request) (q engine.Query, ok bool) {
	v := r.URL.Query()
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"createdTimeFrom", &q.CreatedFrom}, {"createdTimeTo", &q.CreatedTo}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "'"+p.name+"' must be an RFC 3339 time: "+err.Error())
			return q, false
		}
		*p.t = t
	}
	for _, list := range v["runtimeStatus"] {
		for _, s := range strings.Split(list, ",") {
			s = strings.TrimSpace(s)
			for _, st := range runtimeStatuses {
				if strings.EqualFold(s, string(st)) {
					q.Statuses = append(q.Statuses, st)
				}
			}
		}
	}
	q.IDPrefix = v.Get("instanceIdPrefix")
	return q, true
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	if top, err := strconv.Atoi(r.URL.Query().Get("top")); err == nil {
		q.Top = top
	}
	q.ContinuationToken = r.Header.Get(ContinuationTokenHeader)
	page, err := a.c.ListInstances(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	showInput := boolParam(r, "showInput", true) // as Durable Functions
	out := make([]StatusResponse, 0, len(page.Instances))
	for _, s := range page.Instances {
		out = append(out, statusResponse(s, showInput))
	}
	if page.ContinuationToken != "" {
		w.Header().Set(ContinuationTokenHeader, page.ContinuationToken)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) purgeMany(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("createdTimeFrom") == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "Please provide value for 'createdTimeFrom' parameter.")
		return
	}
	q, ok := parseQuery(w, r)
	if !ok {
		return
	}
	if q.CreatedTo.IsZero() {
		q.CreatedTo = time.Now().UTC() // Durable Functions' default: instances created until now
	}
	n, err := a.c.PurgeInstances(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "NotFound", "No instances were found that match the filter expression")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"instancesDeleted": n})
}

func (a *api) restart(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("instanceId")
	if !checkName(w, "instance ID", id) {
		return
	}
	newID, err := a.c.Restart(r.Context(), id, boolParam(r, "restartWithNewInstanceId", true))
	if errors.Is(err, engine.ErrInstanceNotFound) {
		writeError(w, http.StatusBadRequest, "BadRequest", "InstanceId does not match a valid orchestration instance.")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	CreateCheckStatusResponse(w, r, newID)
}
