package hub_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

// gatedLog is a MemoryLog that plays a log whose old events are not in
// memory: ReadRecent reports false below the mark, and Read below the mark
// blocks until the test opens the gate, as a round trip to an engine that
// does not answer.
type gatedLog struct {
	*hub.MemoryLog
	mark    atomic.Uint64 // reads from below it need "I/O"; 0: none do
	gate    chan struct{} // closed to let the blocked reads through
	open    sync.Once
	waiting atomic.Int64          // Reads blocked at the gate
	fail    atomic.Pointer[error] // what Read below the mark returns, past the gate
}

var _ hub.RecentReader = (*gatedLog)(nil)

func newGatedLog() *gatedLog {
	return &gatedLog{MemoryLog: hub.NewMemoryLog(hub.MemoryLogConfig{}), gate: make(chan struct{})}
}

func (l *gatedLog) ReadRecent(from uint64, limit int) ([]*hub.Event, bool) {
	if from < l.mark.Load() {
		return nil, false
	}
	return l.MemoryLog.ReadRecent(from, limit)
}

func (l *gatedLog) Read(ctx context.Context, from uint64, limit int) ([]*hub.Event, error) {
	if from < l.mark.Load() {
		l.waiting.Add(1)
		defer l.waiting.Add(-1)
		select {
		case <-l.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := l.fail.Load(); err != nil {
			return nil, *err
		}
	}
	return l.MemoryLog.Read(ctx, from, limit)
}

func (l *gatedLog) release() { l.open.Do(func() { close(l.gate) }) }

// TestCatchUpReadsOffTheWritePath holds the reads of old events of many
// subscribers catching up, more than the pool has workers, and checks that
// the hub goes on delivering to its live subscribers meanwhile, and that,
// once the reads return, those catching up get every event once, in order.
// Two kinds catch up: subscribers resuming with Last-Event-ID, and live
// subscribers sent back to the log, whose runners are pool workers.
// Over HTTP/2 the runners are the requests' handlers.
func TestCatchUpReadsOffTheWritePath(t *testing.T) {
	t.Parallel()
	for _, http2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[http2], func(t *testing.T) {
			t.Parallel()
			testCatchUpReadsOffTheWritePath(t, http2)
		})
	}
}

func testCatchUpReadsOffTheWritePath(t *testing.T, http2 bool) {
	lg := newGatedLog()
	t.Cleanup(func() { _ = lg.Close() })
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, hub.Config{Log: lg, PublisherKey: key, SubscriberKey: key, Anonymous: true})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), http2)
	t.Cleanup(lg.release) // before the hub closes, should the test fail
	n := 4 * runtime.GOMAXPROCS(0)
	const topic, laggard = "https://example.com/feed", "https://example.com/laggard"

	send := func(topic, data string) string {
		t.Helper()
		id, err := th.Publish(t.Context(), hub.Update{Topics: []string{topic}, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	var data []string // the data of every event published to topic, in order
	publish := func(k int) {
		for range k {
			d := strconv.Itoa(len(data))
			send(topic, d)
			data = append(data, d)
		}
	}
	expectAll := func(s *stream, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			s.expect(t, data[i])
		}
	}

	publish(5)
	resumeAfter := send("https://example.com/other", "not for them") // data[:5] are before it
	publish(5)
	var laggards, lives []*stream
	for range n {
		laggards = append(laggards, th.subscribe(t, q("topic", topic, "topic", laggard), nil))
		lives = append(lives, th.subscribe(t, q("topic", topic), nil))
	}
	publish(5)
	for _, s := range append(laggards, lives...) {
		expectAll(s, 10, 15)
	}

	// An event the laggards do not want moves the dispatcher past their
	// cursors. From then on, every event published so far is out of
	// memory: the dispatcher's reads, of later events, are not.
	other := th.subscribe(t, q("topic", "https://example.com/other"), nil)
	send("https://example.com/other", "gap")
	other.expect(t, "gap")
	_, next, err := lg.Bounds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lg.mark.Store(next)
	if s := lives[0]; s.resp.ProtoMajor != map[bool]int{false: 1, true: 2}[http2] {
		t.Fatalf("protocol %s", s.resp.Proto)
	}
	var resumers []*stream
	for range n {
		resumers = append(resumers, th.subscribe(t, q("topic", topic), header("Last-Event-ID", resumeAfter)))
	}
	hub.FromLog(th.Hub, laggard)
	deadline := time.Now().Add(wait)
	for lg.waiting.Load() == 0 || hub.CatchingUp(th.Hub) < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads blocked and %d subscribers catching up, want some and %d", lg.waiting.Load(), hub.CatchingUp(th.Hub), 2*n)
		}
		runtime.Gosched()
	}

	publish(5)
	for _, s := range lives {
		expectAll(s, 15, 20)
	}
	if lg.waiting.Load() == 0 {
		t.Fatal("the reads of old events returned before the gate opened")
	}
	for _, s := range append(laggards, resumers...) {
		if len(s.events) != 0 {
			t.Fatalf("a subscriber catching up got %d events while its read was blocked", len(s.events))
		}
	}

	lg.release()
	publish(5)
	for _, s := range resumers {
		expectAll(s, 5, 25)
	}
	for _, s := range laggards {
		expectAll(s, 15, 25)
	}
	for _, s := range lives {
		expectAll(s, 20, 25)
	}
	// Once caught up, they are live again, and nothing came twice.
	publish(1)
	for _, s := range append(append(laggards, resumers...), lives...) {
		expectAll(s, 25, 26)
		if len(s.events) != 0 {
			t.Fatalf("%d events more than published", len(s.events))
		}
	}
	deadline = time.Now().Add(wait)
	for hub.CatchingUp(th.Hub) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers still catching up", hub.CatchingUp(th.Hub))
		}
		runtime.Gosched()
	}
}

// A read of old events that fails off the write path ends the subscription
// and counts a store error, as one that fails in place; live subscribers
// carry on.
func TestCatchUpReadFailsOffTheWritePath(t *testing.T) {
	t.Parallel()
	lg := newGatedLog()
	lg.release()
	err := errors.New("the engine is gone")
	lg.fail.Store(&err)
	th := newTestHub(t, hub.Config{Log: lg})
	const topic = "https://example.com/feed"
	live := th.subscribe(t, q("topic", topic), nil)
	th.publish(t, topic, "old")
	live.expect(t, "old") // the dispatcher has read it
	_, next, berr := lg.Bounds(t.Context())
	if berr != nil {
		t.Fatal(berr)
	}
	lg.mark.Store(next)
	resumer := th.subscribe(t, q("topic", topic), header("Last-Event-ID", "earliest"))
	select {
	case <-resumer.done:
	case <-time.After(wait):
		t.Fatal("the subscription whose read failed is still open")
	}
	if len(resumer.events) != 0 {
		t.Fatalf("the subscription whose read failed got %d events", len(resumer.events))
	}
	th.publish(t, topic, "new")
	live.expect(t, "new")
	if st := th.Stats(); st.StoreErrors["read"] != 1 {
		t.Fatalf("store errors %v, want one read", st.StoreErrors)
	}
}
