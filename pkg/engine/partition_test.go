package engine_test

// Partition ownership: workers share the partitions out evenly, hand them over when they stop
// or die, and a worker killed with SIGKILL holds up its instances for about one lease TTL.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/internal/testhooks"
	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/history"
	"github.com/jetflow-dev/jetflow/pkg/natstest"
)

// partitionOwners reads the lease bucket: partition → owner ("" when free or released).
func partitionOwners(t *testing.T, e *env) map[int]string {
	t.Helper()
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, e.b.Names().LeaseBucket())
	if err != nil {
		return nil // no worker has started yet
	}
	owners := map[int]string{}
	for p := range e.b.Partitions() {
		entry, err := kv.Get(ctx, fmt.Sprintf("partitions.%d", p))
		if err != nil {
			continue
		}
		var rec struct {
			Owner string `json:"owner"`
		}
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			t.Fatal(err)
		}
		owners[p] = rec.Owner
	}
	return owners
}

// ownedCounts returns how many partitions each owner holds, and how many have none.
func ownedCounts(owners map[int]string, partitions int) (counts []int, unowned int) {
	by := map[string]int{}
	for p := range partitions {
		if o := owners[p]; o != "" {
			by[o]++
		} else {
			unowned++
		}
	}
	for _, n := range by {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	return counts, unowned
}

// waitBalanced waits until every partition is owned, by exactly the given counts of partitions
// per member.
func waitBalanced(t *testing.T, e *env, want ...int) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		counts, unowned := ownedCounts(partitionOwners(t, e), e.b.Partitions())
		if unowned > 0 || fmt.Sprint(counts) != fmt.Sprint(want) {
			return fmt.Errorf("partitions per member %v (%d unowned), want %v", counts, unowned, want)
		}
		return nil
	})
}

// TestPartitionsAreSharedAndHandedOver: one worker owns all 16 partitions; a second one gets
// half; a third one a share; when workers stop, the rest take their partitions over at once
// (a clean stop releases them), and instances spread over every partition keep completing.
func TestPartitionsAreSharedAndHandedOver(t *testing.T) {
	e := newEnv(t)
	if e.b.Partitions() != natsjs.DefaultPartitions {
		t.Fatalf("%d partitions, want %d", e.b.Partitions(), natsjs.DefaultPartitions)
	}
	reg := approvalRegistry(t)
	ctx := context.Background()
	run := func(round string) {
		t.Helper()
		ids := make([]string, 48)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", round, i)
			if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID(ids[i]), engine.WithInput(i)); err != nil {
				t.Fatal(err)
			}
			if err := e.client.RaiseEvent(ctx, ids[i], "Approval", true); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if s := e.wait(id); s.Status != "Completed" {
				t.Fatalf("%s: %s %s", id, s.Status, s.Failure)
			}
		}
	}

	wa, stopA := e.startWorker(reg)
	waitBalanced(t, e, 16)
	run("one")
	wb, stopB := e.startWorker(reg)
	waitBalanced(t, e, 8, 8)
	run("two")
	_, stopC := e.startWorker(reg)
	waitBalanced(t, e, 5, 5, 6)
	run("three")
	stopA()
	waitBalanced(t, e, 8, 8)
	stopB()
	waitBalanced(t, e, 16)
	run("last")
	stopC()
	t.Logf("turns: A %d, B %d", wa.Stats().Turns, wb.Stats().Turns)
}

// TestKilledWorkersPartitionsMoveOn kills a worker process (SIGKILL) that owns half of the
// partitions while its instances wait for an event, raises the event to every instance, and
// measures how long the killed worker's instances take to complete: one lease TTL (4 s) plus
// the handover, far below the inbox ack wait.
func TestKilledWorkersPartitionsMoveOn(t *testing.T) {
	if os.Getenv(crashChildEnv) == "1" {
		t.Skip("in the worker process")
	}
	e := newEnv(t)
	ctx := context.Background()
	killChild := startCrashChild(t, e.srv.ClientURL(), "worker A")
	waitBalanced(t, e, 16) // the child alone
	_, _ = e.startWorker(crashRegistry(t))
	waitBalanced(t, e, 8, 8)
	owners := partitionOwners(t, e)

	const n = 64
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("kill-%02d", i)
		if _, err := e.client.ScheduleNew(ctx, "Chain", engine.WithInstanceID(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		e.waitFor(id, "waiting for Go", waitingForEvent("Go"))
	}
	// Both halves get the event; the measurement is the time until the last instance (one of
	// the killed worker's) completes.
	killChild()
	killed := time.Now()
	for _, id := range ids {
		if err := e.client.RaiseEvent(ctx, id, "Go", "go-"+id); err != nil {
			t.Fatal(err)
		}
	}
	var last time.Duration
	for _, id := range ids {
		s := e.wait(id)
		faultWantOutput(t, s, crashWant(id))
		if d := time.Since(killed); d > last {
			last = d
		}
	}
	waitBalanced(t, e, 16)
	after := partitionOwners(t, e)
	moved := 0
	for p, o := range owners {
		if after[p] != o {
			moved++
		}
	}
	if moved != 8 {
		t.Fatalf("%d partitions changed owner, want the killed worker's 8", moved)
	}
	t.Logf("every instance completed %v after the kill (lease TTL 4s); %d partitions moved", last.Round(time.Millisecond), moved)
}

// TestStrayInstanceSubjectIsDeadLettered: a message published under the instance subjects
// without an instance ID and kind (jetflow.inst.x) is not filed under any partition; partition
// 0's owner dead-letters it rather than leaving it in the stream.
func TestStrayInstanceSubjectIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.startWorker(approvalRegistry(t))
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, "jetflow.inst.lonely", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	dlq, err := e.js.Stream(ctx, e.b.Names().DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		info, err := dlq.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 1 {
			return fmt.Errorf("%d dead letters", info.State.Msgs)
		}
		return nil
	})
	msg, err := dlq.GetLastMsgForSubject(ctx, "jetflow.dlq.inbox")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "jetflow.inst.lonely") {
		t.Fatalf("dead letter %s does not name the subject", msg.Data)
	}
	inst, err := e.js.Stream(ctx, e.b.Names().InstanceStream())
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		info, err := inst.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d messages left in the inbox", info.State.Msgs)
		}
		return nil
	})
}

// TestPartitionsMoveUnderLoad moves partitions while 24 instances take a stream of events:
// worker B joins (A hands over half), A stops (B takes everything), A' joins, B is stopped. Each
// instance must apply its events exactly once and in the order they were raised, although
// messages change hands between owners mid-stream (what a new owner gets redelivered, the old
// one may still be applying).
func TestPartitionsMoveUnderLoad(t *testing.T) {
	e := newEnv(t)
	reg := faultCollectRegistry(t)
	ctx := context.Background()
	const instances, events = 24, 60
	ids := make([]string, instances)
	items := make([][]int, instances)
	for i := range ids {
		ids[i] = fmt.Sprintf("move-%02d", i)
		for j := range events {
			items[i] = append(items[i], i*1000+j)
		}
		if _, err := e.client.ScheduleNew(ctx, "Collect", engine.WithInstanceID(ids[i]), engine.WithInput(events)); err != nil {
			t.Fatal(err)
		}
	}
	wa, stopA := e.startWorker(reg)
	var raised sync.WaitGroup
	var sent atomic.Int64
	for i, id := range ids {
		raised.Add(1)
		go func() {
			defer raised.Done()
			for _, v := range items[i] {
				if err := e.client.RaiseEvent(ctx, id, "Item", v); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	// Each move happens while events are still being raised and applied.
	atLeast := func(n int64) {
		t.Helper()
		natstest.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
			if s := sent.Load(); s < n {
				return fmt.Errorf("%d events raised", s)
			}
			return nil
		})
	}
	total := int64(instances * events)
	atLeast(total / 5)
	wb, stopB := e.startWorker(reg)
	atLeast(total * 2 / 5)
	stopA()
	atLeast(total * 3 / 5)
	wa2, _ := e.startWorker(reg)
	atLeast(total * 4 / 5)
	stopB()
	raised.Wait()
	for i, id := range ids {
		faultCheckCollected(e, id, items[i])
	}
	t.Logf("turns: A %d, B %d, A' %d; conflicts %d", wa.Stats().Turns, wb.Stats().Turns, wa2.Stats().Turns,
		wa.Stats().Conflicts+wb.Stats().Conflicts+wa2.Stats().Conflicts)
}

// TestLostDeliveryComesBackWithinTheLease: a delivery that never reaches the worker (lost on its
// way, as in a server failover) is delivered again after the inbox ack wait, which is the lease
// TTL, not after a long ack wait; the deliveries the worker holds meanwhile are kept alive.
func TestLostDeliveryComesBackWithinTheLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var lost atomic.Int32
	hooks := &testhooks.Hooks{Intercept: func(msg jetstream.Msg) bool {
		return strings.HasSuffix(msg.Subject(), ".event.Approval") && lost.Add(1) == 1
	}}
	e.startHooked(hooks, approvalRegistry(t))
	if _, err := e.client.ScheduleNew(ctx, "Approval", engine.WithInstanceID("lost"), engine.WithInput(10)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("lost", "waiting for Approval", waitingForEvent("Approval"))
	if err := e.client.RaiseEvent(ctx, "lost", "Approval", true); err != nil {
		t.Fatal(err)
	}
	// Twice the default lease TTL: the old ack wait of 30s would not do.
	wctx, cancel := context.WithTimeout(ctx, 2*natsjs.DefaultLeaseTTL+2*time.Second)
	defer cancel()
	s, err := e.client.WaitForCompletion(wctx, "lost")
	if err != nil {
		t.Fatalf("the lost event was not delivered again within the lease TTL: %v (last %+v)", err, s)
	}
	if lost.Load() < 2 || s.Status != history.StatusCompleted {
		t.Errorf("%d deliveries of the event; %s", lost.Load(), s.Status)
	}
}

// TestGoneMembersAreForgotten: the heartbeat key of a member that died without withdrawing it
// is deleted once it is gone for a few lease TTLs.
func TestGoneMembersAreForgotten(t *testing.T) {
	e := newEnv(t)
	e.opts = []natsjs.Option{natsjs.WithLeaseTTL(natsjs.MinLeaseTTL)}
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, e.b.Names().LeaseBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "members.ghost", []byte(`{"id":"ghost"}`)); err != nil {
		t.Fatal(err)
	}
	e.startWorker(approvalRegistry(t))
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if _, err := kv.Get(ctx, "members.ghost"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("members.ghost: %v", err)
		}
		return nil
	})
}
