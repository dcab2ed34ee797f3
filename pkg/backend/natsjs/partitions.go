package natsjs

// Partition ownership.
//
// The instance stream files every message under a partition of its instance ID (a subject
// transform, see Names.PartitionTransform). Each partition is read by one worker at a time,
// through a consumer that only that worker pulls from:
//
//   - every consuming worker (a member, with a random ID per ConsumeInbox call) puts a heartbeat
//     under members.<id> in the lease bucket every quarter of the lease TTL, and watches the
//     bucket; a member whose heartbeat has not been seen for a TTL is dead;
//   - the partitions are shared out evenly among the live members (sorted by ID, the first
//     partitions%members get one more); a member over its share releases partitions, one under
//     it claims free ones (released, never owned, or owned by a dead member);
//   - claiming is a compare-and-set of partitions.<p> to {owner, epoch}; the winner then deletes
//     every consumer of the partition and creates its own, named after itself and the epoch.
//     A work-queue stream allows one consumer per filter, so the server guarantees that no two
//     workers read a partition at once, and deleting the old consumer makes the messages it had
//     delivered but not acked available again at once: a killed worker's instances move on
//     after one lease TTL, not after an ack wait.
//
// Messages carry the epoch of the consumer they came through (inboxMessage.epoch), which lets
// the engine skip reading the inbox for messages held elsewhere while its cached instance
// stays in the same epoch. Two owners at once (a member wrongly thought dead) cost wasted
// turns, never corruption: turns are committed with compare-and-set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

const (
	memberKeyPrefix    = "members."
	partitionKeyPrefix = "partitions."
)

// leaseRecord is the value of partitions.<p>.
type leaseRecord struct {
	Owner string    `json:"owner"` // member ID; "" once released
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at"`
}

// memberRecord is the value of members.<id>.
type memberRecord struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Partitions []int     `json:"partitions"`
}

type leaseView struct {
	rec leaseRecord
	rev uint64
}

// ownership is a partition this member reads.
type ownership struct {
	epoch    uint64
	consumer string
	cc       jetstream.ConsumeContext
}

type lostPartition struct {
	p     int
	epoch uint64
}

// partitionSet runs one member: heartbeats, rebalancing and the consumers of its partitions.
// Its maps are owned by the run goroutine.
type partitionSet struct {
	b       *Backend
	kv      jetstream.KeyValue
	member  string
	started time.Time
	handle  func(inboxMessage)
	log     zerolog.Logger
	ttl     time.Duration

	logged string               // the owned partitions last logged
	seen   map[string]time.Time // member → when its heartbeat was last seen, local clock
	leases map[int]leaseView
	owned  map[int]*ownership
	lost   chan lostPartition
}

// consumeInbox takes part in sharing the partitions out and delivers the messages of the
// partitions this worker owns, until ctx ends; then it hands them back so that other workers
// take over at once.
func (b *Backend) consumeInbox(ctx context.Context, handle func(inboxMessage)) error {
	kv := b.leases
	if kv == nil {
		var err error
		if kv, err = b.leaseBucket(ctx); err != nil {
			return err
		}
	}
	ps := &partitionSet{
		b:       b,
		kv:      kv,
		member:  strings.ReplaceAll(uuid.NewString(), "-", "")[:16],
		started: time.Now().UTC(),
		handle:  handle,
		ttl:     b.opts.leaseTTL,
		seen:    map[string]time.Time{},
		leases:  map[int]leaseView{},
		owned:   map[int]*ownership{},
		lost:    make(chan lostPartition, 64),
	}
	ps.log = b.log.With().Str("member", ps.member).Logger()
	if b.timerGuard.acquire() {
		go b.runTimerGuard()
	}
	defer b.timerGuard.release()
	return ps.run(ctx)
}

// leaseBucket binds the lease bucket, creating it if it is missing.
func (b *Backend) leaseBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return b.bucket(ctx, jetstream.KeyValueConfig{
		Bucket:      b.names.LeaseBucket(),
		Description: "jetflow: worker heartbeats and partition ownership",
	})
}

// bucket binds the KV bucket of cfg, creating it if it is missing (one value per key, file
// storage, the configured replicas).
func (b *Backend) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if kv, err := b.js.KeyValue(ctx, cfg.Bucket); err == nil {
		return kv, nil
	}
	cfg.History, cfg.Storage, cfg.Replicas = 1, jetstream.FileStorage, b.opts.replicas
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

func (ps *partitionSet) run(ctx context.Context) error {
	watcher, err := ps.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching %s: %w", ps.b.names.LeaseBucket(), err)
	}
	defer watcher.Stop()
	ps.heartbeat(ctx)
	beat := time.NewTicker(ps.ttl / 4)
	defer beat.Stop()
	caughtUp := false
	for {
		select {
		case <-ctx.Done():
			ps.releaseAll()
			return nil
		case e, ok := <-watcher.Updates():
			if !ok {
				if ctx.Err() != nil {
					continue
				}
				ps.releaseAll()
				return fmt.Errorf("watching %s: the watch ended", ps.b.names.LeaseBucket())
			}
			if e == nil {
				caughtUp = true
			} else {
				ps.apply(e, !caughtUp)
			}
			if caughtUp {
				ps.rebalance(ctx)
			}
		case l := <-ps.lost:
			if own := ps.owned[l.p]; own != nil && own.epoch == l.epoch {
				ps.log.Warn().Int("partition", l.p).Uint64("epoch", l.epoch).Msg("partition consumer is gone; claiming it again")
				ps.stop(l.p)
			}
			if caughtUp {
				ps.rebalance(ctx)
			}
		case <-beat.C:
			ps.heartbeat(ctx)
			if caughtUp {
				ps.rebalance(ctx)
				ps.sweep(ctx)
			}
		}
	}
}

// apply records one lease bucket entry in the view. Entries of the initial listing date from
// their server timestamps; later ones from now.
func (ps *partitionSet) apply(e jetstream.KeyValueEntry, initial bool) {
	key := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, memberKeyPrefix):
		id := strings.TrimPrefix(key, memberKeyPrefix)
		if deleted {
			delete(ps.seen, id)
			return
		}
		at := time.Now()
		if initial && e.Created().Before(at) {
			at = e.Created()
		}
		ps.seen[id] = at
	case strings.HasPrefix(key, partitionKeyPrefix):
		p, err := strconv.Atoi(strings.TrimPrefix(key, partitionKeyPrefix))
		if err != nil {
			return
		}
		if cur, ok := ps.leases[p]; ok && cur.rev >= e.Revision() {
			return // our own write, already recorded
		}
		if deleted {
			delete(ps.leases, p)
			return
		}
		var rec leaseRecord
		if json.Unmarshal(e.Value(), &rec) != nil {
			return
		}
		ps.leases[p] = leaseView{rec: rec, rev: e.Revision()}
	}
}

func (ps *partitionSet) heartbeat(ctx context.Context) {
	owned := make([]int, 0, len(ps.owned))
	for p := range ps.owned {
		owned = append(owned, p)
	}
	sort.Ints(owned)
	host, _ := os.Hostname()
	rec := memberRecord{ID: ps.member, Host: host, PID: os.Getpid(), Started: ps.started, Partitions: owned}
	cctx, cancel := context.WithTimeout(ctx, ps.ttl/2)
	defer cancel()
	if _, err := ps.kv.Put(cctx, memberKeyPrefix+ps.member, mustJSON(rec)); err != nil && ctx.Err() == nil {
		ps.log.Warn().Err(err).Msg("heartbeat failed")
	}
	ps.seen[ps.member] = time.Now()
}

// goneAfter is how long after its last heartbeat a member's key is deleted, in lease TTLs.
const goneAfter = 3

// sweep deletes the heartbeat keys of members gone for goneAfter lease TTLs (killed; a member
// that stops deletes its own), so that the bucket holds only live members. The first live
// member does it.
func (ps *partitionSet) sweep(ctx context.Context) {
	if ps.live()[0] != ps.member {
		return
	}
	now := time.Now()
	for id, at := range ps.seen {
		if id == ps.member || now.Sub(at) < goneAfter*ps.ttl {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, ps.ttl/2)
		err := ps.kv.Purge(cctx, memberKeyPrefix+id)
		cancel()
		if err != nil {
			ps.log.Debug().Err(err).Str("gone", id).Msg("deleting a gone member's heartbeat")
			continue
		}
		delete(ps.seen, id)
		ps.log.Info().Str("gone", id).Msg("deleted the heartbeat of a member gone for good")
	}
}

// live returns the members whose heartbeat is recent, sorted, this one included.
func (ps *partitionSet) live() []string {
	now := time.Now()
	out := []string{ps.member}
	for id, at := range ps.seen {
		if id != ps.member && now.Sub(at) < ps.ttl {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// rebalance moves this member towards its fair share of the partitions.
func (ps *partitionSet) rebalance(ctx context.Context) {
	n := ps.b.partitions
	live := ps.live()
	alive := make(map[string]bool, len(live))
	idx := 0
	for i, id := range live {
		alive[id] = true
		if id == ps.member {
			idx = i
		}
	}
	share := n / len(live)
	if idx < n%len(live) {
		share++
	}
	// Partitions taken over by another member: stop reading them (the new owner has deleted
	// our consumer, or is about to).
	for p, own := range ps.owned {
		if l, ok := ps.leases[p]; ok && (l.rec.Owner != ps.member || l.rec.Epoch != own.epoch) {
			ps.log.Info().Int("partition", p).Str("owner", l.rec.Owner).Msg("partition taken over")
			ps.stop(p)
		}
	}
	if extra := len(ps.owned) - share; extra > 0 {
		mine := make([]int, 0, len(ps.owned))
		for p := range ps.owned {
			mine = append(mine, p)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(mine)))
		for _, p := range mine[:extra] {
			ps.release(ctx, p)
		}
		ps.logOwned(len(live))
		return
	}
	// Start looking at a different place per member, so that members seldom race for one.
	first := idx * n / len(live)
	for i := 0; i < n && len(ps.owned) < share && ctx.Err() == nil; i++ {
		p := (first + i) % n
		if ps.owned[p] != nil {
			continue
		}
		l, exists := ps.leases[p]
		if exists && l.rec.Owner != "" && l.rec.Owner != ps.member && alive[l.rec.Owner] {
			continue
		}
		ps.claim(ctx, p, l, exists)
	}
	ps.logOwned(len(live))
}

// logOwned logs the partitions this member reads when they change.
func (ps *partitionSet) logOwned(members int) {
	owned := make([]int, 0, len(ps.owned))
	for p := range ps.owned {
		owned = append(owned, p)
	}
	sort.Ints(owned)
	if s := fmt.Sprint(owned); s != ps.logged {
		ps.logged = s
		ps.log.Info().Ints("partitions", owned).Int("members", members).Msg("reading partitions")
	}
}

// claim takes partition p by compare-and-set on its lease, then takes over its consumer.
func (ps *partitionSet) claim(ctx context.Context, p int, cur leaseView, exists bool) {
	cctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	epoch := ps.b.epochs.Add(1)
	rec := leaseRecord{Owner: ps.member, Epoch: epoch, At: time.Now().UTC()}
	key := partitionKeyPrefix + strconv.Itoa(p)
	var rev uint64
	var err error
	if exists {
		rev, err = ps.kv.Update(cctx, key, mustJSON(rec), cur.rev)
	} else {
		rev, err = ps.kv.Create(cctx, key, mustJSON(rec))
	}
	if err != nil {
		// Another member was faster (the watch will say who), or the server is unreachable.
		ps.log.Debug().Err(err).Int("partition", p).Msg("claiming partition")
		return
	}
	ps.leases[p] = leaseView{rec: rec, rev: rev}
	if exists && cur.rec.Owner != "" && cur.rec.Owner != ps.member {
		ps.log.Info().Int("partition", p).Str("from", cur.rec.Owner).Msg("took over partition of a dead member")
		// Forget the dead member's heartbeat key; it would only clutter the bucket.
		_ = ps.kv.Purge(cctx, memberKeyPrefix+cur.rec.Owner)
	}
	takeover := exists && cur.rec.Owner != "" && cur.rec.Owner != ps.member
	own, err := ps.consume(cctx, p, epoch, takeover)
	if err != nil {
		// The lease stays ours; the next rebalance tries again with a new epoch.
		ps.log.Warn().Err(err).Int("partition", p).Msg("taking over the partition's consumer")
		return
	}
	ps.owned[p] = own
	if takeover {
		go ps.b.watchPartitionTimers(ctx, p)
	}
	ps.b.opts.metrics.PartitionsOwned(len(ps.owned))
	ps.log.Debug().Int("partition", p).Uint64("epoch", epoch).Msg("partition claimed")
}

// consume deletes every consumer of partition p and creates and starts this member's own. After
// a takeover from a dead member, the messages stored before are marked suspect: that member may
// have taken them (deliveries.go).
func (ps *partitionSet) consume(ctx context.Context, p int, epoch uint64, takeover bool) (*ownership, error) {
	b := ps.b
	var suspectUpTo uint64
	if takeover {
		suspectUpTo = math.MaxUint64
		if info, err := b.inst.Info(ctx); err == nil {
			suspectUpTo = info.State.LastSeq
		}
	}
	prefix := PartitionConsumerPrefix(p)
	lister := b.inst.ConsumerNames(ctx)
	var stale []string
	for name := range lister.Name() {
		if strings.HasPrefix(name, prefix) {
			stale = append(stale, name)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing consumers: %w", err)
	}
	for _, name := range stale {
		if err := b.inst.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("deleting consumer %s: %w", name, err)
		}
	}
	name := b.names.PartitionConsumer(p, ps.member, epoch)
	cons, err := b.inst.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Name:              name,
		Description:       "jetflow: partition " + strconv.Itoa(p) + " of the orchestration inbox",
		FilterSubjects:    ps.filters(p),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           b.opts.inboxAckWait,
		MaxDeliver:        -1,
		MaxAckPending:     max(b.opts.maxAckPending/b.partitions, 1000),
		InactiveThreshold: max(10*ps.ttl, time.Minute),
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", name, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		m := b.inboxMessage(msg)
		m.epoch = epoch
		m.suspect = m.seq <= suspectUpTo
		ps.handle(m)
	}, jetstream.PullMaxMessages(b.opts.fetchBatch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			select {
			case ps.lost <- lostPartition{p: p, epoch: epoch}:
			default:
			}
			return
		}
		b.log.Debug().Err(err).Int("partition", p).Msg("inbox consumer")
	}))
	if err != nil {
		_ = b.inst.DeleteConsumer(ctx, name)
		return nil, fmt.Errorf("consuming %s: %w", name, err)
	}
	return &ownership{epoch: epoch, consumer: name, cc: cc}, nil
}

// filters returns the subjects partition p's consumer reads. Partition 0's also takes the
// instance messages the transform left alone, whose subjects have no instance ID and kind
// (jetflow.inst.x): they are dead-lettered rather than left in the stream for ever.
func (ps *partitionSet) filters(p int) []string {
	if p == 0 {
		return []string{ps.b.names.PartitionFilter(p), ps.b.names.InstanceSubjects()}
	}
	return []string{ps.b.names.PartitionFilter(p)}
}

// stop stops reading partition p and returns what it was, nil if p was not read.
func (ps *partitionSet) stop(p int) *ownership {
	own := ps.owned[p]
	if own != nil {
		own.cc.Stop()
		delete(ps.owned, p)
		ps.b.opts.metrics.PartitionsOwned(len(ps.owned))
	}
	return own
}

// release hands partition p back: its consumer is deleted (what it delivered and we did not ack
// goes to the next owner) and its lease marked free.
func (ps *partitionSet) release(ctx context.Context, p int) {
	if own := ps.stop(p); own != nil {
		ps.free(ctx, p, own)
	}
}

// free deletes a stopped ownership's consumer and marks its lease free.
func (ps *partitionSet) free(ctx context.Context, p int, own *ownership) {
	cctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := ps.b.inst.DeleteConsumer(cctx, own.consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		ps.log.Debug().Err(err).Int("partition", p).Msg("deleting released consumer")
	}
	l, ok := ps.leases[p]
	if !ok || l.rec.Owner != ps.member || l.rec.Epoch != own.epoch {
		return
	}
	rec := leaseRecord{Owner: "", Epoch: own.epoch, At: time.Now().UTC()}
	rev, err := ps.kv.Update(cctx, partitionKeyPrefix+strconv.Itoa(p), mustJSON(rec), l.rev)
	if err != nil {
		ps.log.Debug().Err(err).Int("partition", p).Msg("releasing partition")
		return
	}
	ps.leases[p] = leaseView{rec: rec, rev: rev}
	ps.log.Debug().Int("partition", p).Msg("partition released")
}

// releaseAll hands every partition back and withdraws the heartbeat, so that the other members
// take over without waiting for a TTL.
func (ps *partitionSet) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped := map[int]*ownership{}
	for p := range ps.owned {
		stopped[p] = ps.stop(p)
	}
	for p, own := range stopped {
		<-own.cc.Closed()
		ps.free(ctx, p, own)
	}
	if err := ps.kv.Delete(ctx, memberKeyPrefix+ps.member); err != nil {
		ps.log.Debug().Err(err).Msg("withdrawing heartbeat")
	}
}

// consumeShared delivers every instance message through one consumer shared by all workers
// (testhooks.Hooks.SharedInbox).
func (b *Backend) consumeShared(ctx context.Context, handle func(inboxMessage)) error {
	cctx, cancel := withDefaultTimeout(ctx)
	cons, err := b.inst.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		Durable:        "shared",
		Description:    "jetflow: the orchestration inbox, shared by all workers",
		FilterSubjects: []string{b.names.PartitionSubjects(), b.names.InstanceSubjects()},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.opts.inboxAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  b.opts.maxAckPending,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("creating the shared inbox consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { handle(b.inboxMessage(msg)) },
		jetstream.PullMaxMessages(b.opts.fetchBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.log.Debug().Err(err).Msg("shared inbox consumer")
		}))
	if err != nil {
		return fmt.Errorf("consuming the shared inbox: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}
