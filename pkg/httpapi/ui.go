package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/timeline"
)

// The endpoints below are jetflow's own (not in Durable Functions); the web UI reads them.
//
//	GET instances/{instanceId}/timeline   the current generation's history as a timeline.Timeline
//	GET deadletters?after=&top=           dead letters, oldest first: {"deadLetters": [...],
//	                                      "next": N} (next, when present, is the after of the
//	                                      next page); top defaults to 100, at most 1000

// DeadLetterLister is what GET deadletters needs of the client; *engine.Client has it. With a
// Client that lacks it the endpoint answers 501.
type DeadLetterLister interface {
	DeadLetters(ctx context.Context, after uint64, n int) ([]engine.DeadLetter, error)
}

var _ DeadLetterLister = (*engine.Client)(nil)

// The page size of GET deadletters: by default, and at most.
const (
	defaultDeadLetterTop = 100
	maxDeadLetterTop     = 1000
)

// timeline answers the timeline of an instance's current generation; 404 if there is none.
func (a *api) timeline(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("instanceId")
	if !checkName(w, "instance ID", id) {
		return
	}
	events, err := a.c.GetHistory(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, timeline.Build(events))
}

// DeadLetterResponse is one dead letter as GET deadletters lists it: the stored record and
// its position.
type DeadLetterResponse struct {
	Position uint64 `json:"position"`
	engine.DeadLetter
}

// DeadLettersPage is the body of GET deadletters.
type DeadLettersPage struct {
	DeadLetters []DeadLetterResponse `json:"deadLetters"`
	// Next, when not 0, is the after parameter of the next page.
	Next uint64 `json:"next,omitempty"`
}

func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	lister, ok := a.c.(DeadLetterLister)
	if !ok {
		writeError(w, http.StatusNotImplemented, "NotImplemented", "this API's client does not list dead letters")
		return
	}
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "'after' must be a position (an unsigned integer), got "+strconv.Quote(s))
			return
		}
		after = n
	}
	top := defaultDeadLetterTop
	if s := q.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "BadRequest", "'top' must be a positive integer, got "+strconv.Quote(s))
			return
		}
		top = min(n, maxDeadLetterTop)
	}
	letters, err := lister.DeadLetters(r.Context(), after, top)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := DeadLettersPage{DeadLetters: make([]DeadLetterResponse, len(letters))}
	for i, d := range letters {
		page.DeadLetters[i] = DeadLetterResponse{Position: d.Position, DeadLetter: d}
	}
	if len(letters) == top {
		page.Next = letters[len(letters)-1].Position
	}
	writeJSON(w, http.StatusOK, page)
}
