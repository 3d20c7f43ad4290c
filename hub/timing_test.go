package hub_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// pipeListener is an in-memory network for tests in a synctest bubble: its
// connections are net.Pipe pairs, whose blocking synctest understands.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
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
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// bubbleHub runs a hub and an HTTP server on a pipe network inside the
// current synctest bubble, and returns a client for it. Everything stops
// at the end of the test.
func bubbleHub(t *testing.T, cfg hub.Config) (*hub.Hub, *http.Client) {
	t.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	tr := &http.Transport{DialContext: ln.dial}
	t.Cleanup(func() {
		_ = h.Close()
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
	return h, &http.Client{Transport: tr}
}

// watch subscribes and records, with the bubble's time, each comment and
// event of the stream and when it ended.
type watch struct {
	mu       sync.Mutex
	start    time.Time
	comments []time.Duration
	events   []string
	eventAt  []time.Duration
	ended    time.Duration // 0 while open
	body     io.Closer
}

func watchStream(t *testing.T, c *http.Client, query string, hdr http.Header) *watch {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://hub"+hub.Path+"?"+query, nil)
	req.Header = hdr
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	w := &watch{start: time.Now(), body: resp.Body}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		d := sse.NewDecoder(resp.Body)
		d.OnComment = func(string) {
			w.mu.Lock()
			w.comments = append(w.comments, time.Since(w.start))
			w.mu.Unlock()
		}
		for ev, err := range d.Events() {
			if err != nil {
				break
			}
			w.mu.Lock()
			w.events = append(w.events, ev.Data)
			w.eventAt = append(w.eventAt, time.Since(w.start))
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.ended = time.Since(w.start)
		w.mu.Unlock()
	}()
	return w
}

func (w *watch) snapshot() (comments []time.Duration, events []string, ended time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.comments...), append([]string(nil), w.events...), w.ended
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, c := bubbleHub(t, hub.Config{Heartbeat: 15 * time.Second, MaxLifetime: -1})
		w := watchStream(t, c, q("topic", "a"), nil)

		time.Sleep(20 * time.Second)
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "at 20s"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(45 * time.Second) // to 65 s
		synctest.Wait()
		comments, events, ended := w.snapshot()
		// The opening comment, then one each 15 s of silence: at 15 s, and
		// after the event at 20 s, at 35, 50 and 65 s.
		want := []time.Duration{0, 15 * time.Second, 35 * time.Second, 50 * time.Second, 65 * time.Second}
		if !equalDurations(comments, want) || len(events) != 1 || ended != 0 {
			t.Fatalf("comments at %v (want %v), events %v, ended %v", comments, want, events, ended)
		}
	})
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNoHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := bubbleHub(t, hub.Config{Heartbeat: -1, MaxLifetime: -1})
		w := watchStream(t, c, q("topic", "a"), nil)
		time.Sleep(time.Hour)
		synctest.Wait()
		if comments, _, ended := w.snapshot(); len(comments) != 1 || ended != 0 {
			t.Fatalf("comments %v, ended %v", comments, ended)
		}
	})
}

// The hub ends a connection after 80 to 100 % of the maximum lifetime.
func TestMaxLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := bubbleHub(t, hub.Config{MaxLifetime: 100 * time.Second, Heartbeat: -1})
		var ws []*watch
		for range 20 {
			ws = append(ws, watchStream(t, c, q("topic", "a"), nil))
		}
		time.Sleep(80*time.Second - time.Millisecond)
		synctest.Wait()
		for _, w := range ws {
			if _, _, ended := w.snapshot(); ended != 0 {
				t.Fatalf("a stream ended at %v", ended)
			}
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		distinct := map[time.Duration]bool{}
		for _, w := range ws {
			_, _, ended := w.snapshot()
			if ended < 80*time.Second || ended > 100*time.Second {
				t.Fatalf("a stream ended at %v", ended)
			}
			distinct[ended] = true
		}
		if len(distinct) < 2 {
			t.Fatal("every stream ended at the same time")
		}
	})
}

// A subscriber's connection ends when its token expires.
func TestTokenExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key, _ := hub.NewKey("HS256", testKey)
		_, c := bubbleHub(t, hub.Config{SubscriberKey: key, MaxLifetime: time.Hour, Heartbeat: -1})
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"mercure": map[string]any{"subscribe": []string{"*"}},
			"exp":     time.Now().Add(30 * time.Second).Unix(),
		}).SignedString(testKey)
		w := watchStream(t, c, q("topic", "a"), bearer(tok))
		time.Sleep(30*time.Second - time.Millisecond)
		synctest.Wait()
		if _, _, ended := w.snapshot(); ended != 0 {
			t.Fatalf("ended at %v, before the token expired", ended)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if _, _, ended := w.snapshot(); ended != 30*time.Second {
			t.Fatalf("ended at %v, want 30s", ended)
		}
	})
}

// A client whose connection takes no bytes for the dispatch timeout is
// disconnected; it will resume with Last-Event-ID.
func TestDispatchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, c := bubbleHub(t, hub.Config{DispatchTimeout: 5 * time.Second, Heartbeat: -1, MaxLifetime: -1})
		resp, err := c.Get("http://hub" + hub.Path + "?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The body is never read: a pipe takes nothing unread.
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "x"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		if n := hub.Subscribers(h); n != 1 {
			t.Fatalf("%d subscribers before the timeout", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := hub.Subscribers(h); n != 0 {
			t.Fatalf("%d subscribers after the timeout", n)
		}
	})
}

// Events that follow a write closer than BatchInterval go out together in
// the next round, at most one per interval; one after a quiet spell goes
// out at once, whatever the number of subscribers.
func TestBatchInterval(t *testing.T) {
	gathered := []time.Duration{0, 50 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
	atOnce := []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond}
	for _, tc := range []struct {
		interval    time.Duration
		subscribers int
		want        []time.Duration // when each event arrives
	}{
		{50 * time.Millisecond, 1, gathered},
		{50 * time.Millisecond, 100, gathered},
		{-1, 100, atOnce},
	} {
		t.Run(fmt.Sprintf("%v/subscribers=%d", tc.interval, tc.subscribers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, c := bubbleHub(t, hub.Config{BatchInterval: tc.interval, Heartbeat: -1, MaxLifetime: -1})
				var ws []*watch
				for range tc.subscribers {
					ws = append(ws, watchStream(t, c, q("topic", "a"), nil))
				}
				synctest.Wait()
				start := time.Now()
				for i, at := range atOnce {
					time.Sleep(time.Until(start.Add(at)))
					if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: fmt.Sprint(i)}); err != nil {
						t.Fatal(err)
					}
					synctest.Wait()
				}
				time.Sleep(time.Second)
				synctest.Wait()
				for _, w := range ws {
					if events, got := w.arrivals(start); !slices.Equal(events, []string{"0", "1", "2", "3"}) || !equalDurations(got, tc.want) {
						t.Fatalf("events %v at %v, want at %v", events, got, tc.want)
					}
				}
			})
		})
	}
}

// Quiet is per subscriber: one whose events come often does not hold back
// an event for another that has had none for a while.
func TestBatchIntervalPerSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, c := bubbleHub(t, hub.Config{BatchInterval: 50 * time.Millisecond, Heartbeat: -1, MaxLifetime: -1})
		busy := watchStream(t, c, q("topic", "busy"), nil)
		quiet := watchStream(t, c, q("topic", "quiet"), nil)
		synctest.Wait()
		start := time.Now()
		for _, p := range []struct {
			at    time.Duration
			topic string
		}{{0, "busy"}, {10 * time.Millisecond, "busy"}, {20 * time.Millisecond, "quiet"}, {30 * time.Millisecond, "quiet"}} {
			time.Sleep(time.Until(start.Add(p.at)))
			if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{p.topic}, Data: p.topic}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, got := busy.arrivals(start); !equalDurations(got, []time.Duration{0, 50 * time.Millisecond}) {
			t.Errorf("busy: events at %v, want at 0s and 50ms", got)
		}
		// Its second event came within the interval of its first: it
		// waits for the round.
		if _, got := quiet.arrivals(start); !equalDurations(got, []time.Duration{20 * time.Millisecond, 50 * time.Millisecond}) {
			t.Errorf("quiet: events at %v, want at 20ms and 50ms", got)
		}
	})
}

// Under sustained load to many subscribers the interval doubles up to
// MaxBatchInterval, and comes back when the load falls; with few
// subscribers, or a fixed interval, it stays.
func TestBatchIntervalStretches(t *testing.T) {
	ms := func(ds ...int) []time.Duration {
		var out []time.Duration
		for _, d := range ds {
			out = append(out, time.Duration(d)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		max         time.Duration
		subscribers int
		busy, after []time.Duration // when writes arrive while busy, and after
	}{
		// Rounds at 10 ms, then 20, then 40. After the load, the first
		// event of a quiet spell goes at once and halves the interval to
		// 20 ms, so the next waits for its round; the round halves it to
		// 10 ms, and events 17 ms apart go at once again.
		{"stretches", 40 * time.Millisecond, 100, ms(0, 10, 30, 70, 110, 150, 190, 230), ms(500, 520, 534, 551, 568)},
		{"fixed", 10 * time.Millisecond, 100, ms(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200), ms(500, 517, 534, 551, 568)},
		{"few subscribers", 40 * time.Millisecond, 10, ms(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200), ms(500, 517, 534, 551, 568)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, c := bubbleHub(t, hub.Config{BatchInterval: 10 * time.Millisecond, MaxBatchInterval: tc.max, Heartbeat: -1, MaxLifetime: -1})
				var ws []*watch
				for range tc.subscribers {
					ws = append(ws, watchStream(t, c, q("topic", "a"), nil))
				}
				synctest.Wait()
				start := time.Now()
				publish := func(at time.Duration) {
					time.Sleep(time.Until(start.Add(at)))
					if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: fmt.Sprint(at)}); err != nil {
						t.Fatal(err)
					}
					synctest.Wait()
				}
				// One event a millisecond for 200 ms, then one every 17 ms.
				events := 0
				for at := range 200 {
					publish(time.Duration(at) * time.Millisecond)
					events++
				}
				for _, at := range ms(500, 517, 534, 551, 568) {
					publish(at)
					events++
				}
				time.Sleep(time.Second)
				synctest.Wait()
				want := append(slices.Clone(tc.busy), tc.after...)
				for _, w := range ws {
					got, at := w.arrivals(start)
					if len(got) != events {
						t.Fatalf("%d events, want %d", len(got), events)
					}
					if writes := slices.Compact(at); !equalDurations(writes, want) {
						t.Fatalf("writes at %v, want at %v", writes, want)
					}
				}
			})
		})
	}
}

// arrivals returns the events received and when, counted from start.
func (w *watch) arrivals(start time.Time) (events []string, at []time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.eventAt {
		at = append(at, d-start.Sub(w.start))
	}
	return append([]string(nil), w.events...), at
}
