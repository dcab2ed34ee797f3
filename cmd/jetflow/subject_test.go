package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCmd runs a subcommand with an empty environment and returns its stdout, stderr and exit code.
func runCmd(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code = report(env, run(ctx, env, args))
	return out.String(), errOut.String(), code
}

func TestSubject(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"subject", "order-42", "Approval"}, "jetflow.inst.order-42.event.Approval"},
		{[]string{"subject", "order 42", "Approval"}, "jetflow.inst.order=2042.event.Approval"},
		{[]string{"subject", "a.b/ä=", "Manager OK"}, "jetflow.inst.a=2Eb=2F=C3=A4=3D.event.Manager=20OK"},
		{[]string{"subject", "order 42"}, "jetflow.inst.order=2042.>"},
	}
	for _, tt := range tests {
		out, errOut, code := runCmd(context.Background(), tt.args...)
		if code != 0 || strings.TrimSpace(out) != tt.want {
			t.Errorf("jetflow %q = %q (exit %d, stderr %q), want %q", tt.args, out, code, errOut, tt.want)
		}
	}
}

func TestSubjectErrors(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"subject"}, exitUsage, "want an instance ID"},
		{[]string{"subject", "", "Approval"}, exitUsage, `instance ID "": must not be empty`},
		{[]string{"subject", "x", "a\tb"}, exitUsage, "contains a control character"},
		{[]string{"subject", strings.Repeat("x", 257)}, exitUsage, "longer than 256 characters"},
		{[]string{"nope"}, exitUsage, `unknown command "nope"`},
	}
	for _, tt := range tests {
		out, errOut, code := runCmd(context.Background(), tt.args...)
		if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) || out != "" {
			t.Errorf("jetflow %.40q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, out, errOut, tt.wantCode, tt.wantErr)
		}
	}
}
