// Package httpapi serves the Durable Functions HTTP API (the instance-management webhooks under
// /runtime/webhooks/durabletask/) over an engine client, so tools written for Durable Functions
// (Logic Apps' async polling, scripts using statusQueryGetUri and sendEventPostUri) work against
// jetflow.
//
// Endpoints, all relative to /runtime/webhooks/durabletask/:
//
//	POST   orchestrators/{functionName}[/{instanceId}]   start (optionally wait: ?timeout=&pollingInterval=)
//	POST   orchestrators/{functionName}/{instanceId}/raiseEvent/{eventName}
//	                                                     start with event (jetflow only; see below)
//	GET    instances/{instanceId}                        status (showInput, showHistory, showHistoryOutput,
//	                                                     returnInternalServerErrorOnFailure)
//	DELETE instances/{instanceId}                        purge one
//	POST   instances/{instanceId}/raiseEvent/{eventName} raise an event (Content-Type: application/json)
//	POST   instances/{instanceId}/terminate?reason=      terminate
//	POST   instances/{instanceId}/suspend?reason=        suspend
//	POST   instances/{instanceId}/resume?reason=         resume
//	GET    instances                                     list/query (createdTimeFrom, createdTimeTo,
//	                                                     runtimeStatus, instanceIdPrefix, showInput, top;
//	                                                     paging with header x-ms-continuation-token)
//	DELETE instances                                     purge many (createdTimeFrom required,
//	                                                     createdTimeTo (default now), runtimeStatus):
//	                                                     200 {"instancesDeleted":N}, 404 if none, 400
//	POST   instances/{instanceId}/restart                restart (restartWithNewInstanceId, default true)
//	POST   instances/{instanceId}/rewind?reason=         rewind a failed instance: 202; 400 if it is
//	                                                     pending, running or suspended; 404; 410 if it
//	                                                     completed or was terminated
//	GET    instances/{instanceId}/timeline               the history as a timeline (jetflow only; ui.go)
//	GET    deadletters?after=&top=                       dead letters (jetflow only; ui.go)
//
// Start with event (Temporal's signal-with-start; not in Durable Functions) starts the instance
// unless it is pending, running or suspended, and raises the event on it either way, atomically
// (engine.Client.StartWithEvent). The body is empty or a JSON object (Content-Type:
// application/json) with optional fields "input" (the orchestrator input) and "eventData" (the
// event's data), both null when absent; other fields are refused. The event ID deduplicates the
// event, as on a raise (see below). It answers like a start: 202 with the check-status
// payload (or, with timeout and pollingInterval, 200 and the output if the instance completes in
// time); 409 InstanceExists if the instance was pending, running or suspended (it was not
// started; the event was raised on it); 400 for invalid names, a wrong content type or a body
// that is not such an object; 413 for a body over the limit. For example:
//
//	curl -X POST -H 'Content-Type: application/json' -d '{"input": {"amountCents": 500}, "eventData": true}' \
//	  localhost:7071/runtime/webhooks/durabletask/orchestrators/BudgetApproval/order-42/raiseEvent/Approval
//
// Status codes and payloads follow the Durable Functions reference (docs and
// HttpApiHandler.cs); errors have a JSON body {"error": "...", "message": "..."}. Any other path,
// or a known path with another verb, is 404, as in Durable Functions.
//
// Authorization: when Options.Keys is not empty, every request must carry one of the keys in the
// `code` query parameter or the `x-functions-key` header, else it gets 401 and nothing is done.
// With no keys the API is open; callers should warn loudly.
//
// Deviations from Durable Functions, and why:
//   - Unknown orchestrator names are accepted (202): the client does not know which orchestrators
//     the workers register. The instance then fails with a "not registered" failure.
//   - Starting with the ID of a pending, running or suspended instance returns 500 with error
//     "InstanceExists", as Durable Functions surfaces the failed de-duplicated start (a 409
//     would be more precise, but we keep the reference's behaviour). Ended instances are replaced.
//   - Instance IDs follow jetflow's rule (history.CheckName: 1..256 characters, UTF-8, no control
//     characters), not Durable Functions' (which also forbids '/', '\', '#', '?' and a leading
//     '@'). IDs are path-escaped in the URIs we return and unescaped from request paths. The IDs
//     (and names) "." and ".." cannot be addressed over HTTP: path escaping leaves them as they
//     are, and http.ServeMux answers a path with such a segment with a redirect to the cleaned
//     path, or 404 if that is no endpoint (FuzzHTTPRequest checks that these are the only
//     redirects).
//   - Purging an instance that has not ended returns 200 {"instancesDeleted":0}, which is what
//     the Durable Functions code does (the HTTP layer does not check; the provider deletes nothing).
//   - The status object has an extra field "waitingFor" (events, timers, activities and
//     sub-orchestrations the instance waits on). For Failed instances "output" is the failure
//     object {"type","message","stack"}; for Terminated it is the reason.
//   - History entries: a TaskScheduled or SubOrchestrationInstanceCreated without its completion
//     yet is kept (so running tasks show); raised events carry "EventId" when the sender gave one.
//   - pollingInterval is parsed (both it and timeout must be numbers for the start to wait) but
//     not used: the wait watches the instance instead of polling.
//   - The check-status URIs embed the key only when the request carried it as `code=`; a key sent
//     in the x-functions-key header is not copied into URLs (which end up in logs).
//   - Raise event: a body over Options.MaxBodyBytes is 413 (Durable Functions has no such limit).
//     The event ID deduplicates the event (engine.WithEventID): header Jetflow-Event-Id, else
//     header Nats-Msg-Id (engine.EventID, the rule of every path that raises events, see
//     docs/wire.md), else query parameter eventId.
//   - Listing: instances come in instance-ID order; top defaults to 100 and is capped at 1000
//     (Durable Functions returns everything when top is absent); a page may be shorter than top
//     even when a continuation token follows. createdTimeFrom/To are RFC 3339 and inclusive; an
//     unparseable time is 400 (an unparseable runtimeStatus value is ignored, as in Durable
//     Functions). showInput defaults to true, as in Durable Functions. The continuation token is opaque; a token we did
//     not issue is 400. Each page lists every instance key of the store (see
//     engine.Client.ListInstances), so listing is meant for operators, not hot paths.
//   - Terminate and purge take the query parameter recursive (default true, as in durabletask-go
//     and Dapr): true terminates or purges the
//     instance's sub-orchestrations too, recursively (a purge terminates those still running).
//     A purge answers the number of instances it deleted, the sub-orchestrations included.
//   - Starting an orchestrator that no live worker serves is 400 "UnknownOrchestrator" (Durable
//     Functions' answer for a function that does not exist) when the client was made with
//     engine.WithKnownOrchestratorsOnly, as `jetflow api` and `jetflow dev` make it unless
//     --allow-unknown-names.
//   - Purge many purges ended instances only; pending, running and suspended ones that match are
//     skipped (not counted).
//   - Restart: timeout and pollingInterval are not supported (it always answers 202). Restarting
//     with the same ID an instance that has not ended is 500 "InstanceExists", like a start.
//   - Rewind (a preview in Durable Functions) re-runs the activities and sub-orchestrations whose
//     failures made the orchestrator fail, and those still pending; see engine.Client.Rewind.
//     It works on instances with durable timers too.
//
// Not implemented (answered 501 Not Implemented): entities (jetflow has none).
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/tracing"
)

// BasePath is where the API is served.
const BasePath = "/runtime/webhooks/durabletask"

// DefaultMaxBodyBytes is the default Options.MaxBodyBytes: the engine's default payload limit
// (engine.DefaultMaxPayload, 1 MiB), since a body is a start input or event data.
const DefaultMaxBodyBytes = engine.DefaultMaxPayload

// Client is what the API needs of *engine.Client.
type Client interface {
	ScheduleNew(ctx context.Context, name string, opts ...engine.StartOption) (string, error)
	RaiseEvent(ctx context.Context, id, name string, data any, opts ...engine.RaiseOption) error
	GetStatus(ctx context.Context, id string) (*engine.Status, error)
	GetHistory(ctx context.Context, id string) ([]history.Event, error)
	WaitFor(ctx context.Context, id string, done func(*engine.Status) bool) (*engine.Status, error)
	Terminate(ctx context.Context, id, reason string, opts ...engine.TerminateOption) error
	Suspend(ctx context.Context, id, reason string) error
	Resume(ctx context.Context, id, reason string) error
	PurgeInstance(ctx context.Context, id string, opts ...engine.PurgeOption) (int, error)
	ListInstances(ctx context.Context, q engine.Query) (engine.Page, error)
	PurgeInstances(ctx context.Context, q engine.Query) (int, error)
	Restart(ctx context.Context, id string, newInstanceID bool) (string, error)
	Rewind(ctx context.Context, id, reason string) error
	StartWithEvent(ctx context.Context, name string, ev engine.Event, opts ...engine.StartOption) (string, error)
}

var _ Client = (*engine.Client)(nil)

// Options configures the API.
type Options struct {
	// Keys are the accepted API keys; a request must carry one as ?code= or in the
	// x-functions-key header. Empty: no authorization (the API is open).
	Keys []string
	// MaxBodyBytes bounds request bodies (start input, event data); larger bodies get 413.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// OnError, if set, is called with every error answered with 500 (for logging).
	OnError func(r *http.Request, err error)
	// TracerProvider, if set, traces every request as a server span (named
	// tracing.SpanHTTPPrefix + the route), a child of the request's traceparent header if it
	// carries one; the client calls the request makes are its children. Default: none.
	TracerProvider trace.TracerProvider
	// Propagator reads the request's trace context (default: W3C Trace Context).
	Propagator propagation.TextMapPropagator
}

// EventIDHeader carries a raised event's deduplication ID (Nats-Msg-Id and query parameter
// eventId also work; see eventID).
const EventIDHeader = engine.HeaderEventID

// eventID returns the ID of the event r raises: from its headers as engine.EventID reads them
// (Jetflow-Event-Id, then Nats-Msg-Id), else its query parameter eventId; "" if none.
func eventID(r *http.Request) string {
	if id := engine.EventID(r.Header.Get); id != "" {
		return id
	}
	return r.URL.Query().Get("eventId")
}

type api struct {
	c       Client
	opts    Options
	mux     *http.ServeMux
	tracing *tracing.Tracing // nil: off
}

// New returns the API's handler. It serves paths under BasePath; mount it at "/" or at
// BasePath+"/" on a mux.
func New(client Client, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	a := &api{c: client, opts: opts, mux: http.NewServeMux(), tracing: tracing.New(opts.TracerProvider, opts.Propagator)}
	p := BasePath + "/"
	a.mux.HandleFunc("POST "+p+"orchestrators/{functionName}", a.start)
	a.mux.HandleFunc("POST "+p+"orchestrators/{functionName}/{instanceId}", a.start)
	a.mux.HandleFunc("POST "+p+"orchestrators/{functionName}/{instanceId}/raiseEvent/{eventName}", a.startWithEvent)
	a.mux.HandleFunc("GET "+p+"instances/{instanceId}", a.status)
	a.mux.HandleFunc("DELETE "+p+"instances/{instanceId}", a.purge)
	a.mux.HandleFunc("POST "+p+"instances/{instanceId}/raiseEvent/{eventName}", a.raise)
	a.mux.HandleFunc("POST "+p+"instances/{instanceId}/{operation}", a.operation)
	a.mux.HandleFunc("GET "+p+"instances", a.list)
	a.mux.HandleFunc("GET "+p+"instances/{$}", a.list)
	a.mux.HandleFunc("DELETE "+p+"instances", a.purgeMany)
	a.mux.HandleFunc("DELETE "+p+"instances/{$}", a.purgeMany)
	a.mux.HandleFunc(p+"entities/", a.notImplemented("entities"))
	// jetflow's own, for the web UI (ui.go).
	a.mux.HandleFunc("GET "+p+"instances/{instanceId}/timeline", a.timeline)
	a.mux.HandleFunc("GET "+p+"deadletters", a.deadLetters)
	return a
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		writeError(w, http.StatusUnauthorized, "Unauthorized", "a valid key is required in the code query parameter or the x-functions-key header")
		return
	}
	// Durable Functions answers a wrong verb with 404, not ServeMux's 405.
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		writeError(w, http.StatusNotFound, "NotFound", "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	if a.tracing != nil {
		a.serveTraced(w, r, pattern) // tracing.go
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *api) authorized(r *http.Request) bool {
	if len(a.opts.Keys) == 0 {
		return true
	}
	var given []string
	if c := r.URL.Query().Get("code"); c != "" {
		given = append(given, c)
	}
	if h := r.Header.Get("x-functions-key"); h != "" {
		given = append(given, h)
	}
	ok := 0
	for _, g := range given {
		for _, k := range a.opts.Keys {
			if k != "" {
				ok |= subtle.ConstantTimeCompare([]byte(g), []byte(k))
			}
		}
	}
	return ok == 1
}

func (a *api) notImplemented(what string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotImplemented, "NotImplemented", what+" is not implemented yet")
	}
}

// errorBody is the body of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // URIs keep their '&'
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, errorBody{Error: kind, Message: msg})
}

// fail answers err with the status code its sentinel calls for.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, engine.ErrInstanceNotFound):
		writeError(w, http.StatusNotFound, "InstanceNotFound", "the instance does not exist: "+err.Error())
	case errors.Is(err, engine.ErrInstanceEnded):
		writeError(w, http.StatusGone, "InstanceEnded", "the instance has completed, failed or been terminated: "+err.Error())
	case errors.Is(err, engine.ErrInvalidName):
		writeError(w, http.StatusBadRequest, "InvalidName", err.Error())
	case errors.Is(err, engine.ErrBadPayload):
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid JSON content")
	case errors.Is(err, engine.ErrPayloadTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", err.Error())
	case errors.Is(err, engine.ErrBadContinuationToken):
		writeError(w, http.StatusBadRequest, "BadRequest", "invalid "+ContinuationTokenHeader+": "+err.Error())
	case errors.Is(err, engine.ErrInstanceNotFailed):
		writeError(w, http.StatusBadRequest, "InstanceNotFailed", "only failed instances can be rewound: "+err.Error())
	case errors.Is(err, engine.ErrInvalidVersion):
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
	case errors.Is(err, engine.ErrInstanceExists):
		writeError(w, http.StatusInternalServerError, "InstanceExists", err.Error())
	case errors.Is(err, engine.ErrUnknownOrchestrator):
		writeError(w, http.StatusBadRequest, "UnknownOrchestrator", "The function doesn't exist, is disabled, or is not an orchestrator function: "+err.Error())
	default:
		if a.opts.OnError != nil {
			a.opts.OnError(r, err)
		}
		writeError(w, http.StatusInternalServerError, "InternalError", "Something went wrong while processing your request")
	}
}

// readBody reads the body up to MaxBodyBytes; ok is false if it answered already (413).
func (a *api) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge",
				"the request body is larger than "+strconv.FormatInt(a.opts.MaxBodyBytes, 10)+" bytes")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "BadRequest", "reading the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// checkName answers 400 if name cannot be used as what.
func checkName(w http.ResponseWriter, what, name string) bool {
	if err := history.CheckName(what, name); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidName", err.Error())
		return false
	}
	return true
}

func (a *api) start(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("functionName"), r.PathValue("instanceId")
	if !checkName(w, "orchestrator name", name) {
		return
	}
	opts := []engine.StartOption{}
	if id != "" {
		if !checkName(w, "instance ID", id) {
			return
		}
		opts = append(opts, engine.WithInstanceID(id))
	}
	startOpts, ok := startQuery(w, r)
	if !ok {
		return
	}
	opts = append(opts, startOpts...)
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	if len(body) > 0 {
		if !json.Valid(body) {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid JSON content")
			return
		}
		opts = append(opts, engine.WithInput(json.RawMessage(body)))
	}
	id, err := a.c.ScheduleNew(r.Context(), name, opts...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.started(w, r, id)
}

// started answers a start of instance id: 202 with the check-status payload, or, with the
// timeout and pollingInterval query parameters, the output (200) or status of the instance if
// it ends within the timeout.
func (a *api) started(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	timeout, err1 := strconv.ParseFloat(q.Get("timeout"), 64)
	_, err2 := strconv.ParseFloat(q.Get("pollingInterval"), 64)
	if err1 != nil || err2 != nil || timeout <= 0 {
		CreateCheckStatusResponse(w, r, id)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(timeout*float64(time.Second)))
	defer cancel()
	s, err := a.c.WaitFor(ctx, id, func(s *engine.Status) bool { return s.Status.IsTerminal() })
	if err != nil || s == nil || !s.Status.IsTerminal() {
		if r.Context().Err() != nil {
			return // the caller went away
		}
		CreateCheckStatusResponse(w, r, id)
		return
	}
	if s.Status == history.StatusCompleted {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		out := s.Output
		if len(out) == 0 {
			out = json.RawMessage("null")
		}
		_, _ = w.Write(out)
		return
	}
	a.writeStatus(w, r, s, statusQuery{showInput: true})
}

// CheckStatus is the check-status payload (Durable Functions' HttpManagementPayload); every
// field is a URI except ID.
type CheckStatus struct {
	ID                    string `json:"id"`
	StatusQueryGetURI     string `json:"statusQueryGetUri"`
	SendEventPostURI      string `json:"sendEventPostUri"`
	TerminatePostURI      string `json:"terminatePostUri"`
	PurgeHistoryDeleteURI string `json:"purgeHistoryDeleteUri"`
	RestartPostURI        string `json:"restartPostUri"`
	SuspendPostURI        string `json:"suspendPostUri"`
	ResumePostURI         string `json:"resumePostUri"`
	RewindPostURI         string `json:"rewindPostUri"`
}

// ManagementPayload returns the check-status URIs of instance id, built from r's scheme and host,
// with r's code query parameter (the key) appended when it has one.
func ManagementPayload(r *http.Request, id string) CheckStatus {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	inst := scheme + "://" + r.Host + BasePath + "/instances/" + url.PathEscape(id)
	code := ""
	if c := r.URL.Query().Get("code"); c != "" {
		code = "code=" + url.QueryEscape(c)
	}
	with := func(path, query string) string {
		q := query
		if code != "" {
			if q != "" {
				q += "&"
			}
			q += code
		}
		if q == "" {
			return inst + path
		}
		return inst + path + "?" + q
	}
	status := with("", "")
	return CheckStatus{
		ID:                    id,
		StatusQueryGetURI:     status,
		SendEventPostURI:      with("/raiseEvent/{eventName}", ""),
		TerminatePostURI:      with("/terminate", "reason={text}"),
		PurgeHistoryDeleteURI: status,
		RestartPostURI:        with("/restart", ""),
		SuspendPostURI:        with("/suspend", "reason={text}"),
		ResumePostURI:         with("/resume", "reason={text}"),
		RewindPostURI:         with("/rewind", "reason={text}"),
	}
}

// CreateCheckStatusResponse answers r with 202 Accepted, the check-status payload of instance
// id, Location set to its statusQueryGetUri and Retry-After: 10, as Durable Functions'
// CreateCheckStatusResponse does. Use it in your own handlers after starting an instance.
func CreateCheckStatusResponse(w http.ResponseWriter, r *http.Request, id string) {
	p := ManagementPayload(r, id)
	w.Header().Set("Location", p.StatusQueryGetURI)
	w.Header().Set("Retry-After", "10")
	writeJSON(w, http.StatusAccepted, p)
}

func (a *api) purge(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("instanceId")
	if !checkName(w, "instance ID", id) {
		return
	}
	recursive, ok := recursiveParam(w, r)
	if !ok {
		return
	}
	n, err := a.c.PurgeInstance(r.Context(), id, engine.WithRecursivePurge(recursive))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]int{"instancesDeleted": n})
	case errors.Is(err, engine.ErrInstanceNotEnded):
		writeJSON(w, http.StatusOK, map[string]int{"instancesDeleted": 0})
	default:
		a.fail(w, r, err)
	}
}

// recursiveParam reads the query parameter recursive of terminate and purge: true (the default)
// reaches the instance's sub-orchestrations too. A value that is not a boolean is 400.
func recursiveParam(w http.ResponseWriter, r *http.Request) (recursive, ok bool) {
	v := r.URL.Query().Get("recursive")
	if v == "" {
		return true, true
	}
	recursive, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "'recursive' must be true or false, not "+strconv.Quote(v))
		return false, false
	}
	return recursive, true
}

func (a *api) raise(w http.ResponseWriter, r *http.Request) {
	id, event := r.PathValue("instanceId"), r.PathValue("eventName")
	if !checkName(w, "instance ID", id) || !checkName(w, "event name", event) {
		return
	}
	// The checks in Durable Functions' order: 404, 410, content type, JSON.
	s, err := a.c.GetStatus(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if s.Status.IsTerminal() {
		writeError(w, http.StatusGone, "InstanceEnded", "the instance has "+strings.ToLower(string(s.Status))+" and can't process any raised events")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.EqualFold(mt, "application/json") {
		writeError(w, http.StatusBadRequest, "BadRequest", "Only application/json request content is supported")
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid JSON content")
		return
	}
	var opts []engine.RaiseOption
	if id := eventID(r); id != "" {
		opts = append(opts, engine.WithEventID(id))
	}
	if err := a.c.RaiseEvent(r.Context(), id, event, json.RawMessage(body), opts...); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (a *api) operation(w http.ResponseWriter, r *http.Request) {
	id, op := r.PathValue("instanceId"), r.PathValue("operation")
	var do func(context.Context, string, string) error
	switch op {
	case "terminate":
		recursive, ok := recursiveParam(w, r)
		if !ok {
			return
		}
		do = func(ctx context.Context, id, reason string) error {
			return a.c.Terminate(ctx, id, reason, engine.WithRecursiveTerminate(recursive))
		}
	case "suspend":
		do = a.c.Suspend
	case "resume":
		do = a.c.Resume
	case "rewind":
		do = a.c.Rewind
	case "restart":
		a.restart(w, r)
		return
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no such operation: "+op)
		return
	}
	if !checkName(w, "instance ID", id) {
		return
	}
	if err := do(r.Context(), id, r.URL.Query().Get("reason")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
