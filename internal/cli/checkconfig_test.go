package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/internal/fdlimit"
)

// writeCert writes a self-signed certificate valid from notBefore to
// notAfter, and its key, and returns their paths.
func writeCert(t *testing.T, notBefore, notAfter time.Time) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}}, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestCheckConfigValid(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HERALD_PUBLISHER_JWT_KEY": testKey, "HERALD_HEARTBEAT": "5s"}
	dir := filepath.Join(t.TempDir(), "not", "yet")
	code, stdout, stderr := cmd(t, env, "", "check-config", "-addr", "127.0.0.1:0", "-data-dir", dir, "-batch-interval", "10ms")
	if code != cli.ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, line := range []string{
		`heartbeat +5s +environment HERALD_HEARTBEAT`,
		`batch-interval +10ms +flag -batch-interval`,
		`dispatch-timeout +5s +default`,
		`max-selectors +256 +default`,
		`max-claim-selectors +1000 +default`,
		`max-templates +10000 +default`,
		fmt.Sprintf(`max-connections +%d +default`, hub.DefaultMaxConnections()),
		`publisher-jwt-key +\(41 bytes, hidden\) +environment HERALD_PUBLISHER_JWT_KEY`,
		`The configuration is valid`,
	} {
		if !regexp.MustCompile(`(?m)^` + line).MatchString(stdout) {
			t.Errorf("no line %q in:\n%s", line, stdout)
		}
	}
	if strings.Contains(stdout, testKey) {
		t.Error("the key is shown")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("check-config created the data directory")
	}
}

func TestCheckConfigFindings(t *testing.T) {
	t.Parallel()
	validCert, validKey := writeCert(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	expiredCert, expiredKey := writeCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	soonCert, soonKey := writeCert(t, time.Now().Add(-time.Hour), time.Now().Add(72*time.Hour))
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	boltDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(boltDir, "history.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = busy.Close() })

	key := []string{"-publisher-jwt-key", testKey}
	type finding struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		problems []string // substrings, one per expected "problem:" line
		warnings []string // substrings, one per expected "warning:" line
	}
	// The checks of max-connections against the limit on open files,
	// where there is one.
	var descriptors []finding
	if limit, ok := fdlimit.Current(); ok {
		conns := func(n int) []string {
			return append([]string{"-store", "memory", "-addr", "127.0.0.1:0", "-max-connections", strconv.Itoa(n)}, key...)
		}
		descriptors = []finding{
			{name: "no connection limit", args: conns(0), code: cli.ExitOK,
				warnings: []string{"max-connections: 0, no limit"}},
			{name: "more connections than files", args: conns(limit + 1), code: cli.ExitOK,
				warnings: []string{fmt.Sprintf("max-connections: %d is more than the limit on open files (%d)", limit+1, limit)}},
			{name: "no room beside the connections", args: conns(limit - 10), code: cli.ExitOK,
				warnings: []string{fmt.Sprintf("max-connections: %d leaves 10 of the %d open files", limit-10, limit)}},
		}
	}
	for _, tc := range append(descriptors, []finding{
		{
			name: "a certificate",
			args: append([]string{"-store", "memory", "-addr", "127.0.0.1:0", "-tls-cert", validCert, "-tls-key", validKey}, key...),
			code: cli.ExitOK,
		},
		{
			name:     "the development setup",
			args:     []string{"-store", "memory", "-addr", "127.0.0.1:0"},
			code:     cli.ExitOK,
			warnings: []string{"no publisher-jwt-key"},
		},
		{
			name:     "short secrets",
			args:     []string{"-store", "memory", "-addr", "127.0.0.1:0", "-publisher-jwt-key", "short", "-subscriber-jwt-key", "also short", "-subscriber-jwt-alg", "HS512"},
			code:     cli.ExitOK,
			warnings: []string{"publisher-jwt-key: 5 bytes is short for HS256, which wants at least 32", "subscriber-jwt-key: 10 bytes is short for HS512, which wants at least 64"},
		},
		{
			name:     "an address in use",
			args:     append([]string{"-store", "memory", "-addr", busy.Addr().String()}, key...),
			code:     cli.ExitOK,
			warnings: []string{"could not listen on " + busy.Addr().String()},
		},
		{
			name:     "a certificate about to expire",
			args:     append([]string{"-store", "memory", "-addr", "127.0.0.1:0", "-tls-cert", soonCert, "-tls-key", soonKey}, key...),
			code:     cli.ExitOK,
			warnings: []string{"in less than 14 days"},
		},
		{
			name:     "a history of the other store",
			args:     append([]string{"-store", "pebble", "-data-dir", boltDir, "-addr", "127.0.0.1:0"}, key...),
			code:     cli.ExitOK,
			warnings: []string{"holds a bolt history, which store pebble does not read"},
		},
		{
			name: "every problem at once",
			env:  map[string]string{"HERALD_HEARTBEAT": "soon", "HERALD_PUBLISHER_JWT_ALG": "RS256"},
			args: append([]string{"-store", "floppy", "-history-size", "-3", "-max-connections", "-1", "-addr", "localhost:99999", "-tls-cert", expiredCert, "-tls-key", expiredKey}, key...),
			code: cli.ExitFailure,
			problems: []string{
				`environment variable HERALD_HEARTBEAT: "soon" is not a duration: write it like 5s, 1m30s or 250ms`,
				"flag -addr: port 99999 is out of range",
				`flag -store: "floppy" is not one of`,
				"flag -history-size: -3 is negative",
				"flag -max-connections: -1 is negative",
				"publisher-jwt-key: ",
				"tls-cert: " + expiredCert + " expired on ",
			},
		},
		{
			name:     "a certificate with another's key",
			args:     append([]string{"-store", "memory", "-addr", "127.0.0.1:0", "-tls-cert", validCert, "-tls-key", soonKey}, key...),
			code:     cli.ExitFailure,
			problems: []string{"tls-cert and tls-key: "},
		},
		{
			name:     "a data directory that is a file",
			args:     append([]string{"-store", "bolt", "-data-dir", file, "-addr", "127.0.0.1:0"}, key...),
			code:     cli.ExitFailure,
			problems: []string{"data-dir: " + file + " is not a directory"},
		},
		{
			name:     "profiling on the hub's address",
			args:     append([]string{"-store", "memory", "-addr", busy.Addr().String(), "-pprof-addr", busy.Addr().String()}, key...),
			code:     cli.ExitFailure,
			problems: []string{"pprof-addr: " + busy.Addr().String() + " is also addr"},
			warnings: []string{"addr: herald serve could not listen on", "pprof-addr: herald serve could not listen on"},
		},
		{
			name:     "an address without a port",
			args:     append([]string{"-store", "memory", "-addr", "localhost"}, key...),
			code:     cli.ExitFailure,
			problems: []string{`flag -addr: "localhost" is not host:port (missing port in address); write it like :8080 or 127.0.0.1:8080`},
		},
		{
			name:     "a bad flag value, with the others",
			env:      map[string]string{"HERALD_WRITE_TIMEOUT": "ten minutes"},
			args:     append([]string{"-store", "memory", "-addr", "127.0.0.1:0", "-heartbeat", "soon", "-anonymous=perhaps"}, key...),
			code:     cli.ExitFailure,
			problems: []string{`flag -anonymous: "perhaps" is not a boolean`, `flag -heartbeat: "soon" is not a duration: write it like 5s`, `environment variable HERALD_WRITE_TIMEOUT: "ten minutes" is not a duration`},
		},
		{
			name:     "Mercure's directives herald cannot honour",
			env:      map[string]string{"MERCURE_EXTRA_DIRECTIVES": "anonymous\nplayground\ntopic_selector_cache 100"},
			args:     append([]string{"-store", "memory", "-addr", "127.0.0.1:0"}, key...),
			code:     cli.ExitOK,
			warnings: []string{"MERCURE_EXTRA_DIRECTIVES line 2: playground: herald serves one web page", "MERCURE_EXTRA_DIRECTIVES line 3: topic_selector_cache: herald needs no cache"},
		},
	}...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := cmd(t, tc.env, "", append([]string{"check-config"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			lines := func(prefix string) []string {
				var ls []string
				for l := range strings.Lines(stderr) {
					if s, ok := strings.CutPrefix(l, prefix); ok {
						ls = append(ls, s)
					}
				}
				return ls
			}
			match := func(kind string, got, want []string) {
				if len(got) != len(want) {
					t.Errorf("%d %ss, want %d; stderr:\n%s", len(got), kind, len(want), stderr)
					return
				}
				for i := range want {
					if !strings.Contains(got[i], want[i]) {
						t.Errorf("%s %q, want one with %q", kind, got[i], want[i])
					}
				}
			}
			warnings := lines("warning: ")
			if !slices.ContainsFunc(tc.warnings, func(w string) bool { return strings.HasPrefix(w, "max-connections:") }) {
				// The default may leave too few descriptors where
				// the limit on open files is low.
				warnings = slices.DeleteFunc(warnings, func(w string) bool { return strings.HasPrefix(w, "max-connections:") })
			}
			match("problem", lines("problem: "), tc.problems)
			match("warning", warnings, tc.warnings)
			valid := strings.Contains(stdout, "The configuration is valid")
			if valid != (tc.code == cli.ExitOK) {
				t.Errorf("valid %v with exit %d:\n%s", valid, code, stdout)
			}
			if tc.code != cli.ExitOK && !strings.Contains(stderr, "herald serve would not start") {
				t.Errorf("stderr:\n%s", stderr)
			}
		})
	}
}

// check-config shows each value with where it came from: the same option
// from the default, the file, Mercure's directives, the environment and a
// flag, each winning over the one before; and the real defaults.
func TestCheckConfigSources(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(file, []byte("# herald\nheartbeat = \"10s\"\nstore = \"memory\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"check-config", "-publisher-jwt-key", testKey}
	directives := map[string]string{"MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s", "HERALD_CONFIG": file}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		line string // a regular expression
	}{
		{"default", nil, nil, `heartbeat +40s +default`},
		{"file", []string{"-config", file}, nil, `heartbeat +10s +file ` + regexp.QuoteMeta(file) + `:2`},
		{"the file's name", []string{"-config", file}, nil, `config +` + regexp.QuoteMeta(file) + ` +flag -config`},
		{"the file's name from the environment", nil, map[string]string{"HERALD_CONFIG": file}, `config +` + regexp.QuoteMeta(file) + ` +environment HERALD_CONFIG`},
		{"directive", nil, directives, `heartbeat +20s +MERCURE_EXTRA_DIRECTIVES \(heartbeat 20s\)`},
		{"environment", nil, map[string]string{"HERALD_CONFIG": file, "MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s", "HERALD_HEARTBEAT": "30s"}, `heartbeat +30s +environment HERALD_HEARTBEAT`},
		{"flag", []string{"-heartbeat", "1m"}, map[string]string{"HERALD_CONFIG": file, "MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s", "HERALD_HEARTBEAT": "30s"}, `heartbeat +1m0s +flag -heartbeat`},
		{"SERVER_NAME", nil, map[string]string{"SERVER_NAME": ":0"}, `addr +:0 +SERVER_NAME \(:0\)`},
		{"max-batch-interval", nil, nil, `max-batch-interval +4 × batch-interval = 20ms +default`},
		{"history-size of pebble", nil, nil, `history-size +1000000 \(store pebble's default\) +default`},
		{"history-size of memory", []string{"-config", file}, nil, `history-size +10000 \(store memory's default\) +default`},
		{"subscriber key", nil, nil, `subscriber-jwt-key +\(the publisher key\) +default`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(slices.Clone(base), "-data-dir", t.TempDir())
			if tc.env["SERVER_NAME"] == "" {
				args = append(args, "-addr", "127.0.0.1:0")
			}
			code, stdout, stderr := cmd(t, tc.env, "", append(args, tc.args...)...)
			if code != cli.ExitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if !regexp.MustCompile(`(?m)^` + tc.line + ` *$`).MatchString(stdout) {
				t.Errorf("no line %q in:\n%s", tc.line, stdout)
			}
		})
	}
}

// A mistake in the command line itself is a usage error, as for serve,
// answered without the whole usage; a bad value is one of the problems.
func TestCheckConfigUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-no-such-flag"}, {"extra"}} {
		code, _, stderr := cmd(t, nil, "", append([]string{"check-config"}, args...)...)
		if code != cli.ExitUsage || strings.Contains(stderr, "Usage:") || !strings.Contains(stderr, "Run 'herald help check-config' for usage.") {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", args, code, cli.ExitUsage, stderr)
		}
	}
	// -h prints the usage, every flag.
	if code, _, stderr := cmd(t, nil, "", "check-config", "-h"); code != cli.ExitOK ||
		!strings.Contains(stderr, "Usage: herald check-config") || !strings.Contains(stderr, "-config file") {
		t.Errorf("-h: exit %d, stderr:\n%s", code, stderr)
	}
}
