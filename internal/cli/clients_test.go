package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/sse"
)

// herald token, publish and subscribe, against herald serve.

const testKey = "the CLI tests' key, long enough for HS256"

// cmd runs a command to its end with the environment variables env and
// the standard input stdin.
func cmd(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = cli.Run(t.Context(), args, cli.Env{
		Stdin:     strings.NewReader(stdin),
		Stdout:    &out,
		Stderr:    &errOut,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	return code, out.String(), errOut.String()
}

// background runs a command until it ends or stop is called, which
// interrupts it (Ctrl-C's path) and returns its exit code.
func background(t *testing.T, env map[string]string, args ...string) (stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- cli.Run(ctx, args, cli.Env{
			Stdout: stdout, Stderr: stderr,
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
	}()
	exit := -1
	stop = func() int {
		if exit >= 0 {
			return exit
		}
		cancel()
		select {
		case exit = <-code:
		case <-time.After(20 * time.Second):
			t.Fatal("the command did not stop")
		}
		return exit
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// waitFor waits until s holds want.
func waitFor(t *testing.T, s *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, s.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// keyed runs herald serve with testKey, for anonymous subscribers too,
// and returns its base URL and the
// environment the clients use to reach it.
func keyed(t *testing.T) (string, map[string]string) {
	t.Helper()
	base, _, _ := serve(t, map[string]string{"HERALD_PUBLISHER_JWT_KEY": testKey}, "-store", "memory", "-anonymous")
	return base, map[string]string{"HERALD_HUB_URL": base}
}

func parseToken(t *testing.T, tok string, key any) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(strings.TrimSpace(tok), claims, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return claims
}

func TestToken(t *testing.T) {
	t.Parallel()
	code, out, errOut := cmd(t, nil, "", "token", "-publish", "*", "-subscribe", "/a/{id}", "-subscribe", "/b", "-key", testKey, "-payload", `{"user":"ann"}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	claims := parseToken(t, out, []byte(testKey))
	m, _ := json.Marshal(claims["mercure"])
	if string(m) != `{"payload":{"user":"ann"},"publish":["*"],"subscribe":["/a/{id}","/b"]}` {
		t.Errorf("mercure claim %s", m)
	}
	exp, _ := claims.GetExpirationTime()
	if exp == nil || time.Until(exp.Time) < 23*time.Hour || time.Until(exp.Time) > 25*time.Hour {
		t.Errorf("expiry %v, want in 24h", exp)
	}

	// -ttl 0: no expiry; the key from the environment.
	code, out, errOut = cmd(t, map[string]string{"HERALD_PUBLISHER_JWT_KEY": testKey}, "", "token", "-publish", "/x", "-ttl", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, ok := parseToken(t, out, []byte(testKey))["exp"]; ok {
		t.Error("-ttl 0 set an expiry")
	}
	// A subscriber's token takes the subscriber key when there is one.
	code, out, _ = cmd(t, map[string]string{"HERALD_PUBLISHER_JWT_KEY": testKey, "MERCURE_SUBSCRIBER_JWT_KEY": "another key, long enough"}, "", "token", "-subscribe", "/x", "-alg", "HS512")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if tok, _ := jwt.Parse(strings.TrimSpace(out), func(*jwt.Token) (any, error) { return []byte("another key, long enough"), nil }); tok == nil || !tok.Valid || tok.Method.Alg() != "HS512" {
		t.Errorf("token %q not signed HS512 with the subscriber key", out)
	}
}

func TestTokenAsymmetric(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaFile := write("rsa.pem", "PRIVATE KEY", pkcs8)
	rsa1File := write("rsa1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))
	ecFile := write("ec.pem", "EC PRIVATE KEY", ecDER)
	pubFile := write("pub.pem", "PUBLIC KEY", pubDER)

	for _, tc := range []struct {
		alg, file string
		verify    any
	}{
		{"RS256", rsaFile, &rsaKey.PublicKey},
		{"PS384", rsa1File, &rsaKey.PublicKey},
		{"ES256", ecFile, &ecKey.PublicKey},
	} {
		code, out, errOut := cmd(t, nil, "", "token", "-publish", "*", "-alg", tc.alg, "-key-file", tc.file)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.alg, code, errOut)
		}
		parseToken(t, out, tc.verify)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-alg", "ES256", "-key-file", rsaFile}, "an RSA key does not fit"},
		{[]string{"-alg", "RS256", "-key-file", pubFile}, "public key"},
		{[]string{"-alg", "HS256", "-key-file", rsaFile}, "not a PEM key"},
		{[]string{"-alg", "RS256", "-key", "not pem"}, "not a PEM-encoded private key"},
		{[]string{"-alg", "none", "-key", "x"}, "unknown signing algorithm"},
		{[]string{"-key-file", filepath.Join(dir, "missing")}, "no such file"},
	} {
		code, _, errOut := cmd(t, nil, "", append([]string{"token", "-publish", "*"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, %q; want an error with %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestTokenUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-key", "k"}, "allows nothing"},
		{[]string{"-publish", "*"}, "no key"},
		{[]string{"-publish", "*", "-key", "k", "-payload", "{"}, "not valid JSON"},
		{[]string{"-publish", "*", "-key", "k", "-ttl", "-1h"}, "negative"},
		{[]string{"-publish", "*", "-key", "k", "-key-file", "f"}, "pass one"},
		{[]string{"-publish", "*", "-key", "k", "extra"}, "unexpected arguments"},
	} {
		code, _, errOut := cmd(t, nil, "", append([]string{"token"}, tc.args...)...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 with %q", tc.args, code, errOut, tc.want)
		}
	}
}

// readAll subscribes from the start of the history and returns n events.
func readAll(t *testing.T, base string, n int, topics ...string) []sse.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tok := mintHS(t, nil, []string{"*"})
	s, err := (&client.Mercure{URL: base + "/.well-known/mercure", Token: tok}).Subscribe(ctx, topics, client.Options{LastEventID: "earliest"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []sse.Event
	for len(evs) < n {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func mintHS(t *testing.T, publish, subscribe []string) string {
	t.Helper()
	g := map[string]any{}
	if publish != nil {
		g["publish"] = publish
	}
	if subscribe != nil {
		g["subscribe"] = subscribe
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": g}).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPublish(t *testing.T) {
	t.Parallel()
	base, env := keyed(t)

	code, out, errOut := cmd(t, env, "", "publish", "-topic", "/orders/1", "-topic", "/all", "-data", "paid", "-key", testKey)
	if code != 0 || !strings.HasPrefix(out, "urn:uuid:") {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	first := strings.TrimSpace(out)
	// Flags after the data, the data from stdin, every field.
	code, out, errOut = cmd(t, env, "line 1\nline 2\n", "publish", "-topic", "/orders/2", "-data", "-", "-private",
		"-id", "my-id", "-type", "status", "-retry", "2500ms", "-token", mintHS(t, []string{"/orders/{id}"}, nil))
	if code != 0 || out != "my-id\n" {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	// The key from the environment, as herald serve reads it.
	env2 := map[string]string{"HERALD_HUB_URL": base, "MERCURE_PUBLISHER_JWT_KEY": testKey}
	if code, _, errOut = cmd(t, env2, "", "publish", "-topic", "/orders/3", "-end"); code != 0 {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	// A token from the environment.
	env3 := map[string]string{"HERALD_HUB_URL": base, "HERALD_TOKEN": mintHS(t, []string{"*"}, nil)}
	if code, _, errOut = cmd(t, env3, "", "publish", "-topic", "/elsewhere"); code != 0 {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	evs := readAll(t, base, 3, "/orders/{id}")
	if evs[0].ID != first || evs[0].Data != "paid" {
		t.Errorf("first %+v", evs[0])
	}
	if evs[1].ID != "my-id" || evs[1].Type != "status" || evs[1].Data != "line 1\nline 2\n" {
		t.Errorf("second %+v", evs[1])
	}
	if evs[2].Data != "" {
		t.Errorf("third %+v", evs[2])
	}
	// The third ended its topic: a subscription to it alone is refused
	// with 204.
	if code, _ := get(t, base+"/.well-known/mercure?topic=/orders/3"); code != http.StatusNoContent {
		t.Errorf("subscribing to the ended topic: %d", code)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	_, env := keyed(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	notHub := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notHub.Close)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no topic", []string{"-data", "x", "-key", testKey}, 2, []string{"no topic"}},
		{"positional data", []string{"-topic", "/a", "hello"}, 2, []string{"unexpected arguments", "-data"}},
		{"bad URL", []string{"-topic", "/a", "-hub", "localhost:8080"}, 2, []string{"not a hub URL", "http://"}},
		{"token and key", []string{"-topic", "/a", "-token", "t", "-key", "k"}, 2, []string{"pass one"}},
		{"bad retry", []string{"-topic", "/a", "-retry", "-1s", "-key", testKey}, 2, []string{"-retry"}},
		{"no token", []string{"-topic", "/a"}, 1, []string{"401 Unauthorized (missing_token)", "-key", "HERALD_PUBLISHER_JWT_KEY"}},
		{"bad token", []string{"-topic", "/a", "-token", "x.y.z"}, 1, []string{"401 Unauthorized (invalid_token)", "signed with the hub's key"}},
		{"wrong key", []string{"-topic", "/a", "-key", "not the hub's key"}, 1, []string{"invalid_token"}},
		{"topic not allowed", []string{"-topic", "/a", "-token", mintHS(t, []string{"/b"}, nil)}, 1, []string{"403 Forbidden (forbidden)", "mercure.publish"}},
		{"refused", []string{"-topic", "/a", "-key", testKey, "-hub", closedURL}, 1, []string{"connection refused", "herald serve"}},
		{"not a hub", []string{"-topic", "/a", "-key", testKey, "-hub", notHub.URL}, 1, []string{"404", hubPathHint}},
		{"unknown host", []string{"-topic", "/a", "-key", testKey, "-hub", "http://no-such-host.invalid/"}, 1, []string{"unknown host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cmd(t, env, "", append([]string{"publish"}, tc.args...)...)
			if code != tc.code || out != "" {
				t.Errorf("exit %d, stdout %q; want %d", code, out, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}

const hubPathHint = "/.well-known/mercure"

var humanEvent = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d\d\d status id=urn:uuid:[0-9a-f-]+\n  line 1\n  line 2\n$`)

func TestSubscribe(t *testing.T) {
	t.Parallel()
	base, env := keyed(t)
	pubEnv := map[string]string{"HERALD_HUB_URL": base, "HERALD_PUBLISHER_JWT_KEY": testKey}
	pub := func(args ...string) string {
		t.Helper()
		code, out, errOut := cmd(t, pubEnv, "", append([]string{"publish"}, args...)...)
		if code != 0 {
			t.Fatalf("publish: %d %s", code, errOut)
		}
		return strings.TrimSpace(out)
	}

	// Human form, with a key from the flags: private updates too.
	out, errOut, stop := background(t, env, "subscribe", "-topic", "/rooms/{id}", "-key", testKey)
	waitFor(t, errOut, "connected to "+base+"/.well-known/mercure?topic=/rooms/{id}")
	pub("-topic", "/rooms/1", "-data", "line 1\nline 2", "-type", "status", "-private")
	waitFor(t, out, "line 2\n")
	if !humanEvent.MatchString(out.String()) {
		t.Errorf("human form %q", out.String())
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d on interrupt: %s", code, errOut)
	}

	// JSON lines, resumed, to a count, anonymous: the private update is
	// not among them.
	first := pub("-topic", "/rooms/2", "-data", `{"n":1}`)
	pub("-topic", "/rooms/2", "-data", "<b>&</b>", "-id", "html")
	code, stdout, stderr := cmd(t, env, "", "subscribe", "-topic", "/rooms/{id}", "-last-event-id", "earliest", "-json", "-count", "2", "-quiet")
	if want := fmt.Sprintf("{\"id\":%q,\"type\":\"message\",\"data\":\"{\\\"n\\\":1}\"}\n{\"id\":\"html\",\"type\":\"message\",\"data\":\"<b>&</b>\"}\n", first); code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want stdout %q", code, stdout, stderr, want)
	}

	// Refusals, with the hub's reason.
	code, _, stderr = cmd(t, env, "", "subscribe", "-topic", "/rooms/{id}", "-token", "x.y.z")
	if code != 1 || !strings.Contains(stderr, "401 Unauthorized (invalid_token)") {
		t.Errorf("bad token: exit %d, %q", code, stderr)
	}
	// An ended topic: the stream ends, not an error.
	pub("-topic", "/trips/1", "-end")
	code, _, stderr = cmd(t, env, "", "subscribe", base+"/.well-known/mercure?topic=/trips/1")
	if code != 0 || !strings.Contains(stderr, "ended the stream") {
		t.Errorf("ended topic: exit %d, %q", code, stderr)
	}
}

// Any event stream: a server that drops the connection after each event
// sees the client come back with Last-Event-ID.
func TestSubscribeReconnects(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" {
			http.Error(w, "no X-Test header", http.StatusBadRequest)
			return
		}
		s, err := sse.NewStream(w, r, sse.StreamConfig{Retry: 10 * time.Millisecond})
		if err != nil {
			return
		}
		defer s.Close()
		n := len(r.Header.Get("Last-Event-ID"))
		if n >= 3 {
			time.Sleep(time.Hour)
		}
		_ = s.Comment("hi")
		_ = s.Send(sse.Event{ID: strings.Repeat("x", n+1), Data: fmt.Sprint("event ", n+1)})
	}))
	defer srv.Close()

	code, stdout, stderr := cmd(t, nil, "", "subscribe", srv.URL, "-header", "X-Test: yes", "-count", "3", "-json", "-comments")
	want := `{"comment":"hi"}
{"id":"x","type":"message","data":"event 1"}
{"comment":"hi"}
{"id":"xx","type":"message","data":"event 2"}
{"comment":"hi"}
{"id":"xxx","type":"message","data":"event 3"}
`
	if code != 0 || stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "resuming after xx\n") || strings.Count(stderr, "connection lost: the server closed the stream; reconnecting in") != 2 {
		t.Errorf("stderr %q", stderr)
	}

	// Without the header: the server's refusal, in its words.
	code, _, stderr = cmd(t, nil, "", "subscribe", srv.URL)
	if code != 1 || !strings.Contains(stderr, "400 Bad Request: no X-Test header") {
		t.Errorf("exit %d, %q", code, stderr)
	}
	// -reconnect=false: the first drop ends the command.
	code, _, stderr = cmd(t, nil, "", "subscribe", srv.URL, "-header", "X-Test: yes", "-reconnect=false", "-quiet")
	if code != 1 || !strings.Contains(stderr, "connection lost: the server closed the stream") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

func TestSubscribeUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to subscribe to"},
		{[]string{"http://a/", "http://b/"}, "one URL at most"},
		{[]string{"localhost:8080", "-topic", "x"}, "not an http:// or https:// URL"},
		{[]string{"-topic", "x", "-header", "nocolon"}, "Name: value"},
		{[]string{"-topic", "x", "-count", "-1"}, "negative"},
	} {
		code, _, errOut := cmd(t, nil, "", append([]string{"subscribe"}, tc.args...)...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 with %q", tc.args, code, errOut, tc.want)
		}
	}
	// Connection refused, without reconnecting: exit 1 and the hint.
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	code, _, errOut := cmd(t, nil, "", "subscribe", "-hub", u, "-topic", "x", "-reconnect=false")
	if code != 1 || !strings.Contains(errOut, "connection refused; is the hub running?") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

// Every flag of the client commands is in docs/cli.md.
func TestClientFlagsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([\w-]+)`)
	for _, args := range [][]string{{"help", "subscribe"}, {"help", "publish"}, {"help", "token"},
		{"bench", "conns", "-h"}, {"bench", "fanout", "-h"}, {"bench", "reconnect", "-h"}, {"bench", "slow", "-h"}} {
		c := strings.Join(args[:len(args)-1], " ")
		if args[0] == "help" {
			c = args[1]
		}
		_, stdout, stderr := cmd(t, nil, "", args...)
		out := stdout + stderr
		flags := flagLine.FindAllStringSubmatch(out, -1)
		if len(flags) < 5 {
			t.Fatalf("help %s: %d flags in %q", c, len(flags), out)
		}
		for _, f := range flags {
			if !regexp.MustCompile(`-` + f[1] + `\b`).Match(doc) {
				t.Errorf("docs/cli.md does not mention -%s of herald %s", f[1], c)
			}
		}
	}
}

// herald bench slow refuses a volume it cannot read or that holds no event.
func TestBenchSlowVolume(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ volume, want string }{
		{"20XB", "is not a size"},
		{"-1MiB", "is not a size"},
		{"1kB", "want at least one event"}, // 1,000 bytes, under the 4096 of an event
	} {
		code, _, errOut := cmd(t, nil, "", "bench", "slow", "-volume", c.volume)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("-volume %s: exit %d, %q", c.volume, code, errOut)
		}
	}
}
