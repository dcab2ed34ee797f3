package durable

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidVersion: an orchestrator version that cannot be used.
var ErrInvalidVersion = errors.New("invalid orchestrator version")

// maxVersionLen bounds an orchestrator version's length.
const maxVersionLen = 64

// validVersion checks an orchestrator version: "" (unversioned) or up to 64 letters, digits,
// '.', '-' and '_' (a version is a NATS subject token where work is routed to it).
func validVersion(v string) error {
	if len(v) > maxVersionLen {
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidVersion, v, maxVersionLen)
	}
	for _, r := range v {
		ok := r == '.' || r == '-' || r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !ok {
			return fmt.Errorf("%w: %q (use letters, digits, '.', '-' and '_')", ErrInvalidVersion, v)
		}
	}
	return nil
}

// ValidateVersion returns an error wrapping ErrInvalidVersion for a version that AddOrchestrator
// would refuse.
func ValidateVersion(v string) error { return validVersion(v) }

// CompareVersions orders orchestrator versions: -1 if a is older than b, 0 if they are equal,
// +1 if a is newer. "" (unversioned) is the oldest. Versions are compared part by part, split
// at '.': two numeric parts compare as numbers ("10" is newer than "9"), others as strings, and a
// version that extends another is newer ("1.1" is newer than "1").
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" || b == "" {
		if a == "" {
			return -1
		}
		return 1
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if c := comparePart(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return strings.Compare(a, b)
}

func comparePart(a, b string) int {
	na, errA := strconv.ParseUint(a, 10, 64)
	nb, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		switch {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}
