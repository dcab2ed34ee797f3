package backend

// The headers jetflow reads on the messages it consumes, and the one rule that finds a raised
// event's ID among them. docs/wire.md documents them with the other wire formats: the subjects
// and message IDs (natsjs/names.go) and the JSON bodies (backend.go).

// Header names. NATS header names are case-sensitive: a header must be spelled as here.
const (
	// HeaderEventID carries the ID of a raised event: an instance applies one event ID once,
	// however often the event is published and however long after. It is jetflow's own,
	// explicit header, and it wins over HeaderMsgID.
	HeaderEventID = "Jetflow-Event-Id"
	// HeaderMsgID is JetStream's deduplication header (jetstream.MsgIDHeader): the stream drops
	// a message whose ID it saw within its duplicate window. On an event without
	// HeaderEventID it is the event ID too.
	HeaderMsgID = "Nats-Msg-Id"
)

// EventID returns the event ID carried by a message's headers, read with get (the Get method
// of nats.Header or http.Header): the HeaderEventID header if it is set, else the HeaderMsgID
// header, else "". Every path that raises an event from a message (the backend's inbox, the
// raiser, the HTTP API) takes the event ID from here, so a message carrying both headers gets
// the same ID on each.
func EventID(get func(key string) string) string {
	if id := get(HeaderEventID); id != "" {
		return id
	}
	return get(HeaderMsgID)
}

// Trace context headers (W3C Trace Context, https://www.w3.org/TR/trace-context/): a message
// that carries them continues the trace of whoever published it. Clients set them on the starts
// and events they send, a turn on the tasks and messages it publishes, an activity on its
// result; anyone may set them on a plain publish.
const (
	// HeaderTraceparent is the W3C traceparent: version, trace ID, parent span ID, flags.
	HeaderTraceparent = "traceparent"
	// HeaderTracestate is the W3C tracestate: vendor data that travels with traceparent.
	HeaderTracestate = "tracestate"
)

// TraceContext is the trace context a message carries, as plain data: the values of
// HeaderTraceparent and HeaderTracestate by header name (an OpenTelemetry propagator reads and
// writes it as a propagation.MapCarrier). Nil or empty carries none. The backend carries it in
// message headers; it is never part of a message's JSON body.
type TraceContext map[string]string

// TraceFrom returns the trace context carried by a message's headers, read with get (the Get
// method of nats.Header or http.Header); nil if it carries no traceparent.
func TraceFrom(get func(key string) string) TraceContext {
	parent := get(HeaderTraceparent)
	if parent == "" {
		return nil
	}
	t := TraceContext{HeaderTraceparent: parent}
	if state := get(HeaderTracestate); state != "" {
		t[HeaderTracestate] = state
	}
	return t
}

// SetOn writes the trace context into a message's headers with set (the Set method of
// nats.Header or http.Header). Only the trace context headers are written, whatever else the
// map holds.
func (t TraceContext) SetOn(set func(key, value string)) {
	for _, key := range []string{HeaderTraceparent, HeaderTracestate} {
		if v := t[key]; v != "" {
			set(key, v)
		}
	}
}
