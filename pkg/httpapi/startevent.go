package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// startWithEventBody is the body of a start with event.
type startWithEventBody struct {
	Input     json.RawMessage `json:"input"`
	EventData json.RawMessage `json:"eventData"`
}

func (a *api) startWithEvent(w http.ResponseWriter, r *http.Request) {
	name, id, event := r.PathValue("functionName"), r.PathValue("instanceId"), r.PathValue("eventName")
	if !checkName(w, "orchestrator name", name) || !checkName(w, "instance ID", id) || !checkName(w, "event name", event) {
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	var req startWithEventBody
	if len(bytes.TrimSpace(body)) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if !strings.EqualFold(mt, "application/json") {
			writeError(w, http.StatusBadRequest, "BadRequest", "Only application/json request content is supported")
			return
		}
		// json.Valid first: Decode reads one value and dec.More() is false before a stray '}'
		// or ']', so `{}}` would pass; and only an object will do (`null` decodes into the
		// struct without error).
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' || dec.Decode(&req) != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", `the body must be a JSON object with optional fields "input" and "eventData"`)
			return
		}
	}
	opts := []engine.StartOption{engine.WithInstanceID(id)}
	if len(req.Input) > 0 {
		opts = append(opts, engine.WithInput(req.Input))
	}
	ev := engine.Event{Name: event, Data: json.RawMessage("null"), ID: eventID(r)}
	if len(req.EventData) > 0 {
		ev.Data = req.EventData
	}
	if _, err := a.c.StartWithEvent(r.Context(), name, ev, opts...); err != nil {
		if errors.Is(err, engine.ErrInstanceExists) {
			// Not a failure: the event goes to the instance that exists. 409 tells the caller
			// that it did not start it.
			writeError(w, http.StatusConflict, "InstanceExists", "the instance exists; its event was raised on it: "+err.Error())
			return
		}
		a.fail(w, r, err)
		return
	}
	a.started(w, r, id)
}
