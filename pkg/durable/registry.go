// Package durable is the authoring API of jetflow: orchestrators, activities, tasks, and the
// replay loop that runs an orchestrator against its history.
//
// An orchestrator is a plain Go function that receives an *OrchestrationContext. Every call that
// can wait (CallActivity, WaitForExternalEvent, CreateTimer, CallSubOrchestrator) returns a *Task
// at once; Task.Await blocks the orchestrator until the task completes. Orchestrators are replayed
// from their history, so they must be deterministic: use the context's CurrentTime, NewUUID and
// Logger instead of time.Now, uuid.New and a plain logger, and do I/O in activities.
package durable

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// OrchestratorFunc is an orchestrator. Its result is encoded as JSON and becomes the instance's
// output; a returned error fails the instance.
type OrchestratorFunc func(ctx *OrchestrationContext) (any, error)

// ActivityFunc is an activity in its raw form: it receives the JSON input and returns a value
// that is encoded as JSON. Use Activity to adapt a typed function.
type ActivityFunc func(ctx context.Context, input json.RawMessage) (any, error)

// Activity adapts a typed Go function into an ActivityFunc: the input JSON is decoded into I,
// and a decoding failure fails the activity with a *DecodeError.
func Activity[I, O any](fn func(ctx context.Context, input I) (O, error)) ActivityFunc {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var in I
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &in); err != nil {
				return nil, &DecodeError{What: "activity input", Err: err}
			}
		}
		return fn(ctx, in)
	}
}

// ActivityInfo describes the activity call being executed; activities read it with
// ActivityInfoFrom.
type ActivityInfo struct {
	InstanceID string
	Name       string
	TaskID     int
	Generation uint64
}

type activityInfoKey struct{}

// WithActivityInfo returns a context that carries info; the worker calls it before running an
// activity.
func WithActivityInfo(ctx context.Context, info ActivityInfo) context.Context {
	return context.WithValue(ctx, activityInfoKey{}, info)
}

// ActivityInfoFrom returns the ActivityInfo of the activity running with ctx.
func ActivityInfoFrom(ctx context.Context) (ActivityInfo, bool) {
	info, ok := ctx.Value(activityInfoKey{}).(ActivityInfo)
	return info, ok
}

// Registry maps names to orchestrators and activities. Register everything before a worker
// starts; a Registry is not safe for concurrent modification.
type Registry struct {
	orchestrators map[string]OrchestratorFunc
	activities    map[string]ActivityFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{orchestrators: map[string]OrchestratorFunc{}, activities: map[string]ActivityFunc{}}
}

// AddOrchestrator registers fn under name. It returns an error if the name is empty or taken.
func (r *Registry) AddOrchestrator(name string, fn OrchestratorFunc) error {
	if name == "" || fn == nil {
		return fmt.Errorf("registering orchestrator %q: name and function are required", name)
	}
	if _, dup := r.orchestrators[name]; dup {
		return fmt.Errorf("registering orchestrator %q: already registered", name)
	}
	r.orchestrators[name] = fn
	return nil
}

// AddActivity registers fn under name. It returns an error if the name is empty or taken.
func (r *Registry) AddActivity(name string, fn ActivityFunc) error {
	if name == "" || fn == nil {
		return fmt.Errorf("registering activity %q: name and function are required", name)
	}
	if _, dup := r.activities[name]; dup {
		return fmt.Errorf("registering activity %q: already registered", name)
	}
	r.activities[name] = fn
	return nil
}

// Orchestrator returns the orchestrator registered under name.
func (r *Registry) Orchestrator(name string) (OrchestratorFunc, bool) {
	fn, ok := r.orchestrators[name]
	return fn, ok
}

// Activity returns the activity registered under name.
func (r *Registry) Activity(name string) (ActivityFunc, bool) {
	fn, ok := r.activities[name]
	return fn, ok
}

// ActivityNames returns the registered activity names, sorted.
func (r *Registry) ActivityNames() []string {
	names := make([]string, 0, len(r.activities))
	for name := range r.activities {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// OrchestratorNames returns the registered orchestrator names, sorted.
func (r *Registry) OrchestratorNames() []string {
	names := make([]string, 0, len(r.orchestrators))
	for name := range r.orchestrators {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
