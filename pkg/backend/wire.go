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
