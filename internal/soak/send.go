package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// sendTimeout bounds the retries of one confirmed send (HTTP, queue publish, start).
const sendTimeout = 90 * time.Second

// sender starts instances and raises their events through every channel.
type sender struct {
	client  *engine.Client
	nc      *nats.Conn // publishes like `nats pub`
	js      jetstream.JetStream
	names   natsjs.Names
	http    *http.Client
	apiBase string

	sent    [channels]atomic.Int64 // events sent, by channel
	retries atomic.Int64           // confirmed sends tried again after an error
	resent  atomic.Int64           // unconfirmed publishes sent again (settle phase)
	// resentDup counts the resends the stream dropped as duplicates: it had the first publish.
	resentDup atomic.Int64
	began     time.Time
	pubMu     sync.Mutex
	pubAt     map[string]time.Duration // event ID -> when it was first published, since began
	gone      atomic.Int64             // HTTP retries answered 410 (the first try had been applied)
	errMu     sync.Mutex
	errs      []string // sends that failed for good
}

// failed records a send that failed for good.
func (s *sender) failed(err error) {
	s.errMu.Lock()
	s.errs = append(s.errs, err.Error())
	s.errMu.Unlock()
}

// retry calls try until it succeeds, returns a permanent error, or sendTimeout passes.
func (s *sender) retry(ctx context.Context, what string, try func(ctx context.Context, attempt int) (retry bool, err error)) error {
	deadline := time.Now().Add(sendTimeout)
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		again, err := try(actx, attempt)
		cancel()
		if err == nil || !again {
			return err
		}
		if ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		s.retries.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 3*time.Second)
	}
}

// start starts p's instance with the Go client; a retry that finds it exists has succeeded.
func (s *sender) start(ctx context.Context, p *plan) error {
	return s.retry(ctx, "starting "+p.ID, func(ctx context.Context, attempt int) (bool, error) {
		_, err := s.client.ScheduleNew(ctx, p.Orch, engine.WithInstanceID(p.ID), engine.WithInput(p.Input))
		if errors.Is(err, engine.ErrInstanceExists) {
			if attempt > 1 {
				return false, nil // an earlier attempt started it
			}
			return false, err
		}
		return true, err
	})
}

// raise sends e to instance id through e.Via.
func (s *sender) raise(ctx context.Context, id string, e event) error {
	s.sent[e.Via].Add(1)
	switch e.Via {
	case viaHTTP:
		return s.raiseHTTP(ctx, id, e)
	case viaPublish:
		return s.publish(id, e)
	case viaQueue:
		body := mustJSON(map[string]any{"instanceId": id, "eventName": e.Name, "eventData": e.Data})
		return s.jsPublish(ctx, notifyQueue, body, e.ID)
	default:
		return s.jsPublish(ctx, approvalQueue, []byte(id), e.ID)
	}
}

// publish is `nats pub -H Nats-Msg-Id:<event ID> jetflow.inst.<id>.event.<name> <data>`: a core
// NATS publish, not acknowledged.
func (s *sender) publish(id string, e event) error {
	subject, err := s.eventSubject(id, e.Name)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = e.Data
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	s.pubMu.Lock()
	s.pubAt[e.ID] = time.Since(s.began)
	s.pubMu.Unlock()
	if err := s.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("publishing %s: %w", subject, err)
	}
	return nil
}

// publishedAt says when an event was first published, in seconds since the run began.
func (s *sender) publishedAt(id string) string {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return fmt.Sprintf("at %.1fs", s.pubAt[id].Seconds())
}

func (s *sender) eventSubject(id, name string) (string, error) {
	idTok, err := natsjs.EncodeInstanceID(id)
	if err != nil {
		return "", err
	}
	nameTok, err := natsjs.EncodeEventName(name)
	if err != nil {
		return "", err
	}
	return s.names.EventSubject(idTok, nameTok), nil
}

// jsPublish publishes to a JetStream subject with a message ID and waits for the ack, retrying.
func (s *sender) jsPublish(ctx context.Context, subject string, body []byte, msgID string) error {
	return s.retry(ctx, "publishing to "+subject, func(ctx context.Context, _ int) (bool, error) {
		msg := nats.NewMsg(subject)
		msg.Data = body
		if msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		_, err := s.js.PublishMsg(ctx, msg)
		return true, err
	})
}

// raiseHTTP posts the event to the API's raiseEvent endpoint. 202 is success; 410 on a retry
// means the first try was applied and completed the instance (the history check tells).
func (s *sender) raiseHTTP(ctx context.Context, id string, e event) error {
	url := fmt.Sprintf("%s/instances/%s/raiseEvent/%s", s.apiBase, id, e.Name)
	return s.retry(ctx, "POST "+url, func(ctx context.Context, attempt int) (bool, error) {
		code, body, err := s.post(ctx, url, e.Data, e.ID)
		switch {
		case err != nil:
			return true, err
		case code == http.StatusAccepted:
			return false, nil
		case code == http.StatusGone && attempt > 1:
			s.gone.Add(1)
			return false, nil
		case code >= 500 || code == http.StatusTooManyRequests:
			return true, fmt.Errorf("HTTP %d: %s", code, body)
		default:
			return false, fmt.Errorf("HTTP %d: %s", code, body)
		}
	})
}

// post sends a JSON body with an event ID and returns the status and the body.
func (s *sender) post(ctx context.Context, url string, data []byte, eventID string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if eventID != "" {
		req.Header.Set(engine.HeaderEventID, eventID)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(bytes.TrimSpace(b)), nil
}
