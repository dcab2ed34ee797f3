package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// InventoryBucketName is the KV bucket that holds the stock: one key per item, whose value is the
// number of items in stock as a decimal string, so an operator can read and set it with
// `nats kv get jetflow-inventory widget` / `nats kv put jetflow-inventory widget 10`. A missing key
// means no stock.
const InventoryBucketName = "jetflow-inventory"

// defaultTimeout bounds the inventory calls whose context has no deadline.
const defaultTimeout = 10 * time.Second

// maxConflicts bounds the compare-and-set retries of one stock update.
const maxConflicts = 100

// InventoryBucket creates the inventory bucket (file storage, replicas copies), or updates its
// configuration if it exists, and returns it.
func InventoryBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if replicas < 1 {
		return nil, fmt.Errorf("inventory bucket: replicas must be >= 1, got %d", replicas)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      InventoryBucketName,
		Description: "jetflow examples: items in stock, one key per item",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", InventoryBucketName, err)
	}
	return kv, nil
}

// Restock adds qty (> 0) items to the stock of item.
func Restock(ctx context.Context, kv jetstream.KeyValue, item string, qty int) error {
	if err := checkItem(item); err != nil {
		return err
	}
	if qty <= 0 {
		return fmt.Errorf("restocking %q: quantity must be > 0, got %d", item, qty)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	err := updateStock(ctx, kv, item, func(stock int) (int, bool) { return stock + qty, true })
	if err != nil {
		return fmt.Errorf("restocking %d × %q: %w", qty, item, err)
	}
	return nil
}

// Stock returns the number of items in stock (0 if the item has no key).
func Stock(ctx context.Context, kv jetstream.KeyValue, item string) (int, error) {
	if err := checkItem(item); err != nil {
		return 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stock, _, err := readStock(ctx, kv, item)
	return stock, err
}

// noLeaderWait is how long updateStock waits before trying again after a request that no
// stream answered: the bucket has no leader for a few seconds after a server of a cluster dies.
const noLeaderWait = 250 * time.Millisecond

// updateStock applies change to the stock of item with a compare-and-set on the key's revision,
// reading again and retrying when another writer got there first, or when no stream answered
// (nothing was read or written then), until ctx ends. change returns the new stock and whether
// to write it.
func updateStock(ctx context.Context, kv jetstream.KeyValue, item string, change func(stock int) (int, bool)) error {
	for range maxConflicts {
		stock, rev, err := readStock(ctx, kv, item)
		if err == nil {
			next, write := change(stock)
			if !write {
				return nil
			}
			value := []byte(strconv.Itoa(next))
			if rev == 0 {
				_, err = kv.Create(ctx, item, value)
			} else {
				_, err = kv.Update(ctx, item, value, rev)
			}
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			continue // someone else wrote it first: read again
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			select { // no leader (a server died): try again shortly
			case <-ctx.Done():
				return err
			case <-time.After(noLeaderWait):
			}
		default:
			return err
		}
	}
	return fmt.Errorf("stock of %q: still conflicting after %d attempts", item, maxConflicts)
}

// readStock returns the stock of item and the key's revision (0 if it has none).
func readStock(ctx context.Context, kv jetstream.KeyValue, item string) (int, uint64, error) {
	entry, err := kv.Get(ctx, item)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("reading the stock of %q: %w", item, err)
	}
	stock, err := strconv.Atoi(strings.TrimSpace(string(entry.Value())))
	if err != nil || stock < 0 {
		return 0, 0, fmt.Errorf("the stock of %q is %q, not a number >= 0", item, entry.Value())
	}
	return stock, entry.Revision(), nil
}

// checkItem accepts item names that are KV keys with no hierarchy: letters, digits, '-', '_', '='.
func checkItem(item string) error {
	if item == "" {
		return errors.New("the item name is empty")
	}
	if len(item) > 256 {
		return fmt.Errorf("the item name %.20q... is longer than 256 bytes", item)
	}
	for _, c := range []byte(item) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
		if !ok {
			return fmt.Errorf("item name %q: only letters, digits, '-', '_' and '=' are allowed", item)
		}
	}
	return nil
}

// withDefaultTimeout applies defaultTimeout to a context without a deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}
