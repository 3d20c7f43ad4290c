package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// HTTP/2 streams cannot be hijacked: their handler serves them.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), true)
	s := th.subscribe(t, q("topic", "a"), nil)
	if s.resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s", s.resp.Proto)
	}
	if s.resp.Header.Get("Connection") != "" {
		t.Fatal("a Connection header on HTTP/2")
	}
	for i := range 3 {
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		s.expect(t, fmt.Sprint(i))
	}
	// The client leaves: the stream's context ends and so does the
	// subscription, without any write.
	s.close()
	waitFor(t, "the HTTP/2 subscriber to leave", func() bool { return hub.Subscribers(h) == 0 })
}

// An HTTP/2 stream idle for longer than the dispatch timeout lives on: the
// write deadline of each write is cleared after it, where, left in place,
// HTTP/2's would reset the idle stream when it fired.
func TestHTTP2IdlePastDispatchTimeout(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{DispatchTimeout: 500 * time.Millisecond, Heartbeat: time.Second})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), true)
	s := th.subscribe(t, q("topic", "a"), nil)
	if s.resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s", s.resp.Proto)
	}
	// Two heartbeats written, each after an idle spell twice the dispatch
	// timeout.
	start := h.Stats().WrittenBytes
	waitFor(t, "two heartbeats", func() bool { return h.Stats().WrittenBytes >= start+2*uint64(len(":\n")) })
	if _, err := h.Publish(t.Context(), hub.Update{Topics: []string{"a"}, Data: "still open"}); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "still open")
}

// A hub mounted behind middleware that hides the hijacker still serves
// HTTP/1.1 clients, from the handler.
func TestNotHijackable(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{})
	th := serveHub(t, h, httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(flushOnly{w}, r)
	})), false)
	s := th.subscribe(t, q("topic", "a"), nil)
	if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "via the handler"}); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "via the handler")
}

// flushOnly is a ResponseWriter that can flush but not be hijacked.
type flushOnly struct{ w http.ResponseWriter }

func (f flushOnly) Header() http.Header         { return f.w.Header() }
func (f flushOnly) Write(b []byte) (int, error) { return f.w.Write(b) }
func (f flushOnly) WriteHeader(code int)        { f.w.WriteHeader(code) }
func (f flushOnly) Flush()                      { f.w.(http.Flusher).Flush() }

func TestShutdown(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), true)
	var streams []*stream
	for range 5 {
		streams = append(streams, th.subscribe(t, q("topic", "a"), nil))
	}
	tp := serveHub(t, h, httptest.NewUnstartedServer(h), false)
	for range 5 {
		streams = append(streams, tp.subscribe(t, q("topic", "a"), nil))
	}
	waitFor(t, "10 subscribers", func() bool { return hub.Subscribers(h) == 10 })

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		<-s.done
		if s.resp.ProtoMajor == 1 && !errors.Is(s.err, io.EOF) {
			t.Errorf("stream %d ended with %v", i, s.err)
		}
	}
	if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}}); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Publish after Shutdown: %v", err)
	}
	if _, status := tp.open(t, q("topic", "a"), nil); status != http.StatusServiceUnavailable {
		t.Fatalf("subscribe after Shutdown: %d", status)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
}

// Shutdown tells each client when to come back, at random over a few
// seconds, so that a fleet of clients does not reconnect at once.
func TestShutdownSpreadsReconnections(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	resp, err := http.Get(th.url + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "the subscriber", func() bool { return hub.Subscribers(th.Hub) == 1 })
	go th.Shutdown(context.Background()) // graceful; Close would cut at once
	d := sse.NewDecoder(resp.Body)
	var ev sse.Event
	if err := d.Decode(&ev); err == nil {
		t.Fatalf("an event: %+v", ev)
	}
	retry, ok := d.Retry()
	if !ok || retry < time.Second || retry > 5*time.Second {
		t.Fatalf("retry %v, %v; want 1 to 5 s", retry, ok)
	}
}

// An independent client, go-sse's, with its own parser and reconnection
// logic: it resumes with Last-Event-ID after the hub ends its connection
// (here at its maximum lifetime), and misses nothing published meanwhile.
func TestIndependentClientResumes(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{MaxLifetime: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, th.url+"?topic=a", nil)
	client := &gosse.Client{Backoff: gosse.Backoff{InitialInterval: 20 * time.Millisecond, Multiplier: 1, Jitter: -1}}
	conn := client.NewConnection(req)
	var mu sync.Mutex
	var got []string
	all := make(chan struct{})
	const n = 40
	conn.SubscribeMessages(func(ev gosse.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev.Data)
		if len(got) == n {
			close(all)
		}
	})
	done := make(chan error, 1)
	go func() { done <- conn.Connect() }()
	waitFor(t, "the client", func() bool { return hub.Subscribers(th.Hub) == 1 })
	for i := range n {
		if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond) // spans a few reconnections
	}
	select {
	case <-all:
	case <-time.After(wait):
		t.Fatal("the client did not get every event")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i, d := range got {
		if d != fmt.Sprint(i) {
			t.Fatalf("event %d is %q: %v", i, d, got)
		}
	}
}

// A subscriber that leaves leaves the timers too, at once, not at its next
// heartbeat: over HTTP/1.1 and HTTP/2.
func TestLeavingFreesTimers(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{Heartbeat: time.Hour})
	var streams []*stream
	for _, http2 := range []bool{false, true} {
		th := serveHub(t, h, httptest.NewUnstartedServer(h), http2)
		for range 3 {
			streams = append(streams, th.subscribe(t, q("topic", "a"), nil))
		}
	}
	waitFor(t, "6 subscribers", func() bool { return hub.Subscribers(h) == 6 })
	if n := hub.TimerEntries(h); n != 6 {
		t.Fatalf("%d timer entries for 6 subscribers", n)
	}
	for _, s := range streams {
		s.close()
	}
	// The HTTP/1.1 subscribers find out when a write fails, which may take
	// two: the first gets the closed connection's reset.
	waitFor(t, "the subscribers to leave", func() bool {
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		return hub.Subscribers(h) == 0
	})
	if n := hub.TimerEntries(h); n != 0 {
		t.Fatalf("%d timer entries once every subscriber left", n)
	}
}
