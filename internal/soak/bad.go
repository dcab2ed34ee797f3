package soak

import (
	"context"
	"fmt"
	"net/http"
	"sync"
)

// The deliberate bad inputs, sent before a BudgetApproval instance's event.
const (
	badNone    = iota
	badInbox   // malformed JSON published to the instance's event subject: dead letter "inbox"
	badQueue   // a malformed notification on the raiser's queue: dead letter "raiser"
	badUnknown // a notification for an instance that does not exist: dead letter "raiser"
	badHTTP    // malformed JSON to raiseEvent over HTTP: answered 400, no dead letter
	badKinds
)

// badInputs are the deliberate bad inputs sent, and the dead letters they must leave.
type badInputs struct {
	mu       sync.Mutex
	expected map[string]int // "<source>|<data>" -> dead letters expected
	httpBad  []string       // bad HTTP requests not answered 400
	sent     int
}

func dlKey(source, data string) string { return source + "|" + data }

// markBad gives a few BudgetApproval plans (at least one of each kind, about one in 250
// instances) a deliberate bad input.
func markBad(plans []*plan) {
	var budget []*plan
	for _, p := range plans {
		if p.Orch == "BudgetApproval" {
			budget = append(budget, p)
		}
	}
	count := max(badKinds-1, len(plans)/250)
	for k := 0; k < count && k < len(budget); k++ {
		budget[k*len(budget)/count].Bad = 1 + k%(badKinds-1)
	}
}

// send sends p's bad input and records what it must leave.
func (b *badInputs) send(ctx context.Context, s *sender, p *plan) error {
	var source, data string
	var err error
	switch p.Bad {
	case badInbox:
		source, data = "inbox", fmt.Sprintf(`{"soak-bad": %q`, p.ID)
		var subject string
		if subject, err = s.eventSubject(p.ID, "Approval"); err == nil {
			err = s.jsPublish(ctx, subject, []byte(data), "")
		}
	case badQueue:
		source, data = "raiser", fmt.Sprintf(`{"instanceId": %q, "soak-bad"`, p.ID)
		err = s.jsPublish(ctx, notifyQueue, []byte(data), "")
	case badUnknown:
		source = "raiser"
		data = string(mustJSON(map[string]any{"instanceId": "nobody-" + p.ID, "eventName": "Approval", "eventData": true}))
		err = s.jsPublish(ctx, notifyQueue, []byte(data), "")
	case badHTTP:
		return b.sendHTTP(ctx, s, p)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("bad input for %s: %w", p.ID, err)
	}
	b.mu.Lock()
	b.expected[dlKey(source, data)]++
	b.sent++
	b.mu.Unlock()
	return nil
}

// sendHTTP posts malformed JSON to raiseEvent; the API must answer 400.
func (b *badInputs) sendHTTP(ctx context.Context, s *sender, p *plan) error {
	url := fmt.Sprintf("%s/instances/%s/raiseEvent/Approval", s.apiBase, p.ID)
	var code int
	var body string
	err := s.retry(ctx, "bad POST "+url, func(ctx context.Context, _ int) (bool, error) {
		var err error
		code, body, err = s.post(ctx, url, []byte(`{"soak-bad"`), "")
		if err == nil && code >= 500 {
			err = fmt.Errorf("HTTP %d: %s", code, body)
		}
		return true, err
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent++
	if err == nil && code != http.StatusBadRequest {
		b.httpBad = append(b.httpBad, fmt.Sprintf("%s: HTTP %d %s", p.ID, code, body))
	}
	return err
}
