package durable

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// The call's timeouts go with every attempt; a retry carries the failed attempt's heartbeat
// details; no retry begins past the ScheduleToClose deadline.
func TestActivityTimeoutsAndDetailsReachEachAttempt(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		var out string
		err := ctx.CallActivity("Long", nil, WithStartToClose(time.Minute), WithHeartbeatTimeout(5*time.Second),
			WithScheduleToClose(10*time.Second), WithRetry(RetryPolicy{MaxAttempts: 10, FirstRetryInterval: 4 * time.Second})).Await(&out)
		if kind, ok := ActivityTimedOut(err); ok {
			return kind, nil
		}
		return out, err
	})
	res := h.turn(started(`null`))
	first := res.Actions[0]
	want := history.ActivityTimeouts{StartToClose: time.Minute, Heartbeat: 5 * time.Second, ScheduleToCloseDeadline: h.now.Add(10 * time.Second)}
	if first.Timeouts == nil || *first.Timeouts != want || first.HeartbeatDetails != nil {
		t.Fatalf("first attempt %+v, want timeouts %+v and no details", first, want)
	}
	failure := &history.Failure{Type: history.FailureHeartbeatTimeout, Message: "silent", Details: json.RawMessage(`{"done":7}`)}
	res = h.turn(history.NewTaskFailed(t0, first.TaskID, failure))
	res = h.turn(history.NewTimerFired(t0, res.Actions[0].TaskID))
	second := res.Actions[0]
	if second.Name != "Long" || second.Timeouts == nil || *second.Timeouts != want || string(second.HeartbeatDetails) != `{"done":7}` {
		t.Fatalf("second attempt %+v, want the same timeouts and details {\"done\":7}", second)
	}
	// A third attempt begins before the deadline; after it fails, a fourth would begin past it.
	res = h.turn(history.NewTaskFailed(t0, second.TaskID, &history.Failure{Type: history.FailureStartToCloseTimeout, Message: "slow"}))
	if len(res.Actions) != 1 || res.Actions[0].Kind != ActionTimer {
		t.Fatalf("want a retry timer, got %+v", res.Actions)
	}
	h.now = h.now.Add(4 * time.Second)
	res = h.turn(history.NewTimerFired(t0, res.Actions[0].TaskID))
	res = h.turn(history.NewTaskFailed(t0, res.Actions[0].TaskID, &history.Failure{Type: history.FailureStartToCloseTimeout, Message: "slow"}))
	if res.Status != history.StatusCompleted || string(res.Output) != `"StartToCloseTimeout"` {
		t.Fatalf("status %s output %s actions %+v: want no retry past the ScheduleToClose deadline", res.Status, res.Output, res.Actions)
	}
}

// The turn that ends a generation counts the activities it leaves running.
func TestOutstandingActivitiesAtTheEnd(t *testing.T) {
	h := newHarness(t, func(ctx *OrchestrationContext) (any, error) {
		a := ctx.CallActivity("A", nil)
		b := ctx.CallActivity("B", nil)
		return nil, ctx.WhenAny(a, b).Await(nil)
	})
	res := h.turn(started(`null`))
	if res.OutstandingActivities != 0 {
		t.Fatalf("running: %d outstanding, want 0 (only counted at the end)", res.OutstandingActivities)
	}
	res = h.turn(history.NewTaskCompleted(t0, res.Actions[0].TaskID, nil))
	if res.Status != history.StatusCompleted || res.OutstandingActivities != 1 {
		t.Fatalf("status %s, %d outstanding, want Completed with B outstanding", res.Status, res.OutstandingActivities)
	}
}
