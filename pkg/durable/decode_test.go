package durable

import (
	"errors"
	"testing"
)

// TestDecodeTwiceEncodedJSON: data encoded twice (a JSON string holding JSON, as the Durable
// Functions Python client sends inputs and event data) decodes into a bool, a number or a
// struct; a string target keeps the string; data that fits neither way is a decoding error.
func TestDecodeTwiceEncodedJSON(t *testing.T) {
	var b bool
	if err := decodeJSON([]byte(`"true"`), &b); err != nil || !b {
		t.Errorf("bool: %v %v", b, err)
	}
	var n float64
	if err := decodeJSON([]byte(`"12.5"`), &n); err != nil || n != 12.5 {
		t.Errorf("number: %v %v", n, err)
	}
	var o struct {
		Amount int    `json:"amount"`
		Who    string `json:"who"`
	}
	if err := decodeJSON([]byte(`"{\"amount\": 3, \"who\": \"ana\"}"`), &o); err != nil || o.Amount != 3 || o.Who != "ana" {
		t.Errorf("object: %+v %v", o, err)
	}
	var s string
	if err := decodeJSON([]byte(`"true"`), &s); err != nil || s != "true" {
		t.Errorf("string: %q %v", s, err)
	}
	if err := decodeJSON([]byte(`"yes"`), &b); err == nil {
		t.Error(`"yes" decoded into a bool`)
	}
	if err := decodeJSON([]byte(`"{\"amount\": \"x\"}"`), &o); err == nil {
		t.Error("an object whose field does not fit decoded")
	}
	// Through GetInput, the path an orchestrator's input takes.
	c := &OrchestrationContext{e: &Executor{input: []byte(`"{\"amount\": 7}"`)}}
	if err := c.GetInput(&o); err != nil || o.Amount != 7 {
		t.Errorf("GetInput: %+v %v", o, err)
	}
	c = &OrchestrationContext{e: &Executor{input: []byte(`"nope"`)}}
	var de *DecodeError
	if err := c.GetInput(&n); !errors.As(err, &de) {
		t.Errorf("GetInput of a string that is not a number: %v, want a *DecodeError", err)
	}
}
