package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetflow-dev/jetflow/pkg/backend/natsjs"
	"github.com/jetflow-dev/jetflow/pkg/engine"
	"github.com/jetflow-dev/jetflow/pkg/metrics"
	"github.com/jetflow-dev/jetflow/pkg/raiser"
)

const raiserAbout = `
Consumes queues and raises their messages as events on instances (the Durable Functions pattern
of a queue-triggered function that raises events). A queue is a NATS subject captured by a
work-queue stream (default JETFLOW_QUEUES, created or extended if needed); each queue has a
durable consumer (default raiser-<queue>) that every raiser process shares, so run as many as
you like. A message is acked once its event is raised.

With --event, the message body is an instance ID and the queue raises that event with --data
(JSON, default null):

  jetflow raiser --queue approval-queue --event Approval --data true
  nats pub approval-queue <instance-id>

Without --event, the body is a notification {"instanceId": "...", "eventName": "...",
"eventData": ...} (eventData defaults to null):

  jetflow raiser --queue event-queue
  nats pub event-queue '{"instanceId": "<id>", "eventName": "Event2", "eventData": true}'

The event ID that deduplicates the event is the message's Jetflow-Event-Id header, else its
Nats-Msg-Id header, else "<stream>:<sequence>".

Messages that can never be raised (empty or non-UTF-8 body, bad JSON, missing fields, invalid
names) are published with the reason to jetflow.dlq.raiser (kept by the JETFLOW_DLQ stream) and
acked. So are events for instances that do not exist or have ended, unless --on-unknown drop:
then they are logged and dropped. Other errors (timeouts) retry the message after a delay.

For several queues, give --config FILE instead of --queue, --event, --data, --stream and
--consumer. The file is JSON:

  {
    "onUnknown": "deadletter",
    "queues": [
      {"name": "approval-queue", "event": "Approval", "data": true},
      {"name": "event-queue"},
      {"name": "orders.paid", "stream": "ORDERS", "consumer": "raiser-paid",
       "event": "Proceed"}
    ]
  }

"onUnknown" ("deadletter" or "drop", default "deadletter") is overridden by --on-unknown; each
queue's "name" is required and "stream", "consumer", "event" and "data" are optional as above.
The raiser binds to jetflow's existing streams, so start a worker (or jetflow dev) first.
`

// The raiser's settings, besides the connection, log and health settings of Config.
var (
	setRaiserConfig    = setting{flag: "config", env: "JETFLOW_RAISER_CONFIG"}
	setRaiserQueue     = setting{flag: "queue", env: "JETFLOW_RAISER_QUEUE"}
	setRaiserEvent     = setting{flag: "event", env: "JETFLOW_RAISER_EVENT"}
	setRaiserData      = setting{flag: "data", env: "JETFLOW_RAISER_DATA"}
	setRaiserStream    = setting{flag: "stream", env: "JETFLOW_RAISER_STREAM"}
	setRaiserConsumer  = setting{flag: "consumer", env: "JETFLOW_RAISER_CONSUMER"}
	setRaiserOnUnknown = setting{flag: "on-unknown", env: "JETFLOW_RAISER_ON_UNKNOWN"}
)

// raiserSettings are the raiser's own flags.
type raiserSettings struct {
	Config, Queue, Event, Data, Stream, Consumer, OnUnknown string
}

// flags binds the settings to fs, with the environment read through getenv as defaults.
func (s *raiserSettings) flags(fs *flag.FlagSet, getenv func(string) string) {
	str := func(dst *string, set setting, usage string) {
		fs.StringVar(dst, set.flag, getenv(set.env), usageFor(set, usage))
	}
	str(&s.Config, setRaiserConfig, "JSON `file` listing the queues (see above); instead of --queue")
	str(&s.Queue, setRaiserQueue, "the `subject` of the one queue to consume")
	str(&s.Event, setRaiserEvent, "the `event` to raise on the instance ID in each message (default: messages are notifications)")
	str(&s.Data, setRaiserData, "the event's `JSON` data, with --event (default null)")
	str(&s.Stream, setRaiserStream, "the `stream` capturing the queue (default "+raiser.DefaultStream+")")
	str(&s.Consumer, setRaiserConsumer, "the durable consumer's `name` (default raiser-<queue>)")
	str(&s.OnUnknown, setRaiserOnUnknown, "`action` for events on unknown or ended instances: deadletter or drop (default deadletter)")
}

// config returns the raiser.Config the settings describe; readFile reads --config.
func (s raiserSettings) config(readFile func(string) ([]byte, error)) (raiser.Config, error) {
	var cfg raiser.Config
	if s.Config != "" {
		for _, o := range []struct {
			set setting
			val string
		}{{setRaiserQueue, s.Queue}, {setRaiserEvent, s.Event}, {setRaiserData, s.Data}, {setRaiserStream, s.Stream}, {setRaiserConsumer, s.Consumer}} {
			if o.val != "" {
				return cfg, configErr(o.set, "cannot be used with --%s", setRaiserConfig.flag)
			}
		}
		b, err := readFile(s.Config)
		if err != nil {
			return cfg, configErr(setRaiserConfig, "names a file that cannot be read: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, configErr(setRaiserConfig, "file %s is not a raiser config: %v", s.Config, err)
		}
	} else {
		if s.Queue == "" {
			return cfg, configErr(setRaiserQueue, "or --%s is required", setRaiserConfig.flag)
		}
		q := raiser.Queue{Name: s.Queue, Stream: s.Stream, Consumer: s.Consumer, Event: s.Event}
		if s.Data != "" {
			if s.Event == "" {
				return cfg, configErr(setRaiserData, "needs --%s", setRaiserEvent.flag)
			}
			raw := json.RawMessage(strings.TrimSpace(s.Data))
			if !json.Valid(raw) {
				return cfg, configErr(setRaiserData, "is not valid JSON: %q (quote strings: '\"yes\"')", s.Data)
			}
			q.Data = raw
		}
		cfg.Queues = []raiser.Queue{q}
	}
	if s.OnUnknown != "" {
		cfg.OnUnknown = s.OnUnknown
	}
	if err := cfg.Validate(); err != nil {
		set := setRaiserQueue
		if s.Config != "" {
			set = setRaiserConfig
		}
		return cfg, configErr(set, "%v", err)
	}
	return cfg, nil
}

func runRaiser(ctx context.Context, env *Env, args []string) error {
	cfg, err := loadConfig(env.Getenv)
	if err != nil {
		return err
	}
	fs := newFlagSet(env, "raiser", "--queue SUBJECT [--event NAME [--data JSON]] | --config FILE [flags]", raiserAbout)
	var rs raiserSettings
	rs.flags(fs, env.Getenv)
	cfg.connFlags(fs)
	fs.IntVar(&cfg.Replicas, setReplicas.flag, cfg.Replicas, usageFor(setReplicas, "replicas of the queue streams the raiser creates, 1..5"))
	cfg.healthFlags(fs)
	cfg.logFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rcfg, err := rs.config(os.ReadFile)
	if err != nil {
		return err
	}
	log := newLogger(env.Stderr, cfg.logLevel())
	reg, m, err := newMetrics()
	if err != nil {
		return err
	}

	traces, err := startTraces(ctx, "raiser", log) // traces.go
	if err != nil {
		return err
	}
	defer traces.Stop()
	nc, js, err := connectService(cfg, "raiser", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := natsjs.Open(ctx, js, natsjs.WithReplicas(cfg.Replicas), natsjs.WithLogger(log.With().Str("component", "natsjs").Logger()),
		natsjs.WithMetrics(m))
	if err != nil {
		return fmt.Errorf("binding to jetflow's streams (is a worker running?): %w", err)
	}
	tp := traces.Provider()
	r, err := newRaiser(js, engine.NewClient(b, engine.WithClientTracerProvider(tp)), rcfg, cfg.Replicas, log, m, tp)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	health, err := serveHealth(cfg.HealthAddr, b.Ready, reg, log)
	if err != nil {
		return err
	}
	defer health.Stop()
	return runRaiserUntilDone(ctx, r, log)
}

// newRaiser returns a raiser logging to log, recording its metrics in m (nil: none) and tracing
// with tp (nil: none).
func newRaiser(js jetstream.JetStream, client *engine.Client, cfg raiser.Config, replicas int, log zerolog.Logger, m *metrics.Metrics, tp trace.TracerProvider) (*raiser.Raiser, error) {
	return raiser.New(js, client, cfg,
		raiser.WithTracerProvider(tp),
		raiser.WithReplicas(replicas),
		raiser.WithLogger(log.With().Str("component", "raiser").Logger()),
		raiser.WithMetrics(m),
	)
}

// runRaiserUntilDone runs r until ctx ends and logs its counters.
func runRaiserUntilDone(ctx context.Context, r *raiser.Raiser, log zerolog.Logger) error {
	for _, q := range r.Config().Queues {
		ev := log.Info().Str("queue", q.Name).Str("stream", q.Stream).Str("consumer", q.Consumer)
		if q.Event != "" {
			ev = ev.Str("event", q.Event).RawJSON("data", q.Data)
		}
		ev.Msg("raising events from queue")
	}
	err := r.Run(ctx)
	s := r.Stats()
	log.Info().
		Uint64("raised", s.Raised).
		Uint64("dead_lettered", s.DeadLettered).
		Uint64("dropped", s.Dropped).
		Uint64("retried", s.Retried).
		Msg("raiser stopped")
	if err != nil {
		return fmt.Errorf("raiser: %w", err)
	}
	return nil
}

// devRaiserConfig is the raiser `jetflow dev` runs for the examples.
func devRaiserConfig() raiser.Config {
	return raiser.Config{Queues: []raiser.Queue{
		{Name: "approval-queue", Event: "Approval", Data: json.RawMessage("true")},
		{Name: "event-queue"},
	}}
}

// devRaiserHelp is the part of dev's banner about the queues; server is " --server URL" or "".
func devRaiserHelp(server string) string {
	return fmt.Sprintf(`Or approve through the queue raiser (approval-queue raises Approval with true on the
instance ID in the message; event-queue takes notifications):

  nats pub%[1]s approval-queue <id>
  nats pub%[1]s event-queue '{"instanceId": "<id>", "eventName": "Approval", "eventData": false}'

(messages that cannot be raised are kept with the reason: nats stream view%[1]s JETFLOW_DLQ).
`, server)
}
