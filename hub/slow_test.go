package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// stalled opens a subscription on a raw connection that reads nothing
// until told to. (Its receive buffer keeps its default size: a tiny one,
// against loopback's 64 KiB segments, makes TCP crawl.)
func stalled(t *testing.T, th *testHub, topic string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /.well-known/mercure?topic=%s HTTP/1.1\r\nHost: x\r\n\r\n", topic)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("subscribe: %v %v", resp, err)
	}
	return conn, br
}

// waitFor waits for cond up to wait.
func waitFor(t *testing.T, what string, cond func() bool) { waitWithin(t, wait, what, cond) }

// waitWithin waits for cond up to d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A subscriber that stops reading holds no one back and costs a cursor:
// once its connection's buffers are full, the events it has not read stay
// in the log, and it reads them from there when it resumes, in order, with
// none missing.
func TestSlowSubscriberCatchesUp(t *testing.T) {
	t.Parallel()
	const n = 3000
	// A long dispatch timeout: this subscriber is slow, not stuck.
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: 2 * n}), Heartbeat: -1, DispatchTimeout: time.Minute})
	conn, br := stalled(t, th, "t")
	fast := th.subscribe(t, q("topic", "t"), nil)
	data := strings.Repeat("x", 16<<10)
	for i := range n {
		if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"t"}, Data: fmt.Sprint(i, data)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if ev := fast.next(t); !strings.HasPrefix(ev.Data, fmt.Sprint(i, "x")) {
			t.Fatalf("the fast subscriber got %.10q as event %d", ev.Data, i)
		}
	}
	waitFor(t, "the stalled subscriber to fall back to the log", func() bool { return hub.CatchingUp(th.Hub) == 1 })
	if l := hub.QueueLen(th.Hub); l > 1024 {
		t.Fatalf("a queue of %d events", l)
	}

	// Now it reads: everything, in order. The deadline bounds a wait for
	// the next event, not the whole transfer: 48 MiB take their time on a
	// busy machine under the race detector.
	d := sse.NewDecoder(httpChunks(br))
	for i := range n {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		var ev sse.Event
		if err := d.Decode(&ev); err != nil {
			t.Fatalf("event %d: %v (catching up %d, queue %d)", i, err, hub.CatchingUp(th.Hub), hub.QueueLen(th.Hub))
		}
		if !strings.HasPrefix(ev.Data, fmt.Sprint(i, "x")) {
			t.Fatalf("got %.10q as event %d", ev.Data, i)
		}
	}
}

// When the log drops events a slow subscriber has not read, the hub
// disconnects it: it resumes with its last ID and learns from the
// "earliest" answer that it missed some.
func TestSlowSubscriberFallsOffTheLog(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: 100}), Heartbeat: -1, DispatchTimeout: time.Minute,
		Logger: logs.logger()})
	conn, br := stalled(t, th, "t")
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	d := sse.NewDecoder(httpChunks(br))
	// One event read, so that the client has an ID to resume from; then
	// it stops reading.
	th.publish(t, "t", "first")
	var first sse.Event
	if err := d.Decode(&first); err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("y", 16<<10)
	for i := range 3000 {
		if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"t"}, Data: fmt.Sprint(i, data)}); err != nil {
			t.Fatal(err)
		}
	}
	last := first.ID
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wait)) // for the next event, or the end
		var ev sse.Event
		err := d.Decode(&ev)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no event and no end after %s", last)
		}
		if err != nil {
			break // the hub closed the stream
		}
		last = ev.ID
	}
	waitFor(t, "the subscriber to leave", func() bool { return hub.Subscribers(th.Hub) == 0 })
	if st := th.Stats(); st.SlowDropped != 1 || st.Subscribers != 0 {
		t.Fatalf("%+v after a subscriber fell off the log", st)
	}
	waitFor(t, "the drop to be logged", func() bool { return logs.dropped("fell behind the history") == 1 })
	s := th.subscribe(t, q("topic", "t"), header("Last-Event-ID", last))
	if got := s.resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Fatalf("Last-Event-ID %q after falling off the log", got)
	}
}

// Subscribers that never read, beside subscribers that read everything,
// while megabytes are published: the hub drops each of them once a write
// to it has waited for the dispatch timeout, resets their connections,
// counts them and logs them; the readers receive every event, in order.
func TestStuckSubscribersAreDropped(t *testing.T) {
	t.Parallel()
	// 16 MiB: far more than what a connection's buffers take from a
	// client that reads nothing (its receive buffer, 128 KiB by default,
	// and on the hub's side about 64 KiB), so that every stuck
	// subscriber has a write waiting.
	const stuck, readers, n = 20, 2, 2000
	data := strings.Repeat("z", 8<<10)
	logs := &logBuffer{}
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: n}), Heartbeat: -1,
		DispatchTimeout: time.Second, Logger: logs.logger()})
	var conns []net.Conn
	for range stuck {
		conn, _ := stalled(t, th, "t")
		conns = append(conns, conn)
	}
	var fast []*stream
	for range readers {
		fast = append(fast, th.subscribe(t, q("topic", "t"), nil))
	}
	waitFor(t, "the subscriptions", func() bool { return th.Stats().Subscribers == stuck+readers })

	// The events go out a chunk at a time, each read by the readers
	// before the next is published: a reader never has more pending than
	// its socket's buffers take, so the hub's writes to it never wait,
	// however late the test reads. Only the stuck subscribers' writes do.
	const chunk = 6 // 48 KiB, below a connection's initial receive buffer
	for from := 0; from < n; from += chunk {
		to := min(from+chunk, n)
		for i := from; i < to; i++ {
			if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"t"}, Data: fmt.Sprint(i, " ", data)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range fast {
			for i := from; i < to; i++ {
				if ev := s.next(t); !strings.HasPrefix(ev.Data, fmt.Sprint(i, " z")) {
					t.Fatalf("a reader got %.10q as event %d", ev.Data, i)
				}
			}
		}
	}
	waitFor(t, "the stuck subscribers to be dropped", func() bool { return th.Stats().SlowDropped == stuck })
	if st := th.Stats(); st.Subscribers != readers {
		t.Fatalf("%+v: the readers should be left", st)
	}
	waitFor(t, "the drops to be logged", func() bool { return logs.dropped("stalled: a write did not finish in 1s") == stuck })

	// The hub reset their connections: the kernel dropped what it still
	// held for them, and what they read ends in the reset.
	_ = conns[0].SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, conns[0]); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a dropped subscriber read to %v, want a reset", err)
	}
}

// An HTTP/2 subscriber whose stream takes nothing is dropped as stalled
// too: its handler's write fails at the deadline the response controller
// set.
func TestStuckHTTP2SubscriberIsStalled(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	h := newHub(t, hub.Config{Heartbeat: -1, DispatchTimeout: 300 * time.Millisecond, Logger: logs.logger()})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), true)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, th.url+"?"+q("topic", "t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := th.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // and never read: the stream's window closes
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s", resp.Proto)
	}
	waitFor(t, "the subscription", func() bool { return h.Stats().Subscribers == 1 })
	// 12 MiB: more than the client's flow-control window (4 MiB for Go's).
	data := strings.Repeat("h", 16<<10)
	for range 768 {
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"t"}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the stuck subscriber to be dropped", func() bool { return h.Stats().SlowDropped == 1 })
	waitFor(t, "the drop to be logged", func() bool { return logs.dropped("stalled: a write did not finish in 300ms") == 1 })
}

// logBuffer collects a hub's log lines, for the tests to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

var dropLine = regexp.MustCompile(`msg="hub: dropped slow subscribers" dropped=(\d+) reason="([^"]*)" total=(\d+)`)

// dropped sums the subscribers the log says were dropped for reason, and
// checks that each line's total adds its count to the previous one's.
func (b *logBuffer) dropped(reason string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	sum, total := 0, 0
	for _, m := range dropLine.FindAllStringSubmatch(b.buf.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		t, _ := strconv.Atoi(m[3])
		if t != total+n {
			return -1
		}
		total = t
		if m[2] == reason {
			sum += n
		}
	}
	return sum
}

// httpChunks decodes a chunked HTTP body.
func httpChunks(br *bufio.Reader) *chunkedReader { return &chunkedReader{br: br} }

type chunkedReader struct {
	br   *bufio.Reader
	left int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(line, "%x", &n); err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("end of body")
		}
		c.left = n
	}
	n, err := c.br.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// Publishers that outrun the dispatcher on a tiny history make it drop
// events before they were delivered. A live subscriber then never sees a
// silent gap: what it receives is a run of consecutive events, and if it
// missed some, its stream ends and its resumption answers "earliest".
func TestNoSilentGapWhenTheLogOverflows(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: 8}), Heartbeat: -1})
	s := th.subscribe(t, q("topic", "t"), nil)
	const n = 20000
	th.publish(t, "t", "0")
	s.expect(t, "0") // an ID to resume from
	for i := 1; i < n; i++ {
		if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"t"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := 1
	for {
		var ev sse.Event
		select {
		case ev = <-s.events:
		case <-s.done:
			select {
			case ev = <-s.events:
			default:
				// Ended early: it must have missed something, and say so.
				r := th.subscribe(t, q("topic", "t"), header("Last-Event-ID", s.lastID))
				if got := r.resp.Header.Get("Last-Event-ID"); got != "earliest" {
					t.Fatalf("resumed after event %d with Last-Event-ID %q", want-1, got)
				}
				return
			}
		case <-time.After(wait):
			t.Fatalf("stuck after %d events", want)
		}
		if ev.Data != fmt.Sprint(want) {
			t.Fatalf("event %q after %d: a gap", ev.Data, want-1)
		}
		if want++; want == n {
			return
		}
	}
}
