package durable

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jetflow-dev/jetflow/pkg/history"
)

// ErrTimeout is returned by Await on an event wait whose timeout expired first.
var ErrTimeout = errors.New("timed out")

// ErrNonDeterminism fails an instance whose orchestrator code no longer matches its history.
var ErrNonDeterminism = errors.New("non-deterministic orchestrator")

// errCanceled completes a timer that no longer matters (the timeout of an event that arrived).
var errCanceled = errors.New("canceled")

// ErrNotRegistered fails an instance whose orchestrator name is not registered on the worker.
var ErrNotRegistered = errors.New("not registered")

// DecodeError reports JSON that could not be decoded into the caller's type: an event's data, an
// activity's result, or an orchestration's input.
type DecodeError struct {
	What string // e.g. `event "Approval"`
	Err  error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("decoding %s: %v", e.What, e.Err) }

// Unwrap returns the JSON error.
func (e *DecodeError) Unwrap() error { return e.Err }

// TaskFailedError is returned by Await on an activity or sub-orchestration that failed.
type TaskFailedError struct {
	Kind    string // "activity" or "sub-orchestration"
	Name    string
	TaskID  int
	Failure *history.Failure
}

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("%s %q (task %d) failed: %s", e.Kind, e.Name, e.TaskID, e.Failure.Message)
}

// Unwrap returns the failure details.
func (e *TaskFailedError) Unwrap() error { return e.Failure }

// nonDeterminism builds an ErrNonDeterminism with a message that says what differed.
func nonDeterminism(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNonDeterminism, fmt.Sprintf(format, args...))
}

// FailureType names the kind of an error for a history.Failure: "TaskFailed", "DecodeError",
// "Timeout", "NonDeterminism", "InvalidName" for the SDK's own errors, "Error" for any other.
func FailureType(err error) string {
	var failed *TaskFailedError
	var decode *DecodeError
	switch {
	case errors.As(err, &failed):
		return "TaskFailed"
	case errors.As(err, &decode):
		return "DecodeError"
	case errors.Is(err, ErrTimeout):
		return "Timeout"
	case errors.Is(err, ErrNonDeterminism):
		return "NonDeterminism"
	case errors.Is(err, ErrInvalidName):
		return "InvalidName"
	}
	return "Error"
}

// decodeJSON decodes data into v. When data does not fit v but is a JSON string whose content is
// JSON that does, that content is decoded: some Durable Functions clients (the Python one)
// encode inputs and event data twice, so a caller's true arrives as the string "true". The
// error is the first decoding's.
func decodeJSON(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var inner string
	if json.Unmarshal(data, &inner) != nil || !json.Valid([]byte(inner)) {
		return err
	}
	if json.Unmarshal([]byte(inner), v) != nil {
		return err
	}
	return nil
}
