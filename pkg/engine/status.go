package engine

import (
	"encoding/json"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Status is an instance's state as clients see it.
type Status struct {
	ID           string                `json:"instanceId"`
	Name         string                `json:"name"`
	Status       history.RuntimeStatus `json:"runtimeStatus"`
	Input        json.RawMessage       `json:"input,omitempty"`
	Output       json.RawMessage       `json:"output,omitempty"`
	CustomStatus json.RawMessage       `json:"customStatus,omitempty"`
	Failure      *history.Failure      `json:"failure,omitempty"`
	CreatedAt    time.Time             `json:"createdTime"`
	UpdatedAt    time.Time             `json:"lastUpdatedTime"`
	// Waiting says what a running instance waits for: events, timers, activities,
	// sub-orchestrations.
	Waiting *history.Waiting `json:"waitingFor,omitempty"`
	// Parent is set on a sub-orchestration.
	Parent *history.ParentRef `json:"parent,omitempty"`
	// Generation counts the instance's runs: 1 for the first, one more for each restart or
	// ContinueAsNew.
	Generation uint64 `json:"generation"`
	// Version changes with every turn committed for the instance (0 before the first), so
	// that a newer state can be told from an older one.
	Version uint64 `json:"version"`
	// HistoryEvents counts the events in the current generation's history.
	HistoryEvents int `json:"historyEvents,omitempty"`
	// Warning, when set, says the instance nears a limit (its history length) and what to do.
	Warning string `json:"warning,omitempty"`
	// OrchestratorVersion is the orchestrator version the instance runs ("" if unversioned).
	OrchestratorVersion string `json:"orchestratorVersion,omitempty"`
	// ScheduledStartTime is when an instance started with WithStartTime starts (or started).
	ScheduledStartTime *time.Time `json:"scheduledStartTime,omitempty"`
	// WaitingForVersion, as "name@version", says that the instance waits for a worker serving
	// its orchestrator version (Warning explains).
	WaitingForVersion string `json:"waitingForVersion,omitempty"`
}

// Page is a page of ListInstances.
type Page struct {
	Instances []*Status
	// ContinuationToken, when not empty, goes in Query.ContinuationToken for the next page.
	ContinuationToken string
}

// statusOf returns the client's view of a stored instance.
func statusOf(s *backend.Instance) *Status {
	st := &Status{
		ID: s.ID, Name: s.Name, Status: s.Status, Input: s.Input, Output: s.Output,
		CustomStatus: s.CustomStatus, Failure: s.Failure, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		Waiting: s.Waiting, Parent: s.Parent, Generation: s.Generation, Version: s.Version,
		HistoryEvents: s.HistoryEvents, Warning: s.Warning,
		OrchestratorVersion: s.OrchestratorVersion, WaitingForVersion: s.WaitingForVersion,
	}
	if !s.ScheduledStartTime.IsZero() {
		t := s.ScheduledStartTime
		st.ScheduledStartTime = &t
	}
	return st
}
