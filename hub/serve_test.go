package hub_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

// served is a hub behind two servers on loopback: plain is net/http alone,
// fast is the same hub's Serve, which answers plain publications itself.
type served struct {
	h          *hub.Hub
	plain      string // addresses
	fast       string
	srv        *http.Server // fast's
	fastConns  atomic.Int64 // connections fast's net/http has seen
	serveError chan error
}

func newServed(t *testing.T, cfg hub.Config, tune func(*http.Server)) *served {
	t.Helper()
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublisherKey, cfg.SubscriberKey, cfg.Anonymous = key, key, true
	if cfg.Log == nil {
		cfg.Log = hub.NewMemoryLog(hub.MemoryLogConfig{})
	}
	h := newHub(t, cfg)
	s := &served{h: h, serveError: make(chan error, 1)}

	lnPlain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: h}
	go func() { _ = plain.Serve(lnPlain) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: wait, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.fastConns.Add(1)
		}
	}}
	if tune != nil {
		tune(s.srv)
	}
	go func() { s.serveError <- h.Serve(s.srv, ln) }()
	s.plain, s.fast = lnPlain.Addr().String(), ln.Addr().String()
	t.Cleanup(func() {
		_ = h.Close()
		_ = plain.Close()
		_ = s.srv.Close()
		_ = cfg.Log.Close()
	})
	return s
}

// exchange sends raw requests on a new connection to addr, one at a time,
// and returns the answers, each with its Date and any event ID masked.
func exchange(t *testing.T, addr string, reqs ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	var answers []string
	for _, req := range reqs {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, readAnswer(t, br))
	}
	return answers
}

var eventID = regexp.MustCompile(`urn:uuid:[0-9a-f-]{36}`)

// readAnswer reads one answer, raw, and masks what changes between two
// identical requests.
func readAnswer(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var head strings.Builder
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading an answer: %v (so far %q)", err, head.String())
		}
		if strings.HasPrefix(line, "Date: ") {
			line = "Date: (masked)\r\n"
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			_, _ = fmt.Sscanf(v, "%d", &length)
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return eventID.ReplaceAllString(head.String()+string(body), "(id)")
}

func postRequest(headers, body string) string {
	return fmt.Sprintf("POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\n%sContent-Length: %d\r\n\r\n%s", headers, len(body), body)
}

const formType = "Content-Type: application/x-www-form-urlencoded\r\n"

// TestServeAnswersAsNetHTTP sends every kind of publication to net/http
// and to Serve and wants the same answers, byte for byte but the date and
// the event IDs, and Serve to keep for itself the plain ones only.
func TestServeAnswersAsNetHTTP(t *testing.T) {
	s := newServed(t, hub.Config{MaxBodySize: 300}, nil)
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"
	narrow := "Authorization: Bearer " + token(t, []string{"https://example.com/a/{id}"}, nil, time.Time{}) + "\r\n"
	cases := []struct {
		name  string
		req   string
		plain bool
	}{
		{"plain", postRequest(formType+auth, "topic=https://example.com/a/1&data=hello"), true},
		{"every field", postRequest(auth+formType, "topic=t1&topic=t2&data=a%0Ab&type=tick&retry=500&private=on"), true},
		{"lower-case names, keep-alive", postRequest("content-type: application/x-www-form-urlencoded\r\nconnection: keep-alive\r\n"+strings.ToLower(auth[:14])+auth[14:], "topic=t&data=x"), true},
		{"a topic the token covers", postRequest(formType+narrow, "topic=https://example.com/a/7&data=x"), true},
		{"a topic the token does not cover", postRequest(formType+narrow, "topic=https://example.com/b/7&data=x"), false},
		{"no token", postRequest(formType, "topic=t&data=x"), false},
		{"a bad token", postRequest(formType+"Authorization: Bearer not.a.token\r\n", "topic=t&data=x"), false},
		{"not Bearer", postRequest(formType+"Authorization: Basic dTpw\r\n", "topic=t&data=x"), false},
		{"two tokens", postRequest(formType+auth+auth, "topic=t&data=x"), false},
		{"no topic", postRequest(formType+auth, "data=x"), false},
		{"a bad form", postRequest(formType+auth, "topic=%zz"), false},
		{"a bad retry", postRequest(formType+auth, "topic=t&retry=soon"), false},
		{"JSON", postRequest("Content-Type: application/json\r\n"+auth, `{"topic":"t"}`), false},
		{"a charset", postRequest("Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"+auth, "topic=t&data=x"), false},
		{"too large", postRequest(formType+auth, "topic=t&data="+strings.Repeat("x", 300)), false},
		{"a cookie", postRequest(formType+auth+"Cookie: a=b\r\n", "topic=t&data=x"), false},
		{"an origin", postRequest(formType+auth+"Origin: https://example.com\r\n", "topic=t&data=x"), false},
		{"Connection: close", postRequest(formType+auth+"Connection: close\r\n", "topic=t&data=x"), false},
		{"chunked", "POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\n" + formType + auth +
			"Transfer-Encoding: chunked\r\n\r\n8\r\ntopic=t&\r\n6\r\ndata=x\r\n0\r\n\r\n", false},
		{"two lengths", "POST /.well-known/mercure HTTP/1.1\r\nHost: hub.test\r\n" + formType + auth +
			"Content-Length: 7\r\nContent-Length: 7\r\n\r\ntopic=t", false},
		{"no host", "POST /.well-known/mercure HTTP/1.1\r\n" + formType + auth + "Content-Length: 7\r\n\r\ntopic=t", false},
		{"a query", "POST /.well-known/mercure?x=1 HTTP/1.1\r\nHost: hub.test\r\n" + formType + auth + "Content-Length: 7\r\n\r\ntopic=t", false},
		{"HTTP/1.0", "POST /.well-known/mercure HTTP/1.0\r\nHost: hub.test\r\n" + formType + auth + "Content-Length: 7\r\n\r\ntopic=t", false},
		{"a space before the colon", "POST /.well-known/mercure HTTP/1.1\r\nHost : hub.test\r\n" + formType + auth + "Content-Length: 7\r\n\r\ntopic=t", false},
		{"another path", "GET /elsewhere HTTP/1.1\r\nHost: hub.test\r\n\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, s.plain, tc.req)
			before := s.fastConns.Load()
			got := exchange(t, s.fast, tc.req)
			if got[0] != want[0] {
				t.Errorf("Serve answered\n%s\nnet/http answered\n%s", got[0], want[0])
			}
			if plain := s.fastConns.Load() == before; plain != tc.plain {
				t.Errorf("answered by the hub itself: %v, want %v", plain, tc.plain)
			}
		})
	}
}

// TestServeRefusedByTheLog: an event the log refuses, after the request
// was found plain, gets the handler's error answer.
func TestServeRefusedByTheLog(t *testing.T) {
	s := newServed(t, hub.Config{}, nil)
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"
	req := postRequest(formType+auth, "topic=t&data=x&id=twice")
	want := exchange(t, s.plain, req, req)
	if !strings.HasPrefix(want[1], "HTTP/1.1 409 ") {
		t.Fatalf("net/http answered %q to a repeated ID", want[1])
	}
	before := s.fastConns.Load()
	if got := exchange(t, s.fast, req); got[0] != want[1] {
		t.Errorf("Serve answered\n%s\nnet/http answered\n%s", got[0], want[1])
	}
	if s.fastConns.Load() != before {
		t.Error("net/http answered a plain publication")
	}
}

// TestServeOneConnection: plain publications, pipelined or in pieces, then
// a subscription on the same connection, which net/http takes over, and
// which gets what is published next.
func TestServeOneConnection(t *testing.T) {
	s := newServed(t, hub.Config{}, nil)
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"
	c, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	expectOK := func() {
		t.Helper()
		if a := readAnswer(t, br); !strings.HasPrefix(a, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(a, "\r\n\r\n(id)") {
			t.Fatalf("answer %q", a)
		}
	}

	// Two requests in one write.
	one := postRequest(formType+auth, "topic=t&data=one")
	if _, err := io.WriteString(c, one+one); err != nil {
		t.Fatal(err)
	}
	expectOK()
	expectOK()
	// One request in three writes: in the request line, in the headers,
	// in the body.
	for _, part := range []string{one[:10], one[10:60], one[60 : len(one)-3], one[len(one)-3:]} {
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	expectOK()
	if n := s.fastConns.Load(); n != 0 {
		t.Fatalf("net/http saw %d connections, want none yet", n)
	}

	// A subscription: net/http's from here on.
	if _, err := io.WriteString(c, "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: hub.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || s.fastConns.Load() != 1 {
		t.Fatalf("subscription: %s, net/http saw %d connections", resp.Status, s.fastConns.Load())
	}
	if got := exchange(t, s.fast, postRequest(formType+auth, "topic=t&data=after")); !strings.HasPrefix(got[0], "HTTP/1.1 200 ") {
		t.Fatalf("publishing on another connection: %q", got[0])
	}
	events := bufio.NewReader(resp.Body)
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if line == "data: after\n" {
			break
		}
	}
}

// TestServeShutdown: srv.Shutdown closes the connections waiting for a
// request, cuts one that waits for the rest of one, and Serve returns.
func TestServeShutdown(t *testing.T) {
	s := newServed(t, hub.Config{}, nil)
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"
	idle, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(wait))
	req := postRequest(formType+auth, "topic=t&data=x")
	if _, err := io.WriteString(idle, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	readAnswer(t, br)
	partial, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	_ = partial.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(partial, req[:len(req)-2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // for the hub to read what came

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.serveError:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	for name, c := range map[string]net.Conn{"idle": idle, "partial": partial} {
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("the %s connection is open: read %d bytes", name, n)
		}
	}
	if _, err := net.Dial("tcp", s.fast); err == nil {
		t.Error("the listener is open")
	}
}

// TestServeIdleTimeout: a connection that sends nothing after its last
// answer is closed after srv.IdleTimeout.
func TestServeIdleTimeout(t *testing.T) {
	s := newServed(t, hub.Config{}, func(srv *http.Server) { srv.IdleTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"
	if _, err := io.WriteString(c, postRequest(formType+auth, "topic=t&data=x")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	readAnswer(t, br)
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the answer: %v, want EOF", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
}

// TestServeFirstRequestTimeout: a new connection that sends nothing is
// closed after srv.ReadHeaderTimeout, not the longer idle timeout.
func TestServeFirstRequestTimeout(t *testing.T) {
	s := newServed(t, hub.Config{}, func(srv *http.Server) {
		srv.ReadHeaderTimeout, srv.IdleTimeout = 200*time.Millisecond, time.Minute
	})
	c, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want EOF", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 30*time.Second {
		t.Errorf("closed after %v, want the header timeout", d)
	}
}

// TestServeTLS: on a listener of TLS connections, net/http serves them
// all.
func TestServeTLS(t *testing.T) {
	s := newServed(t, hub.Config{}, nil)
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	defer ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{Handler: s.h, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}}
	done := make(chan error, 1)
	go func() { done <- s.h.Serve(srv, tls.NewListener(ln, ts.TLS)) }()
	req, err := http.NewRequest(http.MethodPost, "https://"+ln.Addr().String()+hub.Path, strings.NewReader("topic=t&data=x"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+publisherToken(t))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || conns.Load() != 1 {
		t.Errorf("%s, net/http saw %d connections, want 200 and 1", resp.Status, conns.Load())
	}
	_ = srv.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}
