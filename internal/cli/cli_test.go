package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/herald-sse/herald/internal/cli"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring expected in stdout
		stderr string // a substring expected in stderr
	}{
		{"no command", nil, cli.ExitUsage, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, cli.ExitUsage, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, cli.ExitOK, "Commands:", ""},
		{"--help", []string{"--help"}, cli.ExitOK, "version", ""},
		{"help version", []string{"help", "version"}, cli.ExitOK, "Usage: herald version", ""},
		{"help unknown", []string{"help", "nope"}, cli.ExitUsage, "", `unknown command "nope"`},
		{"version", []string{"version"}, cli.ExitOK, "herald ", ""},
		{"--version", []string{"--version"}, cli.ExitOK, "herald ", ""},
		{"version with a bad flag", []string{"version", "-x"}, cli.ExitUsage, "", "flag provided but not defined"},
		{"version with arguments", []string{"version", "extra"}, cli.ExitUsage, "", "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := run(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
