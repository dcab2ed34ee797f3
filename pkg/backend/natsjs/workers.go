package natsjs

// The worker registry: KV bucket jetflow-workers, one key per live worker (its ID) holding the
// backend.WorkerInfo it announces. The bucket has a TTL (WithWorkerTTL) and limit markers: a
// worker refreshes its key every third of the TTL; a killed worker's key expires and watchers
// see it go; a worker that stops cleanly deletes its key.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// WithWorkerTTL sets how long a worker's entry in the worker registry outlives its last refresh,
// at least MinWorkerTTL (default DefaultWorkerTTL, 15s). It applies when the bucket is created;
// workers refresh their entries every third of the bucket's TTL.
func WithWorkerTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < MinWorkerTTL {
			return fmt.Errorf("%w: worker TTL must be >= %s, got %s", ErrInvalidOption, MinWorkerTTL, d)
		}
		o.workerTTL = d
		return nil
	}
}

// workerBucket binds the worker registry, creating it if it is missing.
func (b *Backend) workerBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return b.bucket(ctx, jetstream.KeyValueConfig{
		Bucket:         b.names.WorkerBucket(),
		Description:    "jetflow: live workers and the orchestrators and activities they serve",
		TTL:            b.opts.workerTTL,
		LimitMarkerTTL: b.opts.workerTTL,
	})
}

// RegisterWorker implements backend.WorkerRegistry.
func (b *Backend) RegisterWorker(ctx context.Context, info backend.WorkerInfo) (<-chan struct{}, error) {
	kv, err := b.workerBucket(ctx)
	if err != nil {
		return nil, err
	}
	ttl := b.opts.workerTTL
	sctx, cancel := withDefaultTimeout(ctx)
	if st, err := kv.Status(sctx); err == nil && st.TTL() > 0 {
		ttl = st.TTL() // the bucket's, which an earlier worker may have set
	}
	cancel()
	data := mustJSON(info)
	put := func() error {
		pctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		_, err := kv.Put(pctx, info.ID, data)
		return err
	}
	if err := put(); err != nil {
		return nil, fmt.Errorf("registering worker %s in %s: %w", info.ID, b.names.WorkerBucket(), err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		refresh := time.NewTicker(ttl / 3)
		defer refresh.Stop()
		for {
			select {
			case <-ctx.Done():
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
				if err := kv.Delete(dctx, info.ID); err != nil {
					b.log.Warn().Err(err).Str("worker", info.ID).Msg("removing the worker from the registry; it expires")
				}
				cancel()
				return
			case <-refresh.C:
				if err := put(); err != nil && ctx.Err() == nil {
					b.log.Warn().Err(err).Str("worker", info.ID).Msg("refreshing the worker's registry entry")
				}
			}
		}
	}()
	return done, nil
}

// bindWorkers binds the worker registry without creating it (clients may not); nil if it does
// not exist yet (no worker ever registered).
func (b *Backend) bindWorkers(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := b.js.KeyValue(ctx, b.names.WorkerBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", b.names.WorkerBucket(), err)
	}
	return kv, nil
}

// Workers implements backend.WorkerRegistry.
func (b *Backend) Workers(ctx context.Context) ([]backend.WorkerInfo, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := b.bindWorkers(ctx)
	if kv == nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", b.names.WorkerBucket(), err)
	}
	defer w.Stop()
	live := workerSet{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("reading %s: the watch ended", b.names.WorkerBucket())
			}
			if e == nil {
				return live.sorted(), nil
			}
			b.applyWorker(live, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %s: %w", b.names.WorkerBucket(), ctx.Err())
		}
	}
}

// workersRetry is how often WatchWorkers looks for a worker registry that does not exist yet.
const workersRetry = time.Second

// WatchWorkers implements backend.WorkerRegistry. Until the registry exists, it reports no
// workers and looks for it every workersRetry.
func (b *Backend) WatchWorkers(ctx context.Context) (<-chan []backend.WorkerInfo, error) {
	kv, err := b.bindWorkers(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan []backend.WorkerInfo, 1)
	go func() {
		defer close(out)
		if kv == nil {
			if !sendLatest(ctx, out, nil) {
				return
			}
			for kv == nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(workersRetry):
				}
				if kv, err = b.bindWorkers(ctx); err != nil {
					return
				}
			}
		}
		b.watchWorkers(ctx, kv, out)
	}()
	return out, nil
}

// watchWorkers sends the live workers of kv on out after its initial listing and after every
// change, until ctx ends or the watch fails.
func (b *Backend) watchWorkers(ctx context.Context, kv jetstream.KeyValue, out chan []backend.WorkerInfo) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		b.log.Warn().Err(err).Msg("watching the worker registry")
		return
	}
	defer w.Stop()
	live := workerSet{}
	caughtUp := false
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				caughtUp = true
			} else {
				b.applyWorker(live, e)
			}
			if caughtUp && !sendLatest(ctx, out, live.sorted()) {
				return
			}
		}
	}
}

// sendLatest sends v on out, replacing a value not yet taken (the latest list is all that counts).
func sendLatest(ctx context.Context, out chan []backend.WorkerInfo, v []backend.WorkerInfo) bool {
	select {
	case <-out:
	default:
	}
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// workerSet is the live workers by ID.
type workerSet map[string]backend.WorkerInfo

// applyWorker records one registry entry: a put adds or replaces the worker, a delete or an
// expiry removes it. An entry that does not decode is skipped.
func (b *Backend) applyWorker(live workerSet, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(live, e.Key())
		return
	}
	var info backend.WorkerInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil || info.ID != e.Key() {
		b.log.Warn().Str("key", e.Key()).Msg("worker registry entry is not a worker record: skipped")
		return
	}
	live[e.Key()] = info
}

func (s workerSet) sorted() []backend.WorkerInfo {
	out := make([]backend.WorkerInfo, 0, len(s))
	for _, w := range s {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
