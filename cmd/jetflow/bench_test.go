package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	args := []string{"bench", "--workload", "history", "-n", "10", "--json"}
	if err := run(context.Background(), env, args); err != nil {
		t.Fatalf("jetflow %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var r struct {
		Workload string `json:"workload"`
		N        int    `json:"n"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.Workload != "history" || r.N != 10 {
		t.Errorf("output %q: %+v, %v", out.String(), r, err)
	}
	if errOut.Len() != 0 {
		t.Errorf("--json, but stderr has %q", errOut.String())
	}
}

func TestBenchCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--workload", "nope"},
		{"bench", "-n", "-1"},
		{"bench", "extra"},
	} {
		var out, errOut bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		if code := exitCode(run(context.Background(), env, args)); code != exitUsage {
			t.Errorf("jetflow %s: exit %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
	}
}
