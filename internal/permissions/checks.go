package permissions

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
)

// Check is one thing a role must be able to do (Allowed) or must be refused.
type Check struct {
	Role    string
	Allowed bool
	What    string
	run     func(ctx context.Context, r *Run) error
}

// Result is the outcome of a check: Err is nil if it passed.
type Result struct {
	Check Check
	Err   error
}

// String is the check's line in a report, e.g. "PASS  api        may      start an instance".
func (r Result) String() string {
	verdict, may := "PASS", "may    "
	if r.Err != nil {
		verdict = "FAIL"
	}
	if !r.Check.Allowed {
		may = "may not"
	}
	line := fmt.Sprintf("%s  %-10s %s %s", verdict, r.Check.Role, may, r.Check.What)
	if r.Err != nil {
		line += ": " + r.Err.Error()
	}
	return line
}

// Run is one run of the checks against a server: the roles' connections and what the checks
// share (the worker they start, the instances they create).
type Run struct {
	f     *Fixture
	url   string
	log   zerolog.Logger
	conns map[string]*conn
	// clients are the engine clients of api and raiser.
	clients map[string]*engine.Client
	// stopWorker stops the worker the first check starts; workerDone reports its end.
	stopWorker context.CancelFunc
	workerDone chan error
}

// Checks returns every check, in the order they run: the allowed ones build on each other (the
// worker first, as it creates jetflow's streams).
func Checks() []Check {
	var all []Check
	all = append(all, allowedChecks()...)
	all = append(all, forbiddenChecks()...)
	all = append(all, connectionChecks()...)
	return all
}

// RunChecks runs every check against the server at url set up by f, calling report after
// each, and returns how many passed and failed. log receives the worker's log (zerolog.Nop()
// for none).
func RunChecks(ctx context.Context, f *Fixture, url string, log zerolog.Logger, report func(Result)) (passed, failed int) {
	r := &Run{f: f, url: url, log: log, conns: map[string]*conn{}, clients: map[string]*engine.Client{}}
	defer r.close()
	for _, c := range Checks() {
		err := r.runOne(ctx, c)
		if err == nil {
			passed++
		} else {
			failed++
		}
		report(Result{Check: c, Err: err})
	}
	return passed, failed
}

// runOne runs c within a minute, with a connection of its role.
func (r *Run) runOne(ctx context.Context, c Check) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if c.Role != anyone {
		if _, err := r.conn(c.Role); err != nil {
			return err
		}
	}
	return c.run(ctx, r)
}

// anyone is the role of the checks about connecting, which use no user's connection.
const anyone = "anyone"

// conn returns role's connection, connecting the first time.
func (r *Run) conn(role string) (*conn, error) {
	if c, ok := r.conns[role]; ok {
		return c, nil
	}
	c, err := r.f.connect(r.url, role)
	if err != nil {
		return nil, err
	}
	r.conns[role] = c
	return c, nil
}

// client returns an engine client over role's connection, bound to jetflow's existing streams
// (natsjs.Open, as jetflow's api, raiser and client commands do).
func (r *Run) client(ctx context.Context, role string) (*engine.Client, error) {
	if cl, ok := r.clients[role]; ok {
		return cl, nil
	}
	c, err := r.conn(role)
	if err != nil {
		return nil, err
	}
	b, err := natsjs.Open(ctx, c.js)
	if err != nil {
		return nil, fmt.Errorf("opening jetflow's streams as %s: %w", role, err)
	}
	cl := engine.NewClient(b)
	r.clients[role] = cl
	return cl, nil
}

// close stops the worker and closes the connections.
func (r *Run) close() {
	if r.stopWorker != nil {
		r.stopWorker()
		<-r.workerDone
	}
	for _, c := range r.conns {
		c.nc.Close()
	}
}
