package natsjs

// What an operator looks at and does: the workers, the partitions and who owns them, consumer
// lag, and the dead letters (read one, replay it, delete them).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// ClusterStatus is what the workers of a deployment are doing.
type ClusterStatus struct {
	// Members are the live workers (their heartbeat is younger than the lease TTL), by ID.
	Members []Member
	// Partitions are the owners of the instance partitions, by partition; Owner is "" if the
	// partition is free or its owner is gone.
	Partitions []PartitionOwner
	// Consumers are the consumers of the instance and activity streams, with their lag.
	Consumers []ConsumerLag
	// DeadLetters counts the records in the dead-letter stream.
	DeadLetters uint64
}

// Member is a live worker.
type Member struct {
	ID         string
	Host       string
	PID        int
	Started    time.Time
	LastSeen   time.Time // its last heartbeat, by the server's clock
	Partitions []int
}

// PartitionOwner is who reads a partition.
type PartitionOwner struct {
	Partition int
	Owner     string
	Epoch     uint64
}

// ConsumerLag is a consumer and what it has yet to deliver or to be acked for.
type ConsumerLag struct {
	Stream, Name string
	Pending      uint64 // not delivered yet
	AckPending   int    // delivered, not acked
	Redelivered  int
}

// ClusterStatus reads the lease bucket, the consumers and the dead-letter stream. Members whose
// heartbeat is older than the lease TTL (gone) are left out, and so are their partitions' owners.
func (b *Backend) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	st := &ClusterStatus{}
	kv, err := b.leaseBucket(ctx)
	if err != nil {
		return nil, err
	}
	if st.Members, err = b.liveMembers(ctx, kv); err != nil {
		return nil, err
	}
	if st.Partitions, err = b.partitionOwners(ctx, kv, st.Members); err != nil {
		return nil, err
	}
	for _, name := range []string{b.names.InstanceStream(), b.names.ActivityStream()} {
		lags, err := b.consumerLags(ctx, name)
		if err != nil {
			return nil, err
		}
		st.Consumers = append(st.Consumers, lags...)
	}
	dlq, err := b.js.Stream(ctx, b.names.DeadLetterStream())
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", b.names.DeadLetterStream(), err)
	}
	st.DeadLetters = dlq.CachedInfo().State.Msgs
	return st, nil
}

// liveMembers returns the members whose heartbeat is younger than the lease TTL, by ID.
func (b *Backend) liveMembers(ctx context.Context, kv jetstream.KeyValue) ([]Member, error) {
	keys, err := kv.ListKeysFiltered(ctx, memberKeyPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	var out []Member
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue // withdrawn or swept since the listing
		}
		var rec memberRecord
		if json.Unmarshal(e.Value(), &rec) != nil || time.Since(e.Created()) > b.opts.leaseTTL {
			continue
		}
		out = append(out, Member{ID: rec.ID, Host: rec.Host, PID: rec.PID, Started: rec.Started, LastSeen: e.Created(), Partitions: rec.Partitions})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// partitionOwners returns each partition's owner among the live members.
func (b *Backend) partitionOwners(ctx context.Context, kv jetstream.KeyValue, live []Member) ([]PartitionOwner, error) {
	alive := map[string]bool{}
	for _, m := range live {
		alive[m.ID] = true
	}
	out := make([]PartitionOwner, b.partitions)
	for p := range out {
		out[p].Partition = p
		e, err := kv.Get(ctx, partitionKeyPrefix+strconv.Itoa(p))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the lease of partition %d: %w", p, err)
		}
		var rec leaseRecord
		if json.Unmarshal(e.Value(), &rec) == nil && alive[rec.Owner] {
			out[p].Owner, out[p].Epoch = rec.Owner, rec.Epoch
		}
	}
	return out, nil
}

// consumerLags returns the consumers of stream with their lag, by name.
func (b *Backend) consumerLags(ctx context.Context, stream string) ([]ConsumerLag, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", stream, err)
	}
	var out []ConsumerLag
	lister := s.ListConsumers(ctx)
	for info := range lister.Info() {
		out = append(out, ConsumerLag{Stream: stream, Name: info.Name, Pending: info.NumPending,
			AckPending: info.NumAckPending, Redelivered: info.NumRedelivered})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing the consumers of %s: %w", stream, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeadLetter returns the dead letter at position (its sequence in the dead-letter stream); it
// returns an error wrapping jetstream.ErrMsgNotFound if there is none.
func (b *Backend) DeadLetter(ctx context.Context, position uint64) (*backend.DeadLetter, error) {
	if position == 0 {
		return nil, fmt.Errorf("dead letter 0: %w", jetstream.ErrMsgNotFound)
	}
	letters, err := b.DeadLetters(ctx, position-1, 1)
	if err != nil {
		return nil, err
	}
	if len(letters) == 0 || letters[0].Position != position {
		return nil, fmt.Errorf("dead letter %d: %w", position, jetstream.ErrMsgNotFound)
	}
	return &letters[0], nil
}

// ReplayDeadLetter publishes the message of the dead letter at position again, to the subject
// it was first published to, and deletes the dead letter. Headers are not kept in dead letters,
// so a replayed event has no event ID. A message that was dead-lettered for what it holds is
// dead-lettered again.
func (b *Backend) ReplayDeadLetter(ctx context.Context, position uint64) error {
	d, err := b.DeadLetter(ctx, position)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(d.Subject, b.names.Prefix()+".") {
		return fmt.Errorf("dead letter %d came from %q, not a jetflow subject: replay it from its queue", position, d.Subject)
	}
	data := []byte(d.Data)
	if d.DataB64 != nil {
		data = d.DataB64
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: d.Subject, Data: data}); err != nil {
		return fmt.Errorf("replaying dead letter %d to %s: %w", position, d.Subject, err)
	}
	return b.DeleteDeadLetters(ctx, position)
}

// DeleteDeadLetters deletes the dead letters at positions, or every dead letter if none is
// given.
func (b *Backend) DeleteDeadLetters(ctx context.Context, positions ...uint64) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	s, err := b.js.Stream(ctx, b.names.DeadLetterStream())
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", b.names.DeadLetterStream(), err)
	}
	if len(positions) == 0 {
		if err := s.Purge(ctx); err != nil {
			return fmt.Errorf("purging the dead letters: %w", err)
		}
		return nil
	}
	for _, p := range positions {
		if err := s.DeleteMsg(ctx, p); err != nil {
			return fmt.Errorf("deleting dead letter %d: %w", p, err)
		}
	}
	return nil
}
