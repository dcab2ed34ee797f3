package history

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidName reports an activity name, event name, orchestrator name or instance ID that
// cannot be used: empty, over MaxNameLength characters, not UTF-8, or with control characters.
var ErrInvalidName = errors.New("invalid name")

// MaxNameLength is the longest name or instance ID, in characters.
const MaxNameLength = 256

// NameError describes a name that cannot be used; it wraps ErrInvalidName and reads
// `instance ID "": must not be empty`.
type NameError struct {
	What   string // "instance ID", "event name", ...
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.What, quoteName(e.Name), e.Reason)
}

// Unwrap returns ErrInvalidName.
func (e *NameError) Unwrap() error { return ErrInvalidName }

// quoteName quotes a name for an error message, shortening very long ones.
func quoteName(s string) string {
	const show = 64
	if utf8.RuneCountInString(s) <= show {
		return strconv.Quote(s)
	}
	i := 0
	for n := 0; i < len(s) && n < show; n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return fmt.Sprintf("%s... (%d characters)", strconv.Quote(s[:i]), utf8.RuneCountInString(s))
}

// CheckName returns a *NameError if name cannot be used as what (an "instance ID", an "event
// name", ...). It is the one rule for names; the backend maps every valid name to a NATS
// subject token reversibly.
func CheckName(what, name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "must not be empty"
	case !utf8.ValidString(name):
		reason = "is not valid UTF-8"
	case utf8.RuneCountInString(name) > MaxNameLength:
		reason = fmt.Sprintf("longer than %d characters", MaxNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		reason = "contains a control character"
	default:
		return nil
	}
	return &NameError{What: what, Name: name, Reason: reason}
}
