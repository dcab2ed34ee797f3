package natsjs

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/jetflow-dev/jetflow/pkg/backend"
	"github.com/jetflow-dev/jetflow/pkg/history"
)

// ErrInvalidName is wrapped by every error about an instance ID, event name,
// token, prefix or subject that cannot be encoded, decoded or parsed.
var ErrInvalidName = backend.ErrInvalidName

// MaxNameLen is the maximum length, in characters (runes), of an instance ID
// or event name.
const MaxNameLen = history.MaxNameLength

// DefaultPrefix is the prefix NewNames uses when given an empty one.
const DefaultPrefix = "jetflow"

// isSafe reports whether b is written unchanged in a token.
func isSafe(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}

// isSafeString reports whether s is non-empty and made only of [A-Za-z0-9_-].
func isSafeString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isSafe(s[i]) {
			return false
		}
	}
	return true
}

const upperHex = "0123456789ABCDEF"

func encode(what, s string) (string, error) {
	if err := history.CheckName(what, s); err != nil {
		return "", err
	}
	if isSafeString(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0x0F])
	}
	return b.String(), nil
}

// EncodeToken maps s to a token usable both as a NATS subject token and as a
// JetStream KV key token.
//
// s must be valid UTF-8, 1 to MaxNameLen characters long, and contain no
// control characters (unicode.IsControl); otherwise EncodeToken returns an
// error wrapping ErrInvalidName. Bytes in [A-Za-z0-9_-] are kept as they
// are; every other byte of the UTF-8 encoding, '=' included, is written as
// '=' followed by two upper-case hex digits. So "order-42" stays
// "order-42", "order 42" becomes "order=2042", "a.b" becomes "a=2Eb" and
// "é" becomes "=C3=A9". The result uses only [A-Za-z0-9_=-].
//
// EncodeInstanceID and EncodeEventName do the same with error messages
// naming what was being encoded.
func EncodeToken(s string) (string, error) { return encode("name", s) }

// EncodeInstanceID encodes an instance ID with EncodeToken. Errors read like
// `instance ID "": must not be empty` and wrap ErrInvalidName.
func EncodeInstanceID(id string) (string, error) { return encode("instance ID", id) }

// EncodeEventName encodes an event name with EncodeToken. Errors read like
// `event name "": must not be empty` and wrap ErrInvalidName.
func EncodeEventName(name string) (string, error) { return encode("event name", name) }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func decode(what, tok string) (string, error) {
	bad := func(reason string) error { return &history.NameError{What: what, Name: tok, Reason: reason} }
	if tok == "" {
		return "", bad("must not be empty")
	}
	s := tok
	if !isSafeString(tok) {
		var err error
		if s, err = unescape(tok, bad); err != nil {
			return "", err
		}
	}
	if err := history.CheckName(what, s); err != nil {
		return "", bad("decodes to an invalid name: " + err.(*history.NameError).Reason)
	}
	return s, nil
}

// unescape undoes the escaping done by encode, reporting problems with bad.
func unescape(tok string, bad func(reason string) error) (string, error) {
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case isSafe(c):
			b.WriteByte(c)
		case c == '=':
			if i+2 >= len(tok) {
				return "", bad(fmt.Sprintf("truncated escape at byte %d", i))
			}
			hi, ok1 := unhex(tok[i+1])
			lo, ok2 := unhex(tok[i+2])
			if !ok1 || !ok2 {
				return "", bad(fmt.Sprintf("malformed escape %q at byte %d (want '=' and two upper-case hex digits)", tok[i:i+3], i))
			}
			v := hi<<4 | lo
			if isSafe(v) {
				return "", bad(fmt.Sprintf("escape %q at byte %d encodes %q, which must not be escaped", tok[i:i+3], i, v))
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", bad(fmt.Sprintf("character %q at byte %d is not allowed in a token", c, i))
		}
	}
	return b.String(), nil
}

// DecodeToken is the exact inverse of EncodeToken: for every s accepted by
// EncodeToken, DecodeToken(EncodeToken(s)) returns s, and DecodeToken
// accepts only tokens that EncodeToken can produce. Characters outside
// [A-Za-z0-9_=-], truncated or malformed escapes (lower-case hex
// included), escapes of bytes that are never escaped, and tokens that
// decode to a name EncodeToken would reject are errors wrapping
// ErrInvalidName.
func DecodeToken(tok string) (string, error) { return decode("token", tok) }

// Names builds every subject, stream, KV bucket, KV key and consumer name
// jetflow uses, all under one prefix. Create it with NewNames; the zero
// value is not usable. docs/wire.md documents them (and a test there fails
// for a name it does not mention).
//
// Methods taking an idTok, nameTok or similar expect tokens already
// encoded with EncodeInstanceID, EncodeEventName or EncodeToken; they do no
// checking or encoding of their own.
type Names struct {
	prefix string
	upper  string
}

// NewNames returns the Names for prefix, or for DefaultPrefix ("jetflow") if
// prefix is empty. prefix must consist only of [A-Za-z0-9_-]; otherwise the
// error wraps ErrInvalidName.
func NewNames(prefix string) (Names, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !isSafeString(prefix) {
		return Names{}, &history.NameError{What: "prefix", Name: prefix, Reason: "must contain only letters, digits, '_' and '-'"}
	}
	return Names{prefix: prefix, upper: strings.ToUpper(prefix)}, nil
}

// Prefix returns the prefix the names are built from, e.g. "jetflow".
func (n Names) Prefix() string { return n.prefix }

// InstanceStream returns the name of the stream holding instance inputs
// (start, events, activity results, timers, control messages), e.g.
// "JETFLOW_INST". It captures InstanceSubjects.
func (n Names) InstanceStream() string { return n.upper + "_INST" }

// ActivityStream returns the name of the stream holding activity tasks,
// e.g. "JETFLOW_ACT". It captures ActivitySubjects.
func (n Names) ActivityStream() string { return n.upper + "_ACT" }

// DeadLetterStream returns the name of the stream holding messages that
// could not be processed, e.g. "JETFLOW_DLQ". It captures
// DeadLetterSubjects.
func (n Names) DeadLetterStream() string { return n.upper + "_DLQ" }

// HistoryStream returns the name of the stream holding instance histories
// and states, e.g. "JETFLOW_HIST". It captures HistorySubjects.
func (n Names) HistoryStream() string { return n.upper + "_HIST" }

// HistorySubject returns the subject of the records of the instance whose
// encoded ID is idTok, e.g. "jetflow.hist.order-42": its pending record and
// its turn records, in order; the last is its state.
func (n Names) HistorySubject(idTok string) string { return n.prefix + ".hist." + idTok }

// HistorySubjects returns the wildcard subject of every instance's records,
// e.g. "jetflow.hist.>".
func (n Names) HistorySubjects() string { return n.prefix + ".hist.>" }

// InstanceSubjects returns the wildcard subject of all instance inputs,
// e.g. "jetflow.inst.>".
func (n Names) InstanceSubjects() string { return n.prefix + ".inst.>" }

// ScheduleSubjects returns the wildcard subject of all scheduled messages,
// e.g. "jetflow.sched.>".
func (n Names) ScheduleSubjects() string { return n.prefix + ".sched.>" }

// InstanceSubject returns the subject of an input of kind kind (such as
// "start", "result", "timer", "terminate") for the instance whose encoded
// ID is idTok, e.g. "jetflow.inst.order-42.start". For events use
// EventSubject.
func (n Names) InstanceSubject(idTok, kind string) string {
	return n.prefix + ".inst." + idTok + "." + kind
}

// EventSubject returns the subject of the event whose encoded name is
// nameTok sent to the instance whose encoded ID is idTok, e.g.
// "jetflow.inst.order-42.event.approved".
func (n Names) EventSubject(idTok, nameTok string) string {
	return n.prefix + ".inst." + idTok + ".event." + nameTok
}

// InstanceFilter returns the wildcard subject of all inputs of the instance
// whose encoded ID is idTok, e.g. "jetflow.inst.order-42.>".
func (n Names) InstanceFilter(idTok string) string {
	return n.prefix + ".inst." + idTok + ".>"
}

// PartitionTransform returns the stream subject transform that files every instance message
// under its partition: jetflow.inst.<idTok>.<rest> is stored as
// jetflow.part.<p>.<idTok>.<rest>, where p is the server's deterministic partition (FNV-1a of
// idTok modulo partitions, see PartitionOf).
func (n Names) PartitionTransform(partitions int) (src, dest string) {
	return n.prefix + ".inst.*.>", n.prefix + ".part.{{partition(" + strconv.Itoa(partitions) + ",1)}}.{{wildcard(1)}}.>"
}

// PartitionSubjects returns the wildcard subject of every stored instance message, e.g.
// "jetflow.part.>".
func (n Names) PartitionSubjects() string { return n.prefix + ".part.>" }

// PartitionFilter returns the wildcard subject of the stored messages of partition p, e.g.
// "jetflow.part.3.>".
func (n Names) PartitionFilter(p int) string { return n.prefix + ".part." + strconv.Itoa(p) + ".>" }

// StoredInstanceFilter returns the wildcard subject of the stored messages of the instance whose
// encoded ID is idTok, in whichever partition, e.g. "jetflow.part.*.order-42.>".
func (n Names) StoredInstanceFilter(idTok string) string {
	return n.prefix + ".part.*." + idTok + ".>"
}

// StoredInstanceKindFilter returns the wildcard subject of the stored messages of one kind of the
// instance whose encoded ID is idTok, e.g. "jetflow.part.*.order-42.result".
func (n Names) StoredInstanceKindFilter(idTok, kind string) string {
	return n.prefix + ".part.*." + idTok + "." + kind
}

// PartitionOf returns the partition the server files the instance whose encoded ID is idTok
// under: FNV-1a (32 bit) of idTok modulo partitions, as the {{partition}} transform computes it.
func PartitionOf(idTok string, partitions int) int {
	h := fnv.New32a()
	h.Write([]byte(idTok))
	return int(h.Sum32() % uint32(partitions))
}

// ParseStoredSubject parses the subject of a message as the instance stream stores it
// (jetflow.part.<p>.<idTok>.<kind>[.<name>]) and returns its partition and what
// ParseInstanceSubject returns for the subject it was published to.
func (n Names) ParseStoredSubject(subject string) (partition int, id, kind, name string, err error) {
	rest, ok := strings.CutPrefix(subject, n.prefix+".part.")
	if !ok {
		return 0, "", "", "", &history.NameError{What: "subject", Name: subject, Reason: fmt.Sprintf("does not start with %q", n.prefix+".part.")}
	}
	ptok, rest, _ := strings.Cut(rest, ".")
	// The server writes the partition in decimal without sign or leading zeros; any other
	// spelling ("03", "+3") is not a subject it stores, and accepting it would let two subjects
	// parse to one.
	p, perr := strconv.Atoi(ptok)
	if perr != nil || p < 0 || strconv.Itoa(p) != ptok {
		return 0, "", "", "", &history.NameError{What: "subject", Name: subject, Reason: fmt.Sprintf("partition %q is not a number in canonical decimal", ptok)}
	}
	id, kind, name, err = parseInstanceTokens(subject, rest)
	return p, id, kind, name, err
}

// PublishedSubject returns the subject a stored instance message was published to:
// jetflow.part.<p>.<rest> becomes jetflow.inst.<rest>. Other subjects are returned unchanged.
func (n Names) PublishedSubject(stored string) string {
	rest, ok := strings.CutPrefix(stored, n.prefix+".part.")
	if !ok {
		return stored
	}
	_, rest, ok = strings.Cut(rest, ".")
	if !ok {
		return stored
	}
	return n.prefix + ".inst." + rest
}

// ScheduleSubject returns the subject of a scheduled message for task
// taskID of generation gen of the instance whose encoded ID is idTok, e.g.
// "jetflow.sched.order-42.3.7".
func (n Names) ScheduleSubject(idTok string, gen uint64, taskID int) string {
	return n.prefix + ".sched." + idTok + "." + strconv.FormatUint(gen, 10) + "." + strconv.Itoa(taskID)
}

// PurgeScheduleSubject returns the subject of the scheduled purge of the ended instance whose
// encoded ID is idTok (WithRetention), e.g. "jetflow.sched.order-42.purge".
func (n Names) PurgeScheduleSubject(idTok string) string {
	return n.prefix + ".sched." + idTok + "." + kindPurge
}

// TimerSchedules returns the wildcard subject of every timer's schedule (not the scheduled
// purges), e.g. "jetflow.sched.*.*.*".
func (n Names) TimerSchedules() string { return n.prefix + ".sched.*.*.*" }

// ParseTimerSchedule returns the encoded instance ID of a timer schedule's subject (see
// ScheduleSubject), and false for any other subject.
func (n Names) ParseTimerSchedule(subject string) (idTok string, ok bool) {
	rest, ok := strings.CutPrefix(subject, n.prefix+".sched.")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" {
		return "", false
	}
	for _, num := range parts[1:] {
		if _, err := strconv.ParseUint(num, 10, 64); err != nil {
			return "", false
		}
	}
	return parts[0], true
}

// ActivityCancelSubject returns the core NATS subject (no stream captures it) of the cancels of
// the activities of the instance whose encoded ID is idTok, e.g. "jetflow.cancel.order-42".
func (n Names) ActivityCancelSubject(idTok string) string { return n.prefix + ".cancel." + idTok }

// ActivityCancelSubjects returns the wildcard subject of all activity cancels, e.g.
// "jetflow.cancel.>", which activity workers subscribe to.
func (n Names) ActivityCancelSubjects() string { return n.prefix + ".cancel.>" }

// ScheduledStartSubject returns the subject of the scheduled start startTok (an encoded start
// ID) of instance idTok, e.g. "jetflow.sched.order-42.start.5f0c".
func (n Names) ScheduledStartSubject(idTok, startTok string) string {
	return n.prefix + ".sched." + idTok + ".start." + startTok
}

// ActivitySubject returns the subject of tasks for the activity whose
// encoded name is nameTok, e.g. "jetflow.activity.charge-card".
func (n Names) ActivitySubject(nameTok string) string {
	return n.prefix + ".activity." + nameTok
}

// RouteSubject returns the subject on which the workers serving version verTok (VersionToken)
// of the orchestrator whose encoded name is nameTok take routed instances, e.g.
// "jetflow.route.Approval.v2".
func (n Names) RouteSubject(nameTok, verTok string) string {
	return n.prefix + ".route." + nameTok + "." + verTok
}

// RouteQueue is the queue group of the workers serving one orchestrator version: one of them
// takes each routed instance.
const RouteQueue = "jetflow-workers"

// VersionToken maps an orchestrator version to a subject token: "v" for the unversioned "",
// else "v" and the encoded version ("1.2" becomes "v1=2E2").
func VersionToken(version string) (string, error) {
	if version == "" {
		return "v", nil
	}
	tok, err := encode("orchestrator version", version)
	if err != nil {
		return "", err
	}
	return "v" + tok, nil
}

// ActivitySubjects returns the wildcard subject of all activity tasks, e.g.
// "jetflow.activity.>".
func (n Names) ActivitySubjects() string { return n.prefix + ".activity.>" }

// DeadLetterSubject returns the subject for dead letters from a source,
// given as reason: a short word naming where the message was consumed,
// "inbox" or "activity" for natsjs (the raiser publishes to
// "jetflow.dlq.raiser" itself), e.g. "jetflow.dlq.inbox". A word that is
// not made only of [A-Za-z0-9_-] is encoded with EncodeToken; one that
// cannot be encoded (an empty one, for instance) becomes "invalid".
func (n Names) DeadLetterSubject(reason string) string {
	tok, err := EncodeToken(reason)
	if err != nil {
		tok = "invalid"
	}
	return n.prefix + ".dlq." + tok
}

// DeadLetterSubjects returns the wildcard subject of all dead letters, e.g.
// "jetflow.dlq.>".
func (n Names) DeadLetterSubjects() string { return n.prefix + ".dlq.>" }

// PartitionConsumer returns the name of the consumer through which the worker member (a
// member ID) reads partition p during its ownership epoch, e.g. "p3-8f2c…-7". Names are never
// reused, so a worker that lost a partition cannot pull from its successor's consumer.
func (n Names) PartitionConsumer(p int, member string, epoch uint64) string {
	return PartitionConsumerPrefix(p) + member + "-" + strconv.FormatUint(epoch, 10)
}

// PartitionConsumerPrefix is the prefix of every consumer name of partition p, e.g. "p3-".
func PartitionConsumerPrefix(p int) string { return "p" + strconv.Itoa(p) + "-" }

// LeaseBucket returns the name of the KV bucket in which workers announce themselves and own
// partitions, e.g. "jetflow-leases".
func (n Names) LeaseBucket() string { return n.prefix + "-leases" }

// DeliveryBucket returns the name of the KV bucket in which workers count the deliveries of
// instance messages that may have stopped a worker, e.g. "jetflow-deliveries".
func (n Names) DeliveryBucket() string { return n.prefix + "-deliveries" }

// WorkerBucket returns the name of the KV bucket in which each live worker announces the
// orchestrators and activities it serves, one key per worker (its ID), e.g. "jetflow-workers".
func (n Names) WorkerBucket() string { return n.prefix + "-workers" }

// ActivityConsumer returns the name of the durable consumer on
// ActivityStream for the activity whose encoded name is nameTok, e.g.
// "activity-charge-card". JetStream limits consumer names to 255 bytes, so
// very long encoded activity names do not fit.
func (n Names) ActivityConsumer(nameTok string) string { return "activity-" + nameTok }

// ParseInstanceSubject is the inverse of InstanceSubject and EventSubject.
// It returns the decoded instance ID, the kind (the token after the ID, not
// checked against a list of known kinds), and, when kind is "event", the
// decoded event name; name is "" for other kinds. Subjects with another
// prefix, too few or too many tokens, undecodable tokens, or an event
// without a name give an error wrapping ErrInvalidName.
func (n Names) ParseInstanceSubject(subject string) (id, kind, name string, err error) {
	head := n.prefix + ".inst."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", "", "", &history.NameError{What: "subject", Name: subject, Reason: fmt.Sprintf("does not start with %q", head)}
	}
	return parseInstanceTokens(subject, rest)
}

// parseInstanceTokens parses rest, the <idTok>.<kind>[.<name>] part of subject.
func parseInstanceTokens(subject, rest string) (id, kind, name string, err error) {
	bad := func(reason string) error { return &history.NameError{What: "subject", Name: subject, Reason: reason} }
	toks := strings.Split(rest, ".")
	if len(toks) < 2 {
		return "", "", "", bad("has no kind after the instance ID")
	}
	id, err = DecodeToken(toks[0])
	if err != nil {
		return "", "", "", fmt.Errorf("subject %q: instance ID: %w", subject, err)
	}
	kind = toks[1]
	if !isSafeString(kind) {
		return "", "", "", bad(fmt.Sprintf("kind %q is not made of letters, digits, '_' and '-'", kind))
	}
	if kind != "event" {
		if len(toks) > 2 {
			return "", "", "", bad(fmt.Sprintf("has unexpected tokens after kind %q", kind))
		}
		return id, kind, "", nil
	}
	switch {
	case len(toks) < 3:
		return "", "", "", bad("event has no name")
	case len(toks) > 3:
		return "", "", "", bad("has unexpected tokens after the event name")
	}
	name, err = DecodeToken(toks[2])
	if err != nil {
		return "", "", "", fmt.Errorf("subject %q: event name: %w", subject, err)
	}
	return id, kind, name, nil
}

// ScheduleFilter matches every timer schedule of one instance:
// <prefix>.sched.<idTok>.>.
func (n Names) ScheduleFilter(idTok string) string { return n.prefix + ".sched." + idTok + ".>" }

// rewindSuffix keeps the message IDs of a task scheduled again by rewind number n (n > 0) apart
// from those of its first run, which JetStream would otherwise deduplicate: ":r<n>".
func rewindSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return ":r" + strconv.Itoa(n)
}

// Message IDs (Nats-Msg-Id) of what jetflow publishes, so that JetStream drops a repeated publish
// within its duplicate window (docs/wire.md documents them):
//   - activity task: <idTok>:<generation>:<taskId>[:r<n>];
//   - start: start:<startId>, where a client's startId is a random UUID and a child's
//     (sub-orchestration's) is <parentIdTok>:<generation>:<taskId>[:r<n>];
//   - task result (of an activity or a sub-orchestration), sent to the instance that scheduled
//     the task: result:<idTok>:<generation>:<taskId>[:r<n>];
//   - an event: its event ID, if it has one;
//   - a dead letter: dlq:<source>:<seq> (deadletter.go; the raiser's own are
//     dlq:raiser:<stream>:<seq>).

// taskMsgID is the message ID of an activity task, and the start ID of a sub-orchestration.
func taskMsgID(idTok string, generation uint64, taskID, rewind int) string {
	return fmt.Sprintf("%s:%d:%d", idTok, generation, taskID) + rewindSuffix(rewind)
}

// resultMsgID is the message ID of a task result sent to instance idTok.
func resultMsgID(idTok string, r *backend.TaskResult) string {
	return "result:" + taskMsgID(idTok, r.Generation, r.TaskID, r.Rewind)
}

// startMsgID is the message ID of a start message.
func startMsgID(startID string) string { return "start:" + startID }

// deadLetterMsgID is the message ID of the dead-letter record of message seq from source.
func deadLetterMsgID(source string, seq uint64) string { return fmt.Sprintf("dlq:%s:%d", source, seq) }
