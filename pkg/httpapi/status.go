package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// TimeFormat is the format of createdTime and lastUpdatedTime (ISO 8601 without fraction, UTC).
const TimeFormat = "2006-01-02T15:04:05Z"

// StatusResponse is the status object of GET instances/{instanceId}, with Durable Functions'
// field names plus waitingFor.
type StatusResponse struct {
	Name            string            `json:"name"`
	InstanceID      string            `json:"instanceId"`
	RuntimeStatus   string            `json:"runtimeStatus"`
	Input           json.RawMessage   `json:"input"`
	CustomStatus    json.RawMessage   `json:"customStatus"`
	Output          json.RawMessage   `json:"output"`
	CreatedTime     string            `json:"createdTime"`
	LastUpdatedTime string            `json:"lastUpdatedTime"`
	WaitingFor      *history.Waiting  `json:"waitingFor,omitempty"`
	HistoryEvents   []json.RawMessage `json:"historyEvents,omitempty"`
	// ScheduledStartTime is when an instance started with ?scheduledStartTime= starts.
	ScheduledStartTime string `json:"scheduledStartTime,omitempty"`
	// OrchestratorVersion is the orchestrator version the instance runs, if versioned.
	OrchestratorVersion string `json:"orchestratorVersion,omitempty"`
	// Warning says why the instance does not move (no worker serves its version) or that it
	// nears a limit.
	Warning string `json:"warning,omitempty"`
}

type statusQuery struct {
	showInput, showHistory, showHistoryOutput, errorOnFailure bool
}

func boolParam(r *http.Request, name string, def bool) bool {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def
	}
	return b
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("instanceId")
	if !checkName(w, "instance ID", id) {
		return
	}
	q := statusQuery{
		showInput:         boolParam(r, "showInput", true),
		showHistory:       boolParam(r, "showHistory", false),
		showHistoryOutput: boolParam(r, "showHistoryOutput", false),
		errorOnFailure:    boolParam(r, "returnInternalServerErrorOnFailure", false),
	}
	s, err := a.c.GetStatus(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeStatus(w, r, s, q)
}

// statusResponse is the status object of s, without history.
func statusResponse(s *engine.Status, showInput bool) StatusResponse {
	resp := StatusResponse{
		Name:                s.Name,
		InstanceID:          s.ID,
		RuntimeStatus:       string(s.Status),
		CustomStatus:        s.CustomStatus,
		CreatedTime:         s.CreatedAt.UTC().Format(TimeFormat),
		LastUpdatedTime:     s.UpdatedAt.UTC().Format(TimeFormat),
		WaitingFor:          s.Waiting,
		OrchestratorVersion: s.OrchestratorVersion,
		Warning:             s.Warning,
	}
	if s.ScheduledStartTime != nil {
		resp.ScheduledStartTime = s.ScheduledStartTime.UTC().Format(TimeFormat)
	}
	if showInput {
		resp.Input = s.Input
	}
	switch s.Status {
	case history.StatusFailed:
		if s.Failure != nil {
			resp.Output, _ = json.Marshal(s.Failure)
		} else {
			resp.Output = asJSON(s.Output)
		}
	case history.StatusPending, history.StatusRunning, history.StatusContinuedAsNew:
	default:
		resp.Output = asJSON(s.Output)
	}
	return resp
}

// writeStatus answers with the status object of s: 202 (with Location and Retry-After: 5) while
// it runs, 500 for Failed with errorOnFailure, else 200.
func (a *api) writeStatus(w http.ResponseWriter, r *http.Request, s *engine.Status, q statusQuery) {
	resp := statusResponse(s, q.showInput)
	if q.showHistory && s.Status != history.StatusPending {
		events, err := a.c.GetHistory(r.Context(), s.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		resp.HistoryEvents = convertHistory(events, q)
		if resp.HistoryEvents == nil {
			resp.HistoryEvents = []json.RawMessage{}
		}
	}
	code := http.StatusOK
	switch s.Status {
	case history.StatusPending, history.StatusRunning, history.StatusContinuedAsNew, history.StatusSuspended:
		code = http.StatusAccepted
		w.Header().Set("Location", requestURL(r))
		w.Header().Set("Retry-After", "5")
	case history.StatusFailed:
		if q.errorOnFailure {
			code = http.StatusInternalServerError
		}
	}
	writeJSON(w, code, resp)
}

// requestURL is r's absolute URL.
func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// asJSON returns raw if it is JSON, else raw as a JSON string (a terminate reason stored as
// text), and nil for nothing.
func asJSON(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	if json.Valid(raw) {
		return raw
	}
	s, _ := json.Marshal(string(raw))
	return s
}

// failureDetails is DTF's FailureDetails.
type failureDetails struct {
	ErrorType    string `json:"ErrorType,omitempty"`
	ErrorMessage string `json:"ErrorMessage"`
	StackTrace   string `json:"StackTrace,omitempty"`
}

func details(f *history.Failure) *failureDetails {
	if f == nil {
		return nil
	}
	return &failureDetails{ErrorType: f.Type, ErrorMessage: f.Message, StackTrace: f.Stack}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// convertHistory reshapes events the way Durable Functions' status API does: PascalCase DTF
// field names, OrchestratorStarted dropped, TaskScheduled and SubOrchestrationInstanceCreated
// folded into their completions, results only with showHistoryOutput, inputs only with showInput.
func convertHistory(events []history.Event, q statusQuery) []json.RawMessage {
	v := newHistoryView(events, q)
	var out []json.RawMessage
	for _, e := range events {
		m, ok := v.convert(e)
		if !ok {
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out
}

// historyView is what convertHistory needs to know about the whole history to convert one event.
type historyView struct {
	q         statusQuery
	scheduled map[int]history.Event // TaskScheduled and SubOrchestrationInstanceCreated by task ID
	completed map[int]bool          // the task IDs that completed or failed
	timers    map[int]time.Time     // the fire times of TimerCreated by task ID
}

func newHistoryView(events []history.Event, q statusQuery) *historyView {
	v := &historyView{q: q, scheduled: map[int]history.Event{}, completed: map[int]bool{}, timers: map[int]time.Time{}}
	for _, e := range events {
		switch e.Type {
		case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
			v.scheduled[e.TaskID] = e
		case history.TaskCompleted, history.TaskFailed, history.SubOrchestrationInstanceCompleted, history.SubOrchestrationInstanceFailed:
			v.completed[e.TaskID] = true
		case history.TimerCreated:
			v.timers[e.TaskID] = e.FireAt
		}
	}
	return v
}

// convert returns e's fields in the Durable Functions shape, or false if e is left out: an
// OrchestratorStarted, or a scheduling folded into its completion.
func (v *historyView) convert(e history.Event) (map[string]any, bool) {
	m := map[string]any{"EventType": string(e.Type), "Timestamp": ts(e.Timestamp)}
	switch e.Type {
	case history.OrchestratorStarted:
		return nil, false
	case history.ExecutionStarted:
		m["FunctionName"] = e.Name
		v.input(m, e.Input)
	case history.ExecutionCompleted:
		m["OrchestrationStatus"] = string(e.Status)
		v.result(m, e.Result)
		if e.Failure != nil {
			m["FailureDetails"] = details(e.Failure)
		}
	case history.ExecutionTerminated:
		if v.q.showInput && e.Reason != "" {
			m["Input"] = e.Reason
		}
	case history.ExecutionSuspended, history.ExecutionResumed, history.ExecutionRewound:
		if e.Reason != "" {
			m["Reason"] = e.Reason
		}
	case history.ContinuedAsNew:
		v.input(m, e.Input)
	case history.TaskScheduled, history.SubOrchestrationInstanceCreated:
		if v.completed[e.TaskID] {
			return nil, false // folded into its completion
		}
		v.pending(m, e)
	case history.TaskCompleted, history.SubOrchestrationInstanceCompleted:
		v.fold(m, e.TaskID)
		v.result(m, e.Result)
	case history.TaskFailed, history.SubOrchestrationInstanceFailed:
		v.fold(m, e.TaskID)
		if e.Failure != nil {
			m["Reason"] = e.Failure.Message
			m["FailureDetails"] = details(e.Failure)
		}
	case history.TimerCreated:
		m["FireAt"] = ts(e.FireAt)
	case history.TimerFired:
		if at, ok := v.timers[e.TaskID]; ok {
			m["FireAt"] = ts(at)
		}
	case history.EventSent:
		m["InstanceId"], m["Name"] = e.InstanceID, e.Name
		v.input(m, e.Input)
	case history.EventRaised:
		m["Name"] = e.Name
		v.input(m, e.Input)
		if e.EventID != "" {
			m["EventId"] = e.EventID
		}
	default:
		if e.Name != "" {
			m["Name"] = e.Name
		}
	}
	return m, true
}

// input sets m's Input to raw, with showInput.
func (v *historyView) input(m map[string]any, raw json.RawMessage) {
	if v.q.showInput && len(raw) > 0 {
		m["Input"] = raw
	}
}

// result sets m's Result to raw, with showHistoryOutput.
func (v *historyView) result(m map[string]any, raw json.RawMessage) {
	if v.q.showHistoryOutput && len(raw) > 0 {
		m["Result"] = raw
	}
}

// pending sets m's fields for a scheduling e that has no completion (yet): its name, its input
// and, for a sub-orchestration, its instance ID.
func (v *historyView) pending(m map[string]any, e history.Event) {
	m["Name"] = e.Name
	v.input(m, e.Input)
	if e.InstanceID != "" {
		m["InstanceId"] = e.InstanceID
	}
}

// fold adds to m, a completion or failure, the fields of task taskID's scheduling: its name,
// when it was scheduled, its input and, for a sub-orchestration, its instance ID.
func (v *historyView) fold(m map[string]any, taskID int) {
	s, ok := v.scheduled[taskID]
	if !ok {
		return
	}
	m["FunctionName"] = s.Name
	m["ScheduledTime"] = ts(s.Timestamp)
	v.input(m, s.Input)
	if s.InstanceID != "" {
		m["InstanceId"] = s.InstanceID
	}
}
