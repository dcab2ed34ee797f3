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
	"time"
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
	// Attempt counts the deliveries of this task, from 1 (a retry by a RetryPolicy is a new
	// task, whose Attempt starts at 1 again).
	Attempt uint64
	// Deadline is when the attempt times out (StartToClose or ScheduleToClose, the earlier);
	// the activity's context has it as its deadline too.
	Deadline time.Time
	// HeartbeatDetails are the last heartbeat details of the previous attempt (see
	// LastHeartbeatDetails); nil if none.
	HeartbeatDetails json.RawMessage
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
//
// An orchestrator name may be registered in several versions (WithVersion), so that a worker
// keeps running the instances started on an old version while new ones start on the newest.
type Registry struct {
	orchestrators map[string]map[string]OrchestratorFunc // name → version → function
	activities    map[string]ActivityFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{orchestrators: map[string]map[string]OrchestratorFunc{}, activities: map[string]ActivityFunc{}}
}

// RegisterOption configures AddOrchestrator.
type RegisterOption func(*registration)

type registration struct{ version string }

// WithVersion registers the orchestrator as version v of its name (default: "", unversioned).
// An instance runs, for all its life, the version it started on; see CompareVersions for which
// version is the newest.
func WithVersion(v string) RegisterOption {
	return func(r *registration) { r.version = v }
}

// AddOrchestrator registers fn under name, in the version WithVersion gives (default ""). It
// returns an error if the name is empty or the name and version are taken.
func (r *Registry) AddOrchestrator(name string, fn OrchestratorFunc, opts ...RegisterOption) error {
	var reg registration
	for _, opt := range opts {
		opt(&reg)
	}
	if name == "" || fn == nil {
		return fmt.Errorf("registering orchestrator %q: name and function are required", name)
	}
	if err := validVersion(reg.version); err != nil {
		return fmt.Errorf("registering orchestrator %q: %w", name, err)
	}
	versions := r.orchestrators[name]
	if versions == nil {
		versions = map[string]OrchestratorFunc{}
		r.orchestrators[name] = versions
	}
	if _, dup := versions[reg.version]; dup {
		return fmt.Errorf("registering orchestrator %q version %q: already registered", name, reg.version)
	}
	versions[reg.version] = fn
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

// Orchestrator returns the newest version of the orchestrator registered under name.
func (r *Registry) Orchestrator(name string) (OrchestratorFunc, bool) {
	v, ok := r.NewestVersion(name)
	if !ok {
		return nil, false
	}
	return r.OrchestratorVersion(name, v)
}

// OrchestratorVersion returns version v of the orchestrator registered under name.
func (r *Registry) OrchestratorVersion(name, v string) (OrchestratorFunc, bool) {
	fn, ok := r.orchestrators[name][v]
	return fn, ok
}

// NewestVersion returns the newest version (CompareVersions) of orchestrator name registered,
// and false if the name is not registered.
func (r *Registry) NewestVersion(name string) (string, bool) {
	versions, ok := r.orchestrators[name]
	if !ok {
		return "", false
	}
	newest, first := "", true
	for v := range versions {
		if first || CompareVersions(v, newest) > 0 {
			newest, first = v, false
		}
	}
	return newest, true
}

// OrchestratorRef names one version of an orchestrator.
type OrchestratorRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// String returns "name" for an unversioned orchestrator, "name@version" for the others.
func (o OrchestratorRef) String() string {
	if o.Version == "" {
		return o.Name
	}
	return o.Name + "@" + o.Version
}

// Orchestrators returns every registered orchestrator version, sorted by name and version.
func (r *Registry) Orchestrators() []OrchestratorRef {
	var out []OrchestratorRef
	for name, versions := range r.orchestrators {
		for v := range versions {
			out = append(out, OrchestratorRef{Name: name, Version: v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out
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
