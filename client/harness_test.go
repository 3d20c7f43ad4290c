package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/sse"
)

// The harness: an HTTP server on an in-memory network, inside the test's
// synctest bubble, whose responses the test scripts connection by
// connection, and a client stream whose every event, comment and error is
// recorded in order. Time is the bubble's: delays and timeouts are exact
// and cost nothing.

// pipeListener is a net.Listener of net.Pipe connections.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// conn is one connection the server received, which the test scripts.
type conn struct {
	req  *http.Request
	body string
	do   chan func(http.ResponseWriter) bool // run by the handler; false ends the response
	done chan struct{}
}

// observation is one thing the stream reported.
type observation struct {
	ev      sse.Event
	comment string
	isCmt   bool
	err     error
}

type harness struct {
	t      *testing.T
	conns  chan *conn
	obs    chan observation
	stream *client.Stream
	stop   chan struct{}
	reqs   int
	mu     sync.Mutex
}

const baseURL = "http://harness.test/stream"

// start starts the server, and a stream of req (GET baseURL when nil)
// with the client c, whose HTTPClient it sets.
func start(t *testing.T, c client.Client, req *http.Request, opts client.Options) *harness {
	t.Helper()
	h := &harness{t: t, conns: make(chan *conn), obs: make(chan observation, 1<<16), stop: make(chan struct{})}
	ln := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(h.serve)}
	go srv.Serve(ln)
	tr := &http.Transport{DialContext: ln.dial}
	c.HTTPClient = &http.Client{Transport: tr}
	if req == nil {
		req, _ = http.NewRequest(http.MethodGet, baseURL, nil)
	}
	opts.OnComment = func(text string) { h.obs <- observation{comment: text, isCmt: true} }
	h.stream = c.Connect(context.Background(), req, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := h.stream.Next()
			h.obs <- observation{ev: ev, err: err}
			var drop *client.DropError
			if err != nil && !errors.As(err, &drop) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		h.stream.Close()
		close(h.stop)
		<-done
		srv.Close()
		ln.Close()
		tr.CloseIdleConnections()
	})
	return h
}

func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c := &conn{req: r, body: string(b), do: make(chan func(http.ResponseWriter) bool), done: make(chan struct{})}
	defer close(c.done)
	h.mu.Lock()
	h.reqs++
	h.mu.Unlock()
	select {
	case h.conns <- c:
	case <-h.stop:
		return
	case <-r.Context().Done():
		return
	}
	for {
		select {
		case f := <-c.do:
			if !f(w) {
				return
			}
		case <-h.stop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// accept returns the next connection the client makes.
func (h *harness) accept() *conn {
	h.t.Helper()
	select {
	case c := <-h.conns:
		return c
	case <-time.After(time.Hour):
		h.t.Fatal("the client did not connect")
	}
	return nil
}

func (h *harness) requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reqs
}

func (c *conn) run(f func(http.ResponseWriter) bool) {
	select {
	case c.do <- f:
	case <-c.done:
	}
}

// respond sends the status line and headers (key, value pairs).
func (c *conn) respond(status int, kv ...string) *conn {
	c.run(func(w http.ResponseWriter) bool {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
		return status == http.StatusOK
	})
	return c
}

// ok starts an event stream.
func (c *conn) ok() *conn { return c.respond(http.StatusOK, "Content-Type", "text/event-stream") }

// send writes each chunk, flushed on its own.
func (c *conn) send(chunks ...string) *conn {
	for _, s := range chunks {
		c.run(func(w http.ResponseWriter) bool {
			_, err := io.WriteString(w, s)
			w.(http.Flusher).Flush()
			return err == nil
		})
	}
	return c
}

// end ends the response: the client sees the end of the stream.
func (c *conn) end() {
	c.run(func(http.ResponseWriter) bool { return false })
	<-c.done
}

func (h *harness) next() observation {
	h.t.Helper()
	select {
	case o := <-h.obs:
		return o
	case <-time.After(time.Hour):
		h.t.Fatal("the stream reported nothing")
	}
	return observation{}
}

// event expects an event (type "" is the default type).
func (h *harness) event(typ, data, id string) {
	h.t.Helper()
	o := h.next()
	if o.isCmt || o.err != nil {
		h.t.Fatalf("got %+v, want the event %q %q %q", o, typ, data, id)
	}
	if o.ev.Type != typ || o.ev.Data != data || o.ev.ID != id {
		h.t.Fatalf("got event %q %.60q %q, want %q %.60q %q", o.ev.Type, o.ev.Data, o.ev.ID, typ, data, id)
	}
}

func (h *harness) comment(text string) {
	h.t.Helper()
	if o := h.next(); !o.isCmt || o.comment != text {
		h.t.Fatalf("got %+v, want the comment %q", o, text)
	}
}

// dropped expects the report of a lost connection, and returns its delay.
func (h *harness) dropped() time.Duration {
	h.t.Helper()
	o := h.next()
	var d *client.DropError
	if !errors.As(o.err, &d) {
		h.t.Fatalf("got %+v, want a dropped connection", o)
	}
	return d.Delay
}

// ended expects the error that ends the stream.
func (h *harness) ended() error {
	h.t.Helper()
	o := h.next()
	var d *client.DropError
	if o.err == nil || errors.As(o.err, &d) || o.isCmt {
		h.t.Fatalf("got %+v, want the end of the stream", o)
	}
	return o.err
}

// quiet checks that the stream reports nothing more for a while.
func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case o := <-h.obs:
		h.t.Fatalf("got %+v, want nothing", o)
	case <-time.After(d):
	}
}

// fast is a client that reconnects at once and without jitter.
var fast = client.Client{Retry: -1, Jitter: -1}

func get(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func bigString(n int) string { return strings.Repeat("x", n) }
