package permissions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/durable"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

// The orchestration the checks run: it waits for event Go and a durable timer, and says hello to
// the event's data through activity PermSay.
const (
	flowName     = "PermFlow"
	activityName = "PermSay"
	eventName    = "Go"
	// The instances: one driven by the publisher, one controlled by api, one by the raiser.
	eventID, controlID, raiserID = "perm-event", "perm-control", "perm-raiser"
)

// registry holds the check's orchestrator and activity.
func registry() (*durable.Registry, error) {
	reg := durable.NewRegistry()
	err := reg.AddOrchestrator(flowName, func(ctx *durable.OrchestrationContext) (any, error) {
		var who string
		if err := ctx.WaitForExternalEvent(eventName).Await(&who); err != nil {
			return nil, err
		}
		if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
			return nil, err
		}
		var out string
		err := ctx.CallActivity(activityName, who).Await(&out)
		return out, err
	})
	if err != nil {
		return nil, err
	}
	return reg, reg.AddActivity(activityName, durable.Activity(func(_ context.Context, who string) (string, error) {
		return "hello " + who, nil
	}))
}

// allowedChecks are what each role must be able to do, end to end.
func allowedChecks() []Check {
	return []Check{
		{"worker", true, "create jetflow's streams and buckets (and the examples' inventory bucket) and start a worker", startWorker},
		{"api", true, "start an instance and read its status", func(ctx context.Context, r *Run) error {
			return startAndRead(ctx, r, "api", eventID)
		}},
		{"publisher", true, "raise an event with a JetStream publish to jetflow.inst.<id>.event.<name> (acknowledged)", publishEvent},
		{"worker", true, "run the instance's turns and its activity to completion (the publisher's event reached its inbox)", completed},
		{"api", true, "list instances and read a history", listAndHistory},
		{"api", true, "list the live workers (jetflow-workers) and refuse an orchestrator none serves", workersAndUnknown},
		{"api", true, "restart an ended instance with the same ID (the worker drops the old generation's records)", restart},
		{"api", true, "suspend and resume an instance", suspendResume},
		{"api", true, "terminate an instance", terminate},
		{"api", true, "purge an ended instance", purge},
		{"raiser", true, "start an instance, raise an event on it and wait for its output", raiseAndWait},
		{"raiser", true, "set up its queue stream JETFLOW_QUEUES and durable consumer", raiserSetup},
		{anyone, true, "do all of the above without a single permissions violation (every role)", noViolations},
	}
}

// startWorker creates jetflow's streams and buckets as the worker and starts a worker.
func startWorker(ctx context.Context, r *Run) error {
	c := r.conns["worker"]
	b, err := natsjs.New(ctx, c.js, natsjs.WithLogger(r.log))
	if err != nil {
		return err
	}
	if _, err := activities.InventoryBucket(ctx, c.js, 1); err != nil {
		return fmt.Errorf("inventory bucket: %w", err)
	}
	reg, err := registry()
	if err != nil {
		return err
	}
	w, err := engine.NewWorker(b, reg, engine.WithLogger(r.log))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	r.stopWorker, r.workerDone = cancel, make(chan error, 1)
	go func() { r.workerDone <- w.Run(wctx) }()
	return nil
}

// startAndRead starts instance id of the check's orchestration as role and reads its status.
func startAndRead(ctx context.Context, r *Run, role, id string) error {
	cl, err := r.client(ctx, role)
	if err != nil {
		return err
	}
	if _, err := cl.ScheduleNew(ctx, flowName, engine.WithInstanceID(id)); err != nil {
		return err
	}
	s, err := cl.GetStatus(ctx, id)
	if err != nil {
		return err
	}
	if s.Status != history.StatusPending && s.Status != history.StatusRunning {
		return fmt.Errorf("status %s, want Pending or Running", s.Status)
	}
	return nil
}

// publishEvent raises event Go on eventID as the publisher, through JetStream.
func publishEvent(ctx context.Context, r *Run) error {
	_, err := r.conns["publisher"].js.Publish(ctx, "jetflow.inst."+eventID+".event."+eventName, []byte(`"publisher"`))
	return err
}

// completed waits, as api, for eventID to complete with the activity's greeting.
func completed(ctx context.Context, r *Run) error {
	return waitOutput(ctx, r, "api", eventID, `"hello publisher"`)
}

// waitOutput waits, as role, for instance id to complete with output want.
func waitOutput(ctx context.Context, r *Run, role, id, want string) error {
	cl, err := r.client(ctx, role)
	if err != nil {
		return err
	}
	s, err := cl.WaitForCompletion(ctx, id)
	if err != nil {
		return err
	}
	if s.Status != history.StatusCompleted || string(s.Output) != want {
		return fmt.Errorf("status %s, output %s; want Completed, %s", s.Status, s.Output, want)
	}
	return nil
}

// listAndHistory lists the instances and reads eventID's history as api.
func listAndHistory(ctx context.Context, r *Run) error {
	cl, err := r.client(ctx, "api")
	if err != nil {
		return err
	}
	page, err := cl.ListInstances(ctx, engine.Query{})
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(page.Instances, func(s *engine.Status) bool { return s.ID == eventID }) {
		return fmt.Errorf("%s is not listed (%d instances)", eventID, len(page.Instances))
	}
	events, err := cl.GetHistory(ctx, eventID)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return errors.New("the history is empty")
	}
	return nil
}

// workersAndUnknown reads the worker registry as api (the worker serves the check's
// orchestrator) and, with a client that watches it, is refused an orchestrator no worker serves.
func workersAndUnknown(ctx context.Context, r *Run) error {
	c, err := r.conn("api")
	if err != nil {
		return err
	}
	b, err := natsjs.Open(ctx, c.js)
	if err != nil {
		return err
	}
	strict := engine.NewClient(b, engine.WithKnownOrchestratorsOnly())
	defer strict.Close()
	workers, err := strict.Workers(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(workers, func(w engine.WorkerInfo) bool { return w.Serves(flowName) }) {
		return fmt.Errorf("no worker serving %s is listed (%d workers)", flowName, len(workers))
	}
	if _, err := strict.ScheduleNew(ctx, "PermNoSuchFlow"); !errors.Is(err, engine.ErrUnknownOrchestrator) {
		return fmt.Errorf("starting an unknown orchestrator: %v, want ErrUnknownOrchestrator", err)
	}
	return nil
}

// suspendResume starts controlID as api, suspends it and resumes it.
func suspendResume(ctx context.Context, r *Run) error {
	if err := startAndRead(ctx, r, "api", controlID); err != nil {
		return err
	}
	cl := r.clients["api"]
	if err := cl.Suspend(ctx, controlID, "checking permissions"); err != nil {
		return err
	}
	if err := waitStatus(ctx, cl, controlID, history.StatusSuspended); err != nil {
		return err
	}
	if err := cl.Resume(ctx, controlID, "checking permissions"); err != nil {
		return err
	}
	return waitStatus(ctx, cl, controlID, history.StatusRunning)
}

// waitStatus waits for instance id to reach status want.
func waitStatus(ctx context.Context, cl *engine.Client, id string, want history.RuntimeStatus) error {
	_, err := cl.WaitFor(ctx, id, func(s *engine.Status) bool { return s.Status == want })
	if err != nil {
		return fmt.Errorf("waiting for %s to be %s: %w", id, want, err)
	}
	return nil
}

// terminate terminates controlID as api.
func terminate(ctx context.Context, r *Run) error {
	cl, err := r.client(ctx, "api")
	if err != nil {
		return err
	}
	if err := cl.Terminate(ctx, controlID, "checking permissions"); err != nil {
		return err
	}
	return waitStatus(ctx, cl, controlID, history.StatusTerminated)
}

// purge purges controlID as api and checks that it is gone.
func purge(ctx context.Context, r *Run) error {
	cl, err := r.client(ctx, "api")
	if err != nil {
		return err
	}
	if err := cl.Purge(ctx, controlID); err != nil {
		return err
	}
	if _, err := cl.GetStatus(ctx, controlID); !errors.Is(err, backend.ErrInstanceNotFound) {
		return fmt.Errorf("after the purge, reading the status gave %v, want not found", err)
	}
	return nil
}

// raiseAndWait starts raiserID, raises Go on it and waits for its output, all as the raiser.
func raiseAndWait(ctx context.Context, r *Run) error {
	if err := startAndRead(ctx, r, "raiser", raiserID); err != nil {
		return err
	}
	if err := r.clients["raiser"].RaiseEvent(ctx, raiserID, eventName, "raiser"); err != nil {
		return err
	}
	return waitOutput(ctx, r, "raiser", raiserID, `"hello raiser"`)
}

// raiserSetup creates the raiser's queue stream and consumer as the raiser.
func raiserSetup(ctx context.Context, r *Run) error {
	cl, err := r.client(ctx, "raiser")
	if err != nil {
		return err
	}
	rs, err := raiser.New(r.conns["raiser"].js, cl, raiser.Config{Queues: []raiser.Queue{{Name: "perm-queue", Event: eventName}}})
	if err != nil {
		return err
	}
	return rs.Setup(ctx)
}

// restart restarts eventID, which has completed, under the same ID as api, raises its event
// again as the publisher and waits for the new generation's output.
func restart(ctx context.Context, r *Run) error {
	cl, err := r.client(ctx, "api")
	if err != nil {
		return err
	}
	if _, err := cl.Restart(ctx, eventID, false); err != nil {
		return err
	}
	if err := waitStatus(ctx, cl, eventID, history.StatusRunning); err != nil {
		return err
	}
	if err := publishEvent(ctx, r); err != nil {
		return err
	}
	return waitOutput(ctx, r, "api", eventID, `"hello publisher"`)
}

// noViolations fails if any role's connection received an error (a permissions violation, as a
// rule) while doing what it may.
func noViolations(_ context.Context, r *Run) error {
	var errs []error
	for _, role := range Roles {
		c, ok := r.conns[role]
		if !ok {
			errs = append(errs, fmt.Errorf("%s did not connect", role))
			continue
		}
		for {
			select {
			case err := <-c.errs:
				errs = append(errs, fmt.Errorf("%s: %w", role, err))
				continue
			default:
			}
			break
		}
	}
	return errors.Join(errs...)
}
