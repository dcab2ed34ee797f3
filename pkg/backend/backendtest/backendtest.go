// Package backendtest is the conformance suite of jetflow backends: what every implementation of
// backend.Backend must do, stated as tests. A backend runs it with one call from its own tests:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend { return newBackend(t) })
//	}
//
// The first tests drive the backend's work items directly (order, commits, conflicts,
// abandoned items, dead letters, activities, timers, the client operations); the last ones run
// an engine.Worker on it (events before and after a wait, event-ID dedup, timers,
// terminate/suspend/resume).
package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// Factory returns an empty backend for one test; the test's cleanup must release it.
type Factory func(t *testing.T) backend.Backend

// timeout bounds every wait of the suite.
const timeout = 20 * time.Second

// Run runs the whole suite, each test on a backend of its own.
func Run(t *testing.T, newBackend Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, b backend.Backend)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"BadNamesAndPayloads", testBadNamesAndPayloads},
		{"MessagesInOrder", testMessagesInOrder},
		{"CompleteCommits", testCompleteCommits},
		{"OneOfTwoCompletionsWins", testOneOfTwoCompletionsWins},
		{"AbandonedItemComesBack", testAbandonedItemComesBack},
		{"UnappliedMessagesComeBack", testUnappliedMessagesComeBack},
		{"DeadLetters", testDeadLetters},
		{"ActivityTasks", testActivityTasks},
		{"ActivityTimeoutsAndCancel", testActivityTimeoutsAndCancel},
		{"TraceContextCarried", testTraceContextCarried},
		{"Timers", testTimers},
		{"Purge", testPurge},
		{"ListPaging", testListPaging},
		{"Watch", testWatch},
		{"EngineEventsBeforeAndAfterWait", testEngineEvents},
		{"EngineEventIDDedup", testEngineEventIDDedup},
		{"EngineTimers", testEngineTimers},
		{"EngineTerminateSuspendResume", testEngineControl},
		{"EngineSubOrchestration", testEngineSubOrchestration},
		{"MarkWaiting", testMarkWaiting},
		{"ScheduledStart", testScheduledStart},
		{"EngineVersions", testEngineVersions},
		{"EngineScheduledStart", testEngineScheduledStart},
		{"WorkerRegistry", testWorkerRegistry},
		{"CancelledTimerNeverFires", testCancelledTimerNeverFires},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newBackend(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// start creates instance id of orchestrator name.
func start(t *testing.T, b backend.Backend, id, name string) backend.StartRequest {
	t.Helper()
	req := backend.StartRequest{InstanceID: id, Name: name, StartID: uuid.NewString(), Time: time.Now().UTC(), Input: json.RawMessage(`1`)}
	if err := b.CreateInstance(ctxFor(t), req); err != nil {
		t.Fatalf("creating %q: %v", id, err)
	}
	return req
}

func event(id, name, data string) backend.Message {
	return backend.Message{InstanceID: id, Kind: backend.KindEvent, EventName: name, Data: []byte(data)}
}

func send(t *testing.T, b backend.Backend, msgs ...backend.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := b.Send(ctxFor(t), m); err != nil {
			t.Fatalf("sending %s to %q: %v", m.Kind, m.InstanceID, err)
		}
	}
}

// next returns the next orchestration work item, which must be of instance id.
func next(t *testing.T, b backend.Backend, id string) *backend.OrchestrationWorkItem {
	t.Helper()
	item, err := b.NextOrchestrationWorkItem(ctxFor(t))
	if err != nil {
		t.Fatalf("next work item: %v", err)
	}
	if item.InstanceID != id {
		t.Fatalf("work item of %q, want %q", item.InstanceID, id)
	}
	return item
}

// collect takes work items of id, consuming their messages without events, until n messages
// came; it returns them in the order they came.
func collect(t *testing.T, b backend.Backend, id string, n int) []backend.WorkMessage {
	t.Helper()
	var got []backend.WorkMessage
	for len(got) < n {
		item := next(t, b, id)
		got = append(got, item.Messages...)
		if _, err := b.CompleteOrchestrationWorkItem(ctxFor(t), item, &backend.OrchestrationCompletion{Applied: len(item.Messages)}); err != nil {
			t.Fatalf("completing: %v", err)
		}
	}
	return got
}

// startCompletion is the completion of a start message that leaves the instance running.
func startCompletion(req backend.StartRequest, applied int) *backend.OrchestrationCompletion {
	now := time.Now().UTC()
	return &backend.OrchestrationCompletion{
		Applied:       applied,
		NewGeneration: true,
		Events: []history.Event{
			history.NewOrchestratorStarted(now),
			history.NewExecutionStarted(now, req.Name, req.Input, 1, nil),
		},
		State: backend.Instance{
			ID: req.InstanceID, Name: req.Name, Status: history.StatusRunning, Input: req.Input,
			CreatedAt: req.Time, UpdatedAt: now, StartID: req.StartID, Generation: 1,
		},
	}
}

// run takes the start of a new instance and completes it: the instance is then running.
func run(t *testing.T, b backend.Backend, id string, actions ...history.Action) (backend.StartRequest, *backend.Instance) {
	t.Helper()
	req := start(t, b, id, "Flow")
	item := next(t, b, id)
	if len(item.Messages) != 1 || item.Messages[0].Kind != backend.KindStart {
		t.Fatalf("first work item of %q: %+v, want its start", id, item.Messages)
	}
	c := startCompletion(req, 1)
	c.Actions = actions
	s, err := b.CompleteOrchestrationWorkItem(ctxFor(t), item, c)
	if err != nil {
		t.Fatalf("completing the start of %q: %v", id, err)
	}
	return req, s
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testCreateAndGet(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	_, err := b.GetInstance(ctx, "a")
	wantErr(t, "get before create", err, backend.ErrInstanceNotFound)
	req := start(t, b, "a", "Flow")
	s, err := b.GetInstance(ctx, "a")
	if err != nil || s.Status != history.StatusPending || s.Name != "Flow" || s.StartID != req.StartID {
		t.Fatalf("after create: %+v, %v; want Pending", s, err)
	}
	if err := b.CreateInstance(ctx, req); err != nil {
		t.Fatalf("repeating the same create: %v", err)
	}
	other := req
	other.StartID = uuid.NewString()
	wantErr(t, "second create", b.CreateInstance(ctx, other), backend.ErrInstanceExists)
}

func testBadNamesAndPayloads(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	for _, id := range []string{"", "bad\x00id", strings.Repeat("x", history.MaxNameLength+1)} {
		req := backend.StartRequest{InstanceID: id, Name: "Flow", StartID: uuid.NewString()}
		wantErr(t, fmt.Sprintf("create %q", id), b.CreateInstance(ctx, req), backend.ErrInvalidName)
		wantErr(t, fmt.Sprintf("send to %q", id), b.Send(ctx, event(id, "E", "1")), backend.ErrInvalidName)
	}
	wantErr(t, "bad event name", b.Send(ctx, event("a", "bad\nname", "1")), backend.ErrInvalidName)
	big := make([]byte, b.MaxPayload()+1)
	for i := range big {
		big[i] = '1'
	}
	req := backend.StartRequest{InstanceID: "big", Name: "Flow", StartID: uuid.NewString(), Input: big}
	wantErr(t, "oversize input", b.CreateInstance(ctx, req), backend.ErrPayloadTooLarge)
	wantErr(t, "oversize event", b.Send(ctx, event("a", "E", string(big))), backend.ErrPayloadTooLarge)
	if _, err := b.GetInstance(ctx, "big"); !errors.Is(err, backend.ErrInstanceNotFound) {
		t.Fatalf("an oversize start left an instance behind: %v", err)
	}
	odd := "odd id/with.dots *and* spaces ☕"
	start(t, b, odd, "Flow")
	if s, err := b.GetInstance(ctx, odd); err != nil || s.ID != odd {
		t.Fatalf("instance with an odd ID: %+v, %v", s, err)
	}
}

func testMessagesInOrder(t *testing.T, b backend.Backend) {
	req, _ := run(t, b, "o")
	_ = req
	const n = 20
	for i := range n {
		send(t, b, event("o", "E", fmt.Sprint(i)))
	}
	got := collect(t, b, "o", n)
	for i, m := range got {
		if m.Kind != backend.KindEvent || string(m.Data) != fmt.Sprint(i) || m.Deliveries != 1 {
			t.Fatalf("message %d: %s %q (delivery %d), want event %d, delivered once", i, m.Kind, m.Data, m.Deliveries, i)
		}
	}
}

func testCompleteCommits(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	_, s := run(t, b, "c")
	if s == nil || s.Status != history.StatusRunning || s.Version == 0 {
		t.Fatalf("state after the start: %+v, want Running at a version", s)
	}
	got, err := b.GetInstance(ctx, "c")
	if err != nil || got.Status != history.StatusRunning || got.Version != s.Version || string(got.Input) != "1" {
		t.Fatalf("stored state %+v (%v), want %+v", got, err, s)
	}
	events, err := b.GetHistory(ctx, "c")
	if err != nil || len(events) != 2 || events[1].Type != history.ExecutionStarted {
		t.Fatalf("history %+v (%v), want OrchestratorStarted, ExecutionStarted", events, err)
	}
	send(t, b, event("c", "E", "true"))
	item := next(t, b, "c")
	if item.State == nil || item.State.Version != s.Version {
		t.Fatalf("work item state %+v, want version %d", item.State, s.Version)
	}
	past, err := b.OrchestrationHistory(ctx, item)
	if err != nil || len(past) != 2 {
		t.Fatalf("history of the item: %d events (%v), want 2", len(past), err)
	}
	now := time.Now().UTC()
	end := item.State
	end.Status, end.Output, end.UpdatedAt = history.StatusCompleted, json.RawMessage(`"done"`), now
	s2, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{
		Applied: 1,
		Events:  []history.Event{history.NewEventRaised(now, "E", json.RawMessage("true"), ""), history.NewExecutionCompleted(now, history.StatusCompleted, json.RawMessage(`"done"`), nil)},
		State:   *end,
	})
	if err != nil || s2.Version == s.Version || s2.Status != history.StatusCompleted {
		t.Fatalf("completing: %+v, %v", s2, err)
	}
	got, err = b.GetInstance(ctx, "c")
	if err != nil || got.Status != history.StatusCompleted || string(got.Output) != `"done"` || string(got.Input) != "1" {
		t.Fatalf("stored state %+v (%v), want Completed with its input and output", got, err)
	}
	if events, _ := b.GetHistory(ctx, "c"); len(events) != 4 {
		t.Fatalf("history has %d events, want 4", len(events))
	}
}

func testOneOfTwoCompletionsWins(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	req := start(t, b, "w", "Flow")
	item := next(t, b, "w")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := b.CompleteOrchestrationWorkItem(ctx, item, startCompletion(req, 1))
			errs <- err
		}()
	}
	var won, lost int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case errors.Is(err, backend.ErrConflict):
			lost++
		default:
			t.Fatalf("completion: %v", err)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("%d completions won and %d conflicted, want one each", won, lost)
	}
	if events, err := b.GetHistory(ctx, "w"); err != nil || len(events) != 2 {
		t.Fatalf("history has %d events (%v), want the winner's 2", len(events), err)
	}
}

func testAbandonedItemComesBack(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	run(t, b, "ab")
	send(t, b, event("ab", "E", "1"), event("ab", "E", "2"))
	first := collectItem(t, b, "ab", 2)
	if err := b.AbandonOrchestrationWorkItem(ctx, first, 0); err != nil {
		t.Fatalf("abandoning: %v", err)
	}
	again := collectItem(t, b, "ab", 2)
	for i, m := range again.Messages {
		if string(m.Data) != fmt.Sprint(i+1) {
			t.Fatalf("message %d after abandon: %q, want %d", i, m.Data, i+1)
		}
	}
	if _, err := b.CompleteOrchestrationWorkItem(ctx, first, &backend.OrchestrationCompletion{Applied: 2}); !errors.Is(err, backend.ErrConflict) {
		t.Fatalf("completing an abandoned item: %v, want a conflict", err)
	}
	if _, err := b.CompleteOrchestrationWorkItem(ctx, again, &backend.OrchestrationCompletion{Applied: 2}); err != nil {
		t.Fatalf("completing: %v", err)
	}
}

// collectItem waits for one work item of id holding n messages; items that come with fewer (the
// others are still on their way to the worker) are abandoned and taken again.
func collectItem(t *testing.T, b backend.Backend, id string, n int) *backend.OrchestrationWorkItem {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		item := next(t, b, id)
		if len(item.Messages) >= n || time.Now().After(deadline) {
			if len(item.Messages) != n {
				t.Fatalf("work item with %d messages, want %d", len(item.Messages), n)
			}
			return item
		}
		if err := b.AbandonOrchestrationWorkItem(ctxFor(t), item, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func testUnappliedMessagesComeBack(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	run(t, b, "u")
	send(t, b, event("u", "E", "1"), event("u", "E", "2"), event("u", "E", "3"))
	item := collectItem(t, b, "u", 3)
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{Applied: 1}); err != nil {
		t.Fatalf("completing one of three: %v", err)
	}
	rest := collect(t, b, "u", 2)
	if string(rest[0].Data) != "2" || string(rest[1].Data) != "3" {
		t.Fatalf("after applying the first: %q, %q, want 2, 3", rest[0].Data, rest[1].Data)
	}
}

func testDeadLetters(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	run(t, b, "d")
	send(t, b, event("d", "E", "{not json"))
	item := next(t, b, "d")
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{
		Applied: 1, DeadLetters: []backend.DeadLetterRequest{{Index: 0, Reason: "not JSON"}},
	}); err != nil {
		t.Fatalf("completing: %v", err)
	}
	dead, err := b.DeadLetters(ctx, 0, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %+v (%v), want one", dead, err)
	}
	if d := dead[0]; d.Reason != "not JSON" || d.Data != "{not json" || d.Source != "inbox" || d.Position == 0 {
		t.Fatalf("dead letter %+v", d)
	}
	if more, err := b.DeadLetters(ctx, dead[0].Position, 10); err != nil || len(more) != 0 {
		t.Fatalf("dead letters after the last: %+v (%v)", more, err)
	}
}

func testActivityTasks(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	run(t, b, "act", history.Action{Kind: history.ActionActivity, TaskID: 1, Name: "Work", Input: json.RawMessage(`"in"`)})
	task, err := b.NextActivityWorkItem(ctx, []string{"Work"})
	if err != nil {
		t.Fatalf("next activity: %v", err)
	}
	if task.Task.InstanceID != "act" || task.Task.TaskID != 1 || string(task.Task.Input) != `"in"` || task.Task.Attempt != 1 {
		t.Fatalf("task %+v", task.Task)
	}
	if err := b.AbandonActivityWorkItem(ctx, task, 0); err != nil {
		t.Fatalf("abandoning the task: %v", err)
	}
	again, err := b.NextActivityWorkItem(ctx, []string{"Work"})
	if err != nil || again.Task.TaskID != 1 || again.Task.Attempt != 2 {
		t.Fatalf("task after abandon: %+v (%v), want task 1, attempt 2", again, err)
	}
	if err := b.CompleteActivityWorkItem(ctx, again, backend.TaskResult{Result: json.RawMessage(`"out"`)}); err != nil {
		t.Fatalf("completing the task: %v", err)
	}
	got := collect(t, b, "act", 1)
	var r backend.TaskResult
	if got[0].Kind != backend.KindResult || json.Unmarshal(got[0].Data, &r) != nil || r.TaskID != 1 || r.Generation != 1 || string(r.Result) != `"out"` {
		t.Fatalf("result message %s %s", got[0].Kind, got[0].Data)
	}
}

// testActivityTimeoutsAndCancel: a task carries its call's timeouts and heartbeat details; its
// item can be extended; a cancel of its instance closes its Canceled channel (one of another
// instance or a later generation does not); its ScheduleToClose failure reaches the instance at
// the deadline although the task is still out.
func testActivityTimeoutsAndCancel(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	deadline := time.Now().Add(700 * time.Millisecond).UTC()
	run(t, b, "tmo", history.Action{Kind: history.ActionActivity, TaskID: 1, Name: "Work",
		Timeouts:         &history.ActivityTimeouts{StartToClose: 2 * time.Second, Heartbeat: time.Second, ScheduleToCloseDeadline: deadline},
		HeartbeatDetails: json.RawMessage(`{"done":1}`)})
	item, err := b.NextActivityWorkItem(ctx, []string{"Work"})
	if err != nil {
		t.Fatalf("next activity: %v", err)
	}
	task := item.Task
	if task.StartToClose() != 2*time.Second || task.HeartbeatTimeout() != time.Second ||
		!task.ScheduleToCloseDeadline.Equal(deadline) || string(task.HeartbeatDetails) != `{"done":1}` {
		t.Fatalf("task %+v, want its call's timeouts and heartbeat details", task)
	}
	if err := b.ExtendActivityWorkItem(ctx, item, time.Now().Add(time.Second)); err != nil {
		t.Fatalf("extending the item: %v", err)
	}
	for _, c := range []backend.ActivityCancel{{InstanceID: "other", Generation: 1}, {InstanceID: "tmo", Generation: 0}} {
		if err := b.CancelActivities(ctx, c); err != nil {
			t.Fatalf("cancel %+v: %v", c, err)
		}
	}
	got := collect(t, b, "tmo", 1) // the ScheduleToClose failure, at the deadline
	var r backend.TaskResult
	if json.Unmarshal(got[0].Data, &r) != nil || r.TaskID != 1 || r.Failure == nil || r.Failure.Type != history.FailureScheduleToCloseTimeout {
		t.Fatalf("message %s %s, want the task's ScheduleToCloseTimeout result", got[0].Kind, got[0].Data)
	}
	if time.Now().Before(deadline) {
		t.Fatalf("the ScheduleToClose failure came before its deadline %s", deadline)
	}
	select {
	case <-item.Canceled:
		t.Fatal("the item was cancelled by a cancel of another instance or an earlier generation")
	default:
	}
	if err := b.CancelActivities(ctx, backend.ActivityCancel{InstanceID: "tmo", Generation: 1, Reason: "instance Terminated"}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	select {
	case <-item.Canceled:
	case <-ctx.Done():
		t.Fatal("the item's Canceled channel did not close after a cancel of its instance")
	}
	if err := b.CompleteActivityWorkItem(ctx, item, backend.TaskResult{Result: json.RawMessage(`"late"`)}); err != nil {
		t.Fatalf("completing a cancelled item: %v", err)
	}
	if err := b.ExtendActivityWorkItem(ctx, item, time.Now().Add(time.Second)); err != nil {
		t.Fatalf("extending a completed item: %v", err)
	}
}

func testTimers(t *testing.T, b backend.Backend) {
	fireAt := time.Now().Add(300 * time.Millisecond).UTC()
	run(t, b, "tm", history.Action{Kind: history.ActionTimer, TaskID: 1, FireAt: fireAt})
	got := collect(t, b, "tm", 1)
	var f backend.TimerFired
	if got[0].Kind != backend.KindTimer || json.Unmarshal(got[0].Data, &f) != nil || f.TaskID != 1 || f.Generation != 1 {
		t.Fatalf("timer message %s %s", got[0].Kind, got[0].Data)
	}
	if time.Now().Before(fireAt) {
		t.Fatalf("timer fired before %s", fireAt)
	}
}

func testPurge(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	wantErr(t, "purging an unknown instance", b.PurgeInstance(ctx, "nope"), backend.ErrInstanceNotFound)
	run(t, b, "p")
	wantErr(t, "purging a running instance", b.PurgeInstance(ctx, "p"), backend.ErrInstanceNotEnded)
	send(t, b, backend.Message{InstanceID: "p", Kind: backend.KindTerminate})
	item := next(t, b, "p")
	end := *item.State
	end.Status = history.StatusTerminated
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, &backend.OrchestrationCompletion{
		Applied: 1, Events: []history.Event{history.NewExecutionTerminated(time.Now().UTC(), "")}, State: end,
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.PurgeInstance(ctx, "p"); err != nil {
		t.Fatalf("purging an ended instance: %v", err)
	}
	_, err := b.GetInstance(ctx, "p")
	wantErr(t, "get after purge", err, backend.ErrInstanceNotFound)
	_, err = b.GetHistory(ctx, "p")
	wantErr(t, "history after purge", err, backend.ErrInstanceNotFound)
}

func testListPaging(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	for i := range 25 {
		start(t, b, fmt.Sprintf("list-%02d", i), "Flow")
	}
	start(t, b, "other", "Flow")
	var ids []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages of 10 for 25 instances")
		}
		page, err := b.ListInstances(ctx, backend.Query{IDPrefix: "list-", Top: 10, ContinuationToken: tok})
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		for _, s := range page.Instances {
			ids = append(ids, s.ID)
		}
		if tok = page.ContinuationToken; tok == "" {
			break
		}
	}
	if len(ids) != 25 || ids[0] != "list-00" || ids[24] != "list-24" {
		t.Fatalf("listed %v, want list-00..list-24 in order", ids)
	}
	page, err := b.ListInstances(ctx, backend.Query{Statuses: []history.RuntimeStatus{history.StatusRunning}})
	if err != nil || len(page.Instances) != 0 {
		t.Fatalf("running instances: %d (%v), want none", len(page.Instances), err)
	}
	_, err = b.ListInstances(ctx, backend.Query{ContinuationToken: "not a token!"})
	wantErr(t, "bad continuation token", err, backend.ErrBadContinuationToken)
}

func testWatch(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	_, err := b.WatchInstance(ctx, "none")
	wantErr(t, "watching an unknown instance", err, backend.ErrInstanceNotFound)
	req := start(t, b, "wt", "Flow")
	ch, err := b.WatchInstance(ctx, "wt")
	if err != nil {
		t.Fatal(err)
	}
	if s := <-ch; s.Status != history.StatusPending {
		t.Fatalf("first watched state %s, want Pending", s.Status)
	}
	item := next(t, b, "wt")
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, startCompletion(req, 1)); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case s := <-ch:
			if s.Status == history.StatusRunning {
				return
			}
		case <-ctx.Done():
			t.Fatal("the watch never saw the instance running")
		}
	}
}

// testTraceContextCarried: the trace context of a start, an event, a completion (on the tasks and
// messages it sends) and an activity result reaches whoever takes them.
func testTraceContextCarried(t *testing.T, b backend.Backend) {
	ctx := ctxFor(t)
	traceOf := func(span string) backend.TraceContext {
		return backend.TraceContext{backend.HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-" + span + "-01", backend.HeaderTracestate: "k=" + span}
	}
	req := backend.StartRequest{InstanceID: "traced", Name: "Flow", StartID: uuid.NewString(), Time: time.Now().UTC(), Input: json.RawMessage(`1`), Trace: traceOf("00f067aa0ba902b7")}
	if err := b.CreateInstance(ctx, req); err != nil {
		t.Fatalf("creating: %v", err)
	}
	item := next(t, b, "traced")
	if got := item.Messages[0].Trace; !maps.Equal(got, req.Trace) {
		t.Fatalf("start message trace %v, want %v", got, req.Trace)
	}
	c := startCompletion(req, 1)
	c.Actions = []history.Action{{Kind: history.ActionActivity, TaskID: 1, Name: "Work", Input: json.RawMessage(`"in"`)}}
	c.Trace = traceOf("00f067aa0ba902b8")
	if _, err := b.CompleteOrchestrationWorkItem(ctx, item, c); err != nil {
		t.Fatalf("completing the start: %v", err)
	}
	task, err := b.NextActivityWorkItem(ctx, []string{"Work"})
	if err != nil {
		t.Fatalf("next activity: %v", err)
	}
	if !maps.Equal(task.Task.Trace, c.Trace) {
		t.Fatalf("activity task trace %v, want the turn's %v", task.Task.Trace, c.Trace)
	}
	result := backend.TaskResult{Result: json.RawMessage(`"out"`), Trace: traceOf("00f067aa0ba902b9")}
	if err := b.CompleteActivityWorkItem(ctx, task, result); err != nil {
		t.Fatalf("completing the task: %v", err)
	}
	ev := event("traced", "Go", "true")
	ev.Trace = backend.TraceContext{backend.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902ba-01"}
	send(t, b, ev)
	got := collect(t, b, "traced", 2)
	if !maps.Equal(got[0].Trace, result.Trace) {
		t.Fatalf("result message trace %v, want the activity's %v", got[0].Trace, result.Trace)
	}
	if !maps.Equal(got[1].Trace, ev.Trace) {
		t.Fatalf("event trace %v, want %v", got[1].Trace, ev.Trace)
	}
}
