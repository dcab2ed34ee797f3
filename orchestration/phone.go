package orchestration

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jetflow-dev/jetflow/activities"
	"github.com/jetflow-dev/jetflow/pkg/durable"
)

// DefaultChallengeTimeout is how long a PhoneVerification code stays valid when its input does
// not say.
const DefaultChallengeTimeout = 90 * time.Second

// MaxChallengeAttempts is how many answers PhoneVerification accepts before it gives up.
const MaxChallengeAttempts = 3

// PhoneVerificationInput is the input of PhoneVerification. It is either a JSON object
// {"phone": "+15550100", "timeoutSeconds": 2} or just the phone number as a JSON string.
type PhoneVerificationInput struct {
	Phone string `json:"phone"`
	// TimeoutSeconds is how long the code stays valid, from when it was sent, for all attempts
	// together (default DefaultChallengeTimeout).
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty"`
}

// UnmarshalJSON accepts the object form or a bare phone number.
func (in *PhoneVerificationInput) UnmarshalJSON(b []byte) error {
	var phone string
	if err := json.Unmarshal(b, &phone); err == nil {
		*in = PhoneVerificationInput{Phone: phone}
		return nil
	}
	type plain PhoneVerificationInput
	return json.Unmarshal(b, (*plain)(in))
}

// timeout returns the validity of the code, or an error if TimeoutSeconds is not usable.
func (in PhoneVerificationInput) timeout() (time.Duration, error) {
	switch s := in.TimeoutSeconds; {
	case s == 0:
		return DefaultChallengeTimeout, nil
	case s < 0 || math.IsNaN(s) || s > (100*365*24*time.Hour).Seconds():
		return 0, fmt.Errorf("PhoneVerification: timeoutSeconds must be > 0 and at most a century, got %v", s)
	default:
		return time.Duration(s * float64(time.Second)), nil
	}
}

// PhoneVerification takes a phone number (see PhoneVerificationInput) and calls SendSmsChallenge,
// which texts a four-digit code. Then it waits for the event "SmsChallengeResponse", whose data is
// the code as a JSON integer (1234; "1234", as some Durable Functions clients encode it, is read
// as 1234 too), up to MaxChallengeAttempts times. The right code outputs true. Three wrong
// answers, or the timeout (one deadline for all attempts, as in the Durable Functions sample),
// output false. Data that is not an integer counts as a wrong answer.
func PhoneVerification(ctx *durable.OrchestrationContext) (any, error) {
	var in PhoneVerificationInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	if in.Phone == "" {
		return nil, errors.New("PhoneVerification: the input must hold a phone number")
	}
	timeout, err := in.timeout()
	if err != nil {
		return nil, err
	}
	var code int
	if err := ctx.CallActivity(activities.SendSmsChallenge, in.Phone).Await(&code); err != nil {
		return nil, err
	}
	deadline := ctx.CreateTimer(timeout)
	for attempt := 1; attempt <= MaxChallengeAttempts; attempt++ {
		answer := ctx.WaitForExternalEvent(EventSmsChallengeResponse)
		var winner int
		if err := ctx.WhenAny(answer, deadline).Await(&winner); err != nil {
			return nil, err
		}
		if winner == 1 {
			ctx.Logger().Info().Str("phone", in.Phone).Int("attempt", attempt).Msg("challenge timed out")
			return false, nil
		}
		var got int
		err := answer.Await(&got)
		var decodeErr *durable.DecodeError
		switch {
		case err == nil && got == code:
			ctx.Logger().Info().Str("phone", in.Phone).Int("attempt", attempt).Msg("phone verified")
			return true, nil
		case errors.As(err, &decodeErr):
			ctx.Logger().Info().Str("phone", in.Phone).Int("attempt", attempt).Err(err).Msg("answer is not a number: counted as wrong")
		case err != nil:
			return nil, err
		default:
			ctx.Logger().Info().Str("phone", in.Phone).Int("attempt", attempt).Msg("wrong code")
		}
	}
	return false, nil
}
