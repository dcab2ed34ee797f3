package natsjs

// Listing instances: the state bucket's keys, sorted by instance ID, paged by the last ID.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend"
)

// ListInstances implements backend.Backend.
//
// Cost: every page lists all the keys of the state bucket (O(instances) key listing, metadata
// only) and sorts them by instance ID, then reads the states after the continuation token one
// by one until Top of them match. A selective filter (status, time) may read many states for
// one page; an IDPrefix is applied to the keys, before any state is read. The listing is not a
// snapshot: instances created or purged while paging may or may not appear, but none that
// exists throughout is returned twice or skipped.
//
// The continuation token is the base64url encoding of the last instance ID returned. It returns
// [backend.ErrBadContinuationToken] for a token that does not decode to an instance ID, and
// wraps the JetStream error if the keys or a state cannot be read (ctx ending included).
func (b *Backend) ListInstances(ctx context.Context, q backend.Query) (backend.Page, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	after, err := backend.DecodeContinuation(q.ContinuationToken)
	if err != nil {
		return backend.Page{}, err
	}
	ids, err := b.instanceIDs(ctx)
	if err != nil {
		return backend.Page{}, err
	}
	top := q.PageSize()
	page := backend.Page{Instances: []*backend.Instance{}}
	for i, id := range ids {
		if after != "" && id <= after {
			continue
		}
		if q.IDPrefix != "" && !strings.HasPrefix(id, q.IDPrefix) {
			continue
		}
		s, err := b.GetInstance(ctx, id)
		if errors.Is(err, backend.ErrInstanceNotFound) {
			continue // purged since the listing
		}
		if err != nil {
			return backend.Page{}, fmt.Errorf("listing instances: %w", err)
		}
		if !q.Matches(s) {
			continue
		}
		page.Instances = append(page.Instances, s)
		if len(page.Instances) == top {
			if more := slices.ContainsFunc(ids[i+1:], func(next string) bool {
				return q.IDPrefix == "" || strings.HasPrefix(next, q.IDPrefix)
			}); more {
				page.ContinuationToken = backend.EncodeContinuation(id)
			}
			break
		}
	}
	return page, nil
}

// instanceIDs returns the decoded IDs of the instances with records, sorted.
func (b *Backend) instanceIDs(ctx context.Context) ([]string, error) {
	info, err := b.hist.Info(ctx, jetstream.WithSubjectFilter(b.names.HistorySubjects()))
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	prefix := strings.TrimSuffix(b.names.HistorySubjects(), ">")
	ids := make([]string, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		id, err := DecodeToken(strings.TrimPrefix(subject, prefix))
		if err != nil {
			b.log.Warn().Str("subject", subject).Err(err).Msg("ignoring a history subject that is not an instance's")
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
