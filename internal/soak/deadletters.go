package soak

import (
	"context"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
)

// deadLetterCheck compares the dead-letter stream with the deliberate bad inputs.
type deadLetterCheck struct {
	Total      int      // dead letters in the stream
	Deliberate int      // those that the deliberate bad inputs explain
	Unexpected []string // the others, described
	Missing    []string // deliberate bad inputs that left no dead letter
}

// Count is what the last line reports: every dead letter that differs from the deliberate set.
func (d deadLetterCheck) Count() int { return len(d.Unexpected) + len(d.Missing) }

// checkDeadLetters reads every dead letter and matches it against expected.
func checkDeadLetters(ctx context.Context, b *natsjs.Backend, expected map[string]int) (deadLetterCheck, error) {
	var d deadLetterCheck
	left := map[string]int{}
	for k, n := range expected {
		left[k] = n
	}
	var after uint64
	for {
		page, err := b.DeadLetters(ctx, after, 200)
		if err != nil {
			return d, fmt.Errorf("reading the dead letters: %w", err)
		}
		for _, dl := range page {
			d.Total++
			after = dl.Position
			key := dlKey(dl.Source, dl.Data)
			if left[key] > 0 {
				left[key]--
				d.Deliberate++
				continue
			}
			d.Unexpected = append(d.Unexpected, fmt.Sprintf("#%d source=%s queue=%s subject=%s reason=%q data=%.120q",
				dl.Position, dl.Source, dl.Queue, dl.Subject, dl.Reason, dl.Data))
		}
		if len(page) < 200 {
			break
		}
	}
	for k, n := range left {
		for range n {
			d.Missing = append(d.Missing, k)
		}
	}
	return d, nil
}
