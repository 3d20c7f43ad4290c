package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/internal/cli/clitest"
	"github.com/herald-sse/herald/sse"
)

// syncBuffer is a buffer safe to read while a command writes to it.
type syncBuffer = clitest.Buffer

// serve runs "herald serve" with the arguments and environment in the
// background and returns its base URL, its stderr and a function that
// stops it (SIGTERM's path) and returns its exit code.
func serve(t *testing.T, env map[string]string, args ...string) (base string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	h := clitest.Serve(t, env, args...)
	return h.Base, h.Stderr, h.Stop
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func publish(t *testing.T, base, tok string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With no configuration, serve makes up a development setup, prints how
// to use it, and works as printed.
func TestServeDevelopmentSetup(t *testing.T) {
	t.Parallel()
	base, stderr, stop := serve(t, nil)
	out := stderr.String()
	tok := regexp.MustCompile(`(?m)^    (ey[\w-]+\.[\w-]+\.[\w-]+)$`).FindStringSubmatch(out)
	if tok == nil || !strings.Contains(out, "curl -N") || !strings.Contains(out, "/.well-known/mercure") {
		t.Fatalf("no development setup printed:\n%s", out)
	}
	if status, body := get(t, base+"/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	if status, _ := get(t, base+"/readyz"); status != 200 {
		t.Fatalf("/readyz: %d", status)
	}
	// Mercure's development setup: the subscriptions API, and CORS for
	// any origin, with credentials; both said at start-up.
	if !strings.Contains(out, "Anonymous subscribers: allowed. Subscriptions API: on. Origins allowed by CORS: *.") {
		t.Fatalf("the development setup's defaults are not printed:\n%s", out)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/mercure/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != 200 {
		t.Fatalf("subscriptions API in the development setup: %d", resp.StatusCode)
	}
	if got := corsOrigin(t, base, "https://app.example.net"); got != "https://app.example.net" {
		t.Fatalf("CORS in the development setup: Access-Control-Allow-Origin %q", got)
	}

	// Anonymous subscription, publication with the printed token.
	resp, err := http.Get(base + "/.well-known/mercure?topic=demo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if status, body := publish(t, base, tok[1], url.Values{"topic": {"demo"}, "data": {"hello"}}); status != 200 {
		t.Fatalf("publish with the printed token: %d %s", status, body)
	}
	d := sse.NewDecoder(resp.Body)
	var ev sse.Event
	if err := d.Decode(&ev); err != nil || ev.Data != "hello" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	if status, _ := publish(t, base, "", url.Values{"topic": {"demo"}}); status != 401 {
		t.Fatalf("publish without a token: %d", status)
	}
	// The herald commands printed work as printed.
	printed := regexp.MustCompile(`(?m)^    herald (publish .*)$`).FindStringSubmatch(out)
	if printed == nil {
		t.Fatalf("no herald publish command printed:\n%s", out)
	}
	if code, id, errOut := cmd(t, nil, "", strings.Fields(printed[1])...); code != 0 {
		t.Fatalf("%s: exit %d: %s", printed[0], code, errOut)
	} else if err := d.Decode(&ev); err != nil || ev.Data != "hello" || ev.ID+"\n" != id {
		t.Fatalf("got %+v, %v; want the event %s", ev, err, id)
	}
	if !strings.Contains(out, "herald subscribe -hub "+base+" -topic demo\n") {
		t.Fatalf("no herald subscribe command printed:\n%s", out)
	}

	// SIGTERM: a graceful stop; the stream ends cleanly.
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if err := d.Decode(&ev); err != io.EOF {
		t.Fatalf("after shutdown the stream gave %+v, %v", ev, err)
	}
	if r, ok := d.Retry(); !ok || r < time.Second {
		t.Fatalf("no reconnection delay before the end: %v %v", r, ok)
	}
}

// corsOrigin sends a CORS preflight for a subscription from origin and
// returns the Access-Control-Allow-Origin answered.
func corsOrigin(t *testing.T, base, origin string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, base+"/.well-known/mercure?topic=demo", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Access-Control-Allow-Origin")
}

// Keys from the environment, under Mercure's names: no development setup,
// no anonymous subscribers unless asked.
func TestServeWithKeys(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"MERCURE_PUBLISHER_JWT_KEY":  "publisher secret of the serve test",
		"MERCURE_SUBSCRIBER_JWT_KEY": "subscriber secret of the serve test",
		"HERALD_SUBSCRIPTIONS":       "1",
	}
	base, stderr, _ := serve(t, env)
	if strings.Contains(stderr.String(), "Development setup") {
		t.Fatal("a development setup despite the keys")
	}
	if status, _ := get(t, base+"/.well-known/mercure?topic=a"); status != 401 {
		t.Fatalf("anonymous subscriber: %d", status)
	}
	if got := corsOrigin(t, base, "https://app.example.net"); got != "" {
		t.Fatalf("CORS without -cors-origins outside the development setup: Access-Control-Allow-Origin %q", got)
	}
	sign := func(key string, claims map[string]any) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claims}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if status, body := publish(t, base, sign(env["MERCURE_PUBLISHER_JWT_KEY"], map[string]any{"publish": []string{"*"}}), url.Values{"topic": {"a"}}); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	if status, _ := publish(t, base, sign(env["MERCURE_SUBSCRIBER_JWT_KEY"], map[string]any{"publish": []string{"*"}}), url.Values{"topic": {"a"}}); status != 401 {
		t.Fatalf("publish signed with the subscriber key: %d", status)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/mercure/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+sign(env["MERCURE_SUBSCRIBER_JWT_KEY"], map[string]any{"subscribe": []string{"*"}}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("subscriptions API: %d", resp.StatusCode)
	}
}

// A configuration serve cannot run with stops it before it opens anything,
// with exit code 2 and a line per problem naming where the value came
// from, without the whole usage.
func TestServeBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown store", []string{"serve", "-store", "floppy"}, nil, `herald serve: flag -store: "floppy" is not one of`},
		{"bad duration in the environment", []string{"serve"}, map[string]string{"HERALD_HEARTBEAT": "often"}, `herald serve: environment variable HERALD_HEARTBEAT: "often" is not a duration: write it like 5s, 1m30s or 250ms`},
		{"bad key", []string{"serve", "-publisher-jwt-alg", "RS256", "-publisher-jwt-key", "not a PEM key"}, nil, "herald serve: publisher-jwt-key: "},
		{"address without a port", []string{"serve", "-addr", "bogus"}, nil, `herald serve: flag -addr: "bogus" is not host:port (missing port in address); write it like :8080 or 127.0.0.1:8080`},
		{"port out of range", []string{"serve", "-addr", ":65536"}, nil, "herald serve: flag -addr: port 65536 is out of range"},
		{"missing certificate", []string{"serve", "-store", "memory", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, nil, "herald serve: tls-cert and tls-key: "},
		{"unknown directive argument", []string{"serve"}, map[string]string{"MERCURE_EXTRA_DIRECTIVES": "heartbeat"}, "herald serve: MERCURE_EXTRA_DIRECTIVES line 1: heartbeat: takes one argument"},
		{"unexpected arguments", []string{"serve", "extra"}, nil, "unexpected arguments"},
		{"unknown flag", []string{"serve", "-nope"}, nil, "flag provided but not defined: -nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := cmd(t, c.env, "", c.args...)
			if code != cli.ExitUsage || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, c.want)
			}
			if strings.Contains(stderr, "Usage:") || strings.Count(stderr, "\n") > 2 {
				t.Errorf("more than the problem and a pointer:\n%s", stderr)
			}
		})
	}
}

// A bad duration in each of the four places at once, and a key the file
// should not have: serve lists every problem, each with how to write a
// duration, and exits 2 without the usage.
func TestServeEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(file, []byte("dispatch-timeout = \"5 s\"\nhearbeat = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"HERALD_WRITE_TIMEOUT":     "10 minutes",
		"MERCURE_EXTRA_DIRECTIVES": "anonymous\nheartbeat often",
	}
	code, _, stderr := cmd(t, env, "", "serve", "-config", file, "-shutdown-timeout", "soon", "-store", "memory")
	if code != cli.ExitUsage {
		t.Errorf("exit %d, want 2", code)
	}
	want := []string{
		file + `:1: dispatch-timeout: "5 s" is not a duration: write it like 5s, 1m30s or 250ms`,
		file + `:2: unknown key "hearbeat"`,
		`MERCURE_EXTRA_DIRECTIVES line 2 (heartbeat often): "often" is not a duration: write it like 5s, 1m30s or 250ms`,
		`environment variable HERALD_WRITE_TIMEOUT: "10 minutes" is not a duration: write it like 5s, 1m30s or 250ms`,
		`flag -shutdown-timeout: "soon" is not a duration: write it like 5s, 1m30s or 250ms`,
	}
	var got []string
	for l := range strings.Lines(stderr) {
		if p, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), "herald serve: "); ok {
			got = append(got, p)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%s", len(got), len(want), stderr)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, w) }) {
			t.Errorf("no problem %q in:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "Usage:") {
		t.Errorf("the usage:\n%s", stderr)
	}
}

// A port already taken is a failure to run, not a usage error, and says
// what to do.
func TestServePortTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	code, _, stderr := cmd(t, nil, "", "serve", "-store", "memory", "-addr", addr)
	want := "herald serve: -addr " + addr + ": the port is in use; choose another with -addr or HERALD_ADDR (listen tcp " + addr + ": bind: address already in use)"
	if code != cli.ExitFailure || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
	}
}

// Mercure's docker-compose environment starts a hub that behaves as
// Mercure would with it: anonymous subscribers get 200 and the events, the
// subscriptions API answers, CORS headers go to any origin; nothing is
// warned of, since herald honours all of it.
func TestServeMercureEnvironment(t *testing.T) {
	t.Parallel()
	const pubKey, subKey = "!ChangeThisMercureHubJWTSecretKey!", "!ChangeThisSubscriberJWTSecretKey!"
	env := map[string]string{
		"MERCURE_PUBLISHER_JWT_KEY":  pubKey,
		"MERCURE_SUBSCRIBER_JWT_KEY": subKey,
		"MERCURE_EXTRA_DIRECTIVES":   "anonymous\nsubscriptions\ncors_origins *",
	}
	base, stderr, _ := serve(t, env)
	if out := stderr.String(); strings.Contains(out, "Development setup") || strings.Contains(out, "MERCURE") {
		t.Errorf("serve's start:\n%s", out)
	}
	sign := func(key string, claims map[string]any) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claims}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const origin = "https://any.example.org"

	// An anonymous subscriber from another origin.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/.well-known/mercure?topic=https://example.com/books/1", nil)
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous subscriber: %s", resp.Status)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}

	// A CORS preflight from any origin.
	pre, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, base+"/.well-known/mercure", nil)
	pre.Header.Set("Origin", "https://another.example.net")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization")
	presp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.Header.Get("Access-Control-Allow-Origin") != "https://another.example.net" || presp.StatusCode >= 300 {
		t.Errorf("preflight: %s, headers %v", presp.Status, presp.Header)
	}

	// A publication reaches the anonymous subscriber.
	if status, body := publish(t, base, sign(pubKey, map[string]any{"publish": []string{"*"}}),
		url.Values{"topic": {"https://example.com/books/1"}, "data": {"a book"}}); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	var ev sse.Event
	if err := sse.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Data != "a book" {
		t.Fatalf("the anonymous subscriber got %+v, %v", ev, err)
	}

	// The subscriptions API answers, with a subscriber's token.
	sreq, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/.well-known/mercure/subscriptions", nil)
	sreq.Header.Set("Authorization", "Bearer "+sign(subKey, map[string]any{"subscribe": []string{"/.well-known/mercure/subscriptions{/topic}{/subscriber}"}}))
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	var subs struct {
		Type          string `json:"type"`
		Subscriptions []struct {
			Topic string `json:"topic"`
		} `json:"subscriptions"`
	}
	if err := json.NewDecoder(sresp.Body).Decode(&subs); err != nil || sresp.StatusCode != 200 || subs.Type != "Subscriptions" ||
		!slices.ContainsFunc(subs.Subscriptions, func(s struct {
			Topic string `json:"topic"`
		}) bool {
			return s.Topic == "https://example.com/books/1"
		}) {
		t.Errorf("subscriptions API: %s %+v %v", sresp.Status, subs, err)
	}
}

// Without anonymous in Mercure's directives, the anonymous subscriber is
// refused and told why; a directive herald cannot honour is warned of by
// name in the log at start-up.
func TestServeMercureWarnings(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"MERCURE_PUBLISHER_JWT_KEY": "a publisher key of 32 bytes or more",
		"MERCURE_EXTRA_DIRECTIVES":  "subscriptions\nplayground",
	}
	base, stderr, _ := serve(t, env, "-store", "memory")
	if out := stderr.String(); !strings.Contains(out, "MERCURE_EXTRA_DIRECTIVES line 2: playground: herald serves one web page") ||
		strings.Count(out, "MERCURE_EXTRA_DIRECTIVES") != 1 {
		t.Errorf("no one warning of demo at start-up:\n%s", out)
	}
	status, body := get(t, base+"/.well-known/mercure?topic=a")
	if status != 401 || !strings.Contains(body, `"missing_token"`) || !strings.Contains(body, "does not allow anonymous subscribers") {
		t.Errorf("anonymous subscriber: %d %s", status, body)
	}
}

// With a certificate, serve speaks HTTPS through the hub's Serve, HTTP/2
// included: a subscription and a publication on one connection.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	cert, key := writeCert(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	base, _, _ := serve(t, nil, "-store", "memory", "-tls-cert", cert, "-tls-key", key,
		"-publisher-jwt-key", testKey, "-anonymous")
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	hubURL := "https://" + strings.TrimPrefix(base, "http://") + "/.well-known/mercure"

	resp, err := client.Get(hubURL + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("subscribing: %s over %s", resp.Status, resp.Proto)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader("topic=a&data=secure"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	presp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("publishing: %s", presp.Status)
	}
	var ev sse.Event
	if err := sse.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Data != "secure" {
		t.Fatalf("the subscriber got %+v, %v", ev, err)
	}
}

// The web page is on by default, beside the hub and the health endpoints,
// with its token endpoint in the development setup only; -ui=false gives
// / back to the hub, which answers its JSON 404.
func TestServeUI(t *testing.T) {
	t.Parallel()
	key := "-publisher-jwt-key=a publisher key of 32 bytes or more"
	for _, tc := range []struct {
		name  string
		args  []string
		root  int    // GET /
		token int    // POST /demo/token
		ctype string // of GET /
		subs  int    // GET /.well-known/mercure/subscriptions: on in the development setup, off with a key
	}{
		{"development setup", nil, 200, 200, "text/html; charset=utf-8", 401},
		{"a configured key", []string{key}, 200, 404, "text/html; charset=utf-8", 404},
		{"-ui=false", []string{"-ui=false"}, 404, 404, "application/json", 401},
		{"-ui=false, a configured key", []string{"-ui=false", key}, 404, 404, "application/json", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, stderr, _ := serve(t, nil, append([]string{"-store", "memory"}, tc.args...)...)
			if on := strings.Contains(stderr.String(), "the page is at "+base+"/ "); on != (tc.root == 200) {
				t.Errorf("the start-up lines say the page is on: %v, want %v:\n%s", on, tc.root == 200, stderr)
			}
			resp, err := http.Get(base + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.root || resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("GET /: %s %s, want %d %s", resp.Status, resp.Header.Get("Content-Type"), tc.root, tc.ctype)
			}
			if tc.root == 404 && !strings.Contains(string(body), `"error":"not_found"`) {
				t.Errorf("GET / without the page: %s, want the hub's not_found", body)
			}
			resp, err = http.PostForm(base+"/demo/token", url.Values{"role": {"rider"}, "trip": {"t1"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.token {
				t.Errorf("POST /demo/token: %s, want %d", resp.Status, tc.token)
			}
			// The hub keeps its paths.
			head, err := http.Head(base + "/.well-known/mercure?topic=a")
			if err != nil {
				t.Fatal(err)
			}
			head.Body.Close()
			if ct := head.Header.Get("Content-Type"); (head.StatusCode != 200 || ct != "text/event-stream") && (head.StatusCode != 401 || ct != "application/json") {
				t.Errorf("HEAD /.well-known/mercure: %s %s, want the hub's answer", head.Status, ct)
			}
			if status, body := get(t, base+"/.well-known/mercure/subscriptions"); status != tc.subs || !strings.HasPrefix(body, `{"error":`) {
				t.Errorf("GET /.well-known/mercure/subscriptions: %d %s, want the hub's %d", status, body, tc.subs)
			}
			if status, _ := get(t, base+"/healthz"); status != 200 {
				t.Errorf("/healthz: %d", status)
			}
		})
	}
}
