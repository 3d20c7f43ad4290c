package hub_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// rawSubscribe opens a connection to addr, subscribes to topic on it and
// returns the response, whatever its status, and the connection.
func rawSubscribe(t *testing.T, addr, method, topic string) (*http.Response, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c, "%s %s?topic=%s HTTP/1.1\r\nHost: hub.test\r\n\r\n", method, hub.Path, topic); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	return resp, c
}

// checkRefusal checks an answer to a connection past the limit, and that
// the hub then closes the connection.
func checkRefusal(t *testing.T, resp *http.Response, limit int, head bool) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || err != nil || retry < 1 || !resp.Close ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("refusal: %s, headers %v", resp.Status, resp.Header)
	}
	if head {
		if len(body) != 0 {
			t.Fatalf("a body in the answer to HEAD: %q", body)
		}
		return
	}
	var e struct{ Error, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error != "too_many_connections" || !strings.Contains(e.Message, strconv.Itoa(limit)) {
		t.Fatalf("refusal body %q", body)
	}
}

// closedByPeer reports whether the other end closed c: a read gets EOF.
func closedByPeer(c net.Conn) bool {
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// Past MaxConnections a new connection is answered 503 and closed; the
// connections open are untouched, a subscriber among them keeps getting
// events; once one closes, a new connection is served again.
func TestServeMaxConnections(t *testing.T) {
	t.Parallel()
	const limit = 3
	s := newServed(t, hub.Config{MaxConnections: limit}, nil)
	auth := "Authorization: Bearer " + publisherToken(t) + "\r\n"

	// Three connections: a subscriber, a publisher, one that says nothing.
	resp, sub := rawSubscribe(t, s.fast, http.MethodGet, "news")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribing: %s", resp.Status)
	}
	events := sse.NewDecoder(resp.Body)
	pub, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	_ = pub.SetDeadline(time.Now().Add(wait))
	pubAnswers := bufio.NewReader(pub)
	publish := func(data string) {
		t.Helper()
		if _, err := io.WriteString(pub, postRequest(formType+auth, "topic=news&data="+data)); err != nil {
			t.Fatal(err)
		}
		if a := readAnswer(t, pubAnswers); !strings.HasPrefix(a, "HTTP/1.1 200 OK") {
			t.Fatalf("publishing: %q", a)
		}
	}
	publish("first")
	silent, err := net.Dial("tcp", s.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// Past the limit: refused, a GET as a HEAD. Serve accepts in order,
	// so the silent connection counts before these.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, c := rawSubscribe(t, s.fast, method, "news")
		checkRefusal(t, resp, limit, method == http.MethodHead)
		if !closedByPeer(c) {
			t.Fatal("a refused connection stays open")
		}
	}

	// The connections open are untouched.
	publish("second")
	for _, want := range []string{"first", "second"} {
		var ev sse.Event
		if err := events.Decode(&ev); err != nil || ev.Data != want {
			t.Fatalf("the subscriber got %q (%v), want %q", ev.Data, err, want)
		}
	}

	// One closes: a new connection is served, once the hub has seen it
	// close.
	_ = silent.Close()
	deadline := time.Now().Add(wait)
	for {
		resp, _ := rawSubscribe(t, s.fast, http.MethodGet, "news")
		if resp.StatusCode == http.StatusOK {
			break
		}
		checkRefusal(t, resp, limit, false)
		if time.Now().After(deadline) {
			t.Fatal("still refused after a connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = sub.Close()
}

// tlsServed is a hub whose Serve speaks TLS, with the certificate of an
// httptest server, whose client trusts it.
func tlsServed(t *testing.T, cfg hub.Config) (addr string, certs *x509.CertPool, h *hub.Hub) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublisherKey, cfg.SubscriberKey, cfg.Anonymous = key, key, true
	h = newHub(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: ts.TLS.Certificates}}
	done := make(chan error, 1)
	go func() { done <- h.Serve(srv, ln) }()
	t.Cleanup(func() {
		_ = h.Close()
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	certs = x509.NewCertPool()
	certs.AddCert(ts.Certificate())
	return ln.Addr().String(), certs, h
}

// With a certificate in srv.TLSConfig, Serve speaks TLS, HTTP/2 included:
// a subscription and a publication share one connection, which is the
// only one the limit allows; a second connection completes its handshake
// and is refused.
func TestServeTLSConfig(t *testing.T) {
	t.Parallel()
	addr, certs, _ := tlsServed(t, hub.Config{MaxConnections: 1})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: wait}
	base := "https://" + addr + hub.Path

	resp, err := client.Get(base + "?topic=t")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("subscribing: %s over %s", resp.Status, resp.Proto)
	}
	req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader("topic=t&data=over+h2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+publisherToken(t))
	presp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK || presp.ProtoMajor != 2 {
		t.Fatalf("publishing: %s over %s", presp.Status, presp.Proto)
	}
	var ev sse.Event
	if err := sse.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Data != "over h2" {
		t.Fatalf("the subscriber got %q (%v)", ev.Data, err)
	}

	// A second connection, offering HTTP/2 too: refused over HTTP/1.1.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: certs, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET "+hub.Path+"?topic=t HTTP/1.1\r\nHost: hub.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	refused, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRefusal(t, refused, 1, false)
}

// failingListener is a pipe network whose Accept fails with err the first
// fails times.
type failingListener struct {
	*pipeListener
	err   error
	fails int // read and written by the accept loop only
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, l.err
	}
	return l.pipeListener.Accept()
}

// logRecorder keeps the records logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// about returns the records whose message holds s.
func (r *logRecorder) about(s string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.records {
		if strings.Contains(rec.Message, s) {
			out = append(out, rec)
		}
	}
	return out
}

func attr(rec slog.Record, key string) slog.Value {
	var v slog.Value
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// bubbleServe runs Serve on ln with a new hub in the current synctest
// bubble, and returns a client of ln and Serve's result.
func bubbleServe(t *testing.T, cfg hub.Config, ln *failingListener) (*http.Client, <-chan error) {
	t.Helper()
	h := newHub(t, cfg)
	srv := &http.Server{Handler: h}
	done, exited := make(chan error, 1), make(chan struct{})
	go func() {
		done <- h.Serve(srv, ln)
		close(exited)
	}()
	tr := &http.Transport{DialContext: ln.dial, DisableKeepAlives: true}
	t.Cleanup(func() {
		_ = srv.Close()
		<-exited
		_ = h.Close()
	})
	return &http.Client{Transport: tr}, done
}

// servedBy fails the test unless a request through c gets the hub's
// answer.
func servedBy(t *testing.T, c *http.Client) {
	t.Helper()
	resp, err := c.Get("http://hub" + hub.Path) // no topic: 400
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want the hub's 400", resp.StatusCode)
	}
}

func acceptError(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// timeoutError is a net.Error that says it timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// Accept failing with EMFILE, over and over: Serve keeps going, logs a
// line at most once a second that counts the failures since the one
// before, and serves as soon as Accept works again.
func TestServeOutOfDescriptors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const fails = 50
		rec := &logRecorder{}
		ln := &failingListener{pipeListener: newPipeListener(), err: acceptError(syscall.EMFILE), fails: fails}
		c, _ := bubbleServe(t, hub.Config{Logger: slog.New(rec)}, ln)
		time.Sleep(time.Minute) // through every failure and pause
		servedBy(t, c)

		lines := rec.about("accept")
		total := 0
		for i, line := range lines {
			if i > 0 && line.Time.Sub(lines[i-1].Time) < time.Second {
				t.Errorf("log lines %d and %d are %v apart", i-1, i, line.Time.Sub(lines[i-1].Time))
			}
			total += int(attr(line, "failures").Int64())
		}
		if len(lines) < 2 || total != fails {
			t.Fatalf("%d log lines counting %d failures, want more than one counting %d", len(lines), total, fails)
		}
		if err := attr(lines[0], "error").String(); !strings.Contains(err, "too many open files") {
			t.Errorf("the first line's error is %q", err)
		}
	})
}

// Accept's errors: those that may clear are retried, those that cannot end
// Serve with the error.
func TestServeAcceptErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		fatal bool
	}{
		{"ENFILE", acceptError(syscall.ENFILE), false},
		{"ENOBUFS", acceptError(syscall.ENOBUFS), false},
		{"ENOMEM", acceptError(syscall.ENOMEM), false},
		{"ECONNABORTED", acceptError(syscall.ECONNABORTED), false},
		{"EPROTO", acceptError(syscall.EPROTO), false},
		{"EPERM", acceptError(syscall.EPERM), false},
		{"EINTR", acceptError(syscall.EINTR), false},
		{"a timeout", timeoutError{}, false},
		{"another listener's error", errors.New("proxy header: malformed"), false},
		{"EBADF", acceptError(syscall.EBADF), true},
		{"EINVAL", acceptError(syscall.EINVAL), true},
		{"ENOTSOCK", acceptError(syscall.ENOTSOCK), true},
		{"closed", &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := &failingListener{pipeListener: newPipeListener(), err: tc.err, fails: 3}
				c, done := bubbleServe(t, hub.Config{Logger: slog.New(slog.DiscardHandler)}, ln)
				if !tc.fatal {
					time.Sleep(time.Second)
					servedBy(t, c)
					return
				}
				select {
				case err := <-done:
					if !errors.Is(err, tc.err) && err.Error() != tc.err.Error() {
						t.Fatalf("Serve returned %v, want %v", err, tc.err)
					}
				case <-time.After(time.Minute):
					t.Fatal("Serve retried")
				}
			})
		})
	}
}

// Past MaxConnections, at most MaxRejections connections are being refused
// at once: then Serve accepts no more until one is done.
func TestServeBoundsRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := &failingListener{pipeListener: newPipeListener()}
		_, _ = bubbleServe(t, hub.Config{MaxConnections: 1}, ln)
		held, server := net.Pipe()
		ln.conns <- server
		defer held.Close()
		// Connections that send nothing: each holds a refusal until
		// its timeout.
		for range hub.MaxRejections {
			client, server := net.Pipe()
			ln.conns <- server
			defer client.Close()
		}
		synctest.Wait()
		client, server := net.Pipe()
		defer client.Close()
		select {
		case ln.conns <- server:
			t.Fatal("Serve accepted past MaxRejections refusals")
		default:
		}
		time.Sleep(time.Minute) // the refusals time out
		synctest.Wait()
		select {
		case ln.conns <- server:
		default:
			t.Fatal("Serve does not accept after the refusals ended")
		}
	})
}
