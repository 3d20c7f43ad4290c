package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/sse"
)

// syncBuffer is a buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs "herald serve" with the arguments and environment in the
// background and returns its base URL, its stderr and a function that
// stops it (SIGTERM's path) and returns its exit code.
func serve(t *testing.T, env map[string]string, args ...string) (base string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	stderr = &syncBuffer{}
	addr := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- cli.Run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, args...), cli.Env{
			Stdout:    io.Discard,
			Stderr:    stderr,
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			Listening: func(a string) { addr <- a },
		})
	}()
	select {
	case a := <-addr:
		base = "http://" + a
	case c := <-code:
		t.Fatalf("serve exited with %d: %s", c, stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	var once sync.Once
	var exit int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case exit = <-code:
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
		return exit
	}
	t.Cleanup(func() { stop() })
	return base, stderr, stop
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

func TestServeBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve", "-store", "floppy"}, nil, "store"},
		{[]string{"serve"}, map[string]string{"HERALD_HEARTBEAT": "often"}, "HERALD_HEARTBEAT"},
		{[]string{"serve", "-publisher-jwt-alg", "RS256", "-publisher-jwt-key", "not a PEM key"}, nil, "publisher key"},
		{[]string{"serve", "extra"}, nil, "unexpected arguments"},
		{[]string{"serve", "-nope"}, nil, "flag provided but not defined"},
	} {
		var stderr bytes.Buffer
		code := cli.Run(context.Background(), c.args, cli.Env{Stdout: io.Discard, Stderr: &stderr,
			LookupEnv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }})
		if code != cli.ExitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 naming %s", c.args, c.env, code, stderr.String(), c.want)
		}
	}
	// A port already taken is a failure to run, not a usage error.
	base, _, _ := serve(t, nil)
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"serve", "-store", "memory", "-addr", strings.TrimPrefix(base, "http://")},
		cli.Env{Stdout: io.Discard, Stderr: &stderr})
	if code != cli.ExitFailure || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("a taken port: exit %d, %q", code, stderr.String())
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
