package httpapi

import (
	"net/http"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// Query parameters of a start beyond Durable Functions' (whose HTTP API has neither).
const (
	// ParamScheduledStartTime schedules the start (RFC 3339): the instance is Pending until then.
	ParamScheduledStartTime = "scheduledStartTime"
	// ParamVersion names the orchestrator version the instance runs.
	ParamVersion = "version"
)

// startQuery returns the start options of the request's query; ok is false if it answered 400.
func startQuery(w http.ResponseWriter, r *http.Request) (opts []engine.StartOption, ok bool) {
	q := r.URL.Query()
	if v := q.Get(ParamScheduledStartTime); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest",
				ParamScheduledStartTime+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z: "+err.Error())
			return nil, false
		}
		opts = append(opts, engine.WithStartTime(t))
	}
	if v := q.Get(ParamVersion); v != "" {
		opts = append(opts, engine.WithVersion(v))
	}
	return opts, true
}
