package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

// Benchmarks of the hub's hot paths:
//
//	go test -run '^$' -bench . -benchmem ./hub
//
// BenchmarkFanout and BenchmarkReplay go through real HTTP/1.1 connections
// over loopback, so their figures include the kernel's share (writev,
// the readers' reads) and the goroutine handoffs between the publisher,
// the dispatcher, the pool workers and the readers. Allocations are
// counted for the whole process: the readers are written to allocate
// nothing, so what is reported is the hub's, and Publish's.

// benchPayload is the data of the benchmarks' events: a small JSON
// document, the typical Mercure update.
const benchPayload = `{"@id":"https://example.com/books/1","title":"The Left Hand of Darkness","author":"Ursula K. Le Guin","year":1969}`

const benchTopic = "https://example.com/books/1"

// newBenchHub starts a hub with cfg behind an HTTP server on loopback and
// stops both at the end of the benchmark.
func newBenchHub(b *testing.B, cfg hub.Config) (*hub.Hub, *httptest.Server) {
	b.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return h, srv
}

// countEvents counts the ends of events ("\n\n") in p; prev carries the
// last byte of the previous read, as an event may straddle two reads. The
// benchmarks' events have no empty line inside.
func countEvents(p []byte, prev *byte) int {
	n := 0
	last := *prev
	for _, c := range p {
		if c == '\n' && last == '\n' {
			n++
			last = 0
			continue
		}
		last = c
	}
	*prev = last
	return n
}

// fanout is a set of subscriptions whose readers count the events they
// get: the reader that brings pending to zero signals done.
type fanout struct {
	pending atomic.Int64
	done    chan struct{} // one signal per event delivered to all
	dead    chan struct{} // closed when a stream ends
	once    sync.Once
	readers sync.WaitGroup
}

// subscribe opens a subscription and starts its reader.
func (f *fanout) subscribe(b *testing.B, client *http.Client, u string) {
	b.Helper()
	resp, err := client.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		b.Fatalf("subscribe: status %d", resp.StatusCode)
	}
	f.readers.Add(1)
	go f.read(resp.Body)
}

// read counts the events of one stream, allocating nothing per read.
func (f *fanout) read(body io.ReadCloser) {
	defer f.readers.Done()
	defer body.Close()
	buf := make([]byte, 16<<10)
	var prev byte
	for {
		n, err := body.Read(buf)
		if k := countEvents(buf[:n], &prev); k > 0 && f.pending.Add(-int64(k)) == 0 {
			f.done <- struct{}{}
		}
		if err != nil {
			f.once.Do(func() { close(f.dead) })
			return
		}
	}
}

// deliver publishes u and waits until every one of the n subscribers has
// read it.
func (f *fanout) deliver(b *testing.B, h *hub.Hub, u hub.Update, n int) {
	f.pending.Store(int64(n))
	if _, err := h.Publish(context.Background(), u); err != nil {
		b.Fatal(err)
	}
	select {
	case <-f.done:
	case <-f.dead:
		b.Fatal("a subscription ended")
	}
}

// BenchmarkFanout measures the delivery of one event, published with
// Publish, to N subscribers over HTTP: the dispatcher's offers, the pool's
// writes (the event encoded once, one writev per connection) and the
// readers' wake-ups. Batching is off (BatchInterval -1), so each event is
// written on its own, and heartbeats are off.
//
// An op is one event delivered to all N subscribers: the benchmark waits
// for the last reader before it publishes the next. Publishing ahead
// instead would measure something else, and nothing stable: the hub would
// gather events into larger writes, and past the live queue's bound (1024
// events) or the history's (10,000) it would send subscribers back to the
// log or disconnect them. ns/op is thus the latency of a full fan-out, and
// ns/delivery (ns/op / N) its cost per subscriber, the pool's workers
// writing in parallel; at N=1 it is mostly the wake-ups of four
// goroutines. allocs/op holds Publish's own allocations (the ID, the
// event, its encoding, the log's), which do not grow with N: what grows
// with N is allocation per delivery.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	h, srv := newBenchHub(b, hub.Config{BatchInterval: -1, Heartbeat: -1})
	f := &fanout{done: make(chan struct{}, 1), dead: make(chan struct{})}
	// Registered after the hub's cleanup, so run before it: the hub and
	// the server close the streams, then the readers are waited for.
	b.Cleanup(func() {
		_ = h.Close()
		srv.Close()
		f.readers.Wait()
	})
	client := srv.Client()
	u := srv.URL + hub.Path + "?" + url.Values{"topic": {benchTopic}}.Encode()
	for range n {
		f.subscribe(b, client, u)
	}
	// A response's head is written before the subscriber joins the index.
	for deadline := time.Now().Add(wait); hub.Subscribers(h) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d subscribers of %d joined", hub.Subscribers(h), n)
		}
	}
	up := hub.Update{Topics: []string{benchTopic}, Data: benchPayload}
	// Warm up: every subscriber turns live, and the buffers reach their
	// steady size.
	for range 10 {
		f.deliver(b, h, up, n)
	}

	b.ReportAllocs()
	for b.Loop() {
		f.deliver(b, h, up, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
}

// BenchmarkTopicMatch measures how the hub finds the subscribers of an
// event: the index's lookup among 10,000 subscriptions (index/…), as the
// dispatcher does it for each event, and the matching of one selector with
// one topic (match/…), as a subscriber reading the log does it for each
// event. "cached" repeats one topic, whose results the matcher has cached;
// "uncached" goes through more distinct (template, topic) pairs than the
// cache holds, so that each template is run as a regular expression.
func BenchmarkTopicMatch(b *testing.B) {
	const subs = 10_000
	b.Run("index/exact/subscriptions=10000/topics=10000", func(b *testing.B) {
		// A subscription per topic; the events go round the topics.
		x := hub.NewTopicIndex()
		topics := make([][]string, subs)
		for i := range subs {
			topics[i] = []string{topicURL(i)}
			x.Add(topicURL(i))
		}
		benchIndex(b, x, topics, 1)
	})
	// Subscriptions to 100 shelves' templates, 100 subscribers each.
	shelves := func() *hub.TopicIndex {
		x := hub.NewTopicIndex()
		for i := range subs {
			x.Add(fmt.Sprintf("https://example.com/shelves/%d/books/{id}", i%100))
		}
		return x
	}
	b.Run("index/templates=100/subscriptions=10000/cached", func(b *testing.B) {
		benchIndex(b, shelves(), [][]string{{"https://example.com/shelves/42/books/7"}}, subs/100)
	})
	b.Run("index/templates=100/subscriptions=10000/uncached", func(b *testing.B) {
		// 10,000 topics by 100 templates: a million pairs, ten times what
		// the matcher caches.
		topics := make([][]string, subs)
		for i := range topics {
			topics[i] = []string{fmt.Sprintf("https://example.com/shelves/%d/books/%d", i%100, i)}
		}
		benchIndex(b, shelves(), topics, subs/100)
	})
	b.Run("index/templates=10000/subscriptions=10000/cached", func(b *testing.B) {
		// Each subscription its own template: the index runs (the cache
		// answers) every one of them for each event.
		x := hub.NewTopicIndex()
		for i := range subs {
			x.Add(fmt.Sprintf("https://example.com/users/%d/books/{id}", i))
		}
		benchIndex(b, x, [][]string{{"https://example.com/users/42/books/7"}}, 1)
	})
	b.Run("index/template=1/subscriptions=10000", func(b *testing.B) {
		// Everyone on https://example.com/books/{id}: one template run,
		// and 10,000 subscribers reached.
		x := hub.NewTopicIndex()
		for range subs {
			x.Add("https://example.com/books/{id}")
		}
		benchIndex(b, x, [][]string{{topicURL(7)}}, subs)
	})

	b.Run("match/exact", func(b *testing.B) {
		benchMatch(b, benchTopic, []string{benchTopic})
	})
	b.Run("match/template/cached", func(b *testing.B) {
		benchMatch(b, "https://example.com/books/{id}", []string{benchTopic})
	})
	b.Run("match/template/uncached", func(b *testing.B) {
		// Twice as many topics as the cache holds results.
		topics := make([]string, 2*hub.DefaultMatchCacheSize)
		for i := range topics {
			topics[i] = topicURL(i)
		}
		benchMatch(b, "https://example.com/books/{id}", topics)
	})
}

// BenchmarkDispatchTemplates measures what the distinct URI templates that
// subscribers hold cost each publication: the index's lookup of the
// subscribers of an event, as the dispatcher does it, with 0 to 100,000
// distinct templates held, one subscriber each.
//
//   - users: per-user templates (https://example.com/users/N/{x}), the
//     topic a user's: one template's literal prefix fits it (it does not
//     match: {x} takes no slash);
//   - shared/repeated: templates that all share the topic's literal prefix
//     and do not match it, an attacker's, and one topic again and again;
//   - shared/fresh: the same templates, a new topic each publication;
//   - fits/fresh: templates whose every literal fits the topics (they
//     differ in a variable's name), a new topic each publication: each
//     runs its regexp, the worst case, which MaxTemplates bounds.
func BenchmarkDispatchTemplates(b *testing.B) {
	const topic = "https://example.com/users/7/inbox/2026/12"
	runs := 0
	// fresh returns topics never seen, more than the index keeps verdicts
	// of: the index outlives a run, and -count runs it again.
	fresh := func() [][]string {
		runs++
		topics := make([][]string, 10_000)
		for i := range topics {
			topics[i] = []string{fmt.Sprintf("%s/%d/%d", topic, runs, i)}
		}
		return topics
	}
	for _, n := range []int{0, 1_000, 10_000, 100_000} {
		users := hub.NewTopicIndex()
		for i := range n {
			users.Add(fmt.Sprintf("https://example.com/users/%d/{x}", i))
		}
		b.Run(fmt.Sprintf("users/templates=%d", n), func(b *testing.B) {
			benchIndex(b, users, [][]string{{topic}}, 0)
		})
		shared := hub.NewTopicIndex()
		for i := range n {
			shared.Add(fmt.Sprintf("https://example.com/users/{id}/n%d{?q}", i))
		}
		b.Run(fmt.Sprintf("shared/repeated/templates=%d", n), func(b *testing.B) {
			benchIndex(b, shared, [][]string{{topic}}, 0)
		})
		b.Run(fmt.Sprintf("shared/fresh/templates=%d", n), func(b *testing.B) {
			benchIndex(b, shared, fresh(), 0)
		})
		// The worst case: templates whose every literal fits the topic
		// (they differ in a variable's name), so each runs its regexp.
		fits := hub.NewTopicIndex()
		for i := range n {
			fits.Add(fmt.Sprintf("https://example.com/users/{id}/inbox{/v%d}", i))
		}
		b.Run(fmt.Sprintf("fits/fresh/templates=%d", n), func(b *testing.B) {
			benchIndex(b, fits, fresh(), 0)
		})
	}
}

// benchIndex looks up the subscribers of events whose topics go round
// topics; each must reach want subscribers.
func benchIndex(b *testing.B, x *hub.TopicIndex, topics [][]string, want int) {
	if got := x.Reached(topics[0]); got != want {
		b.Fatalf("an event for %v reaches %d subscribers, want %d", topics[0], got, want)
	}
	b.ReportAllocs()
	i := 1 % len(topics) // the first was seen above
	for b.Loop() {
		if x.Reached(topics[i]) != want {
			b.Fatalf("an event for %v missed subscribers", topics[i])
		}
		if i++; i == len(topics) {
			i = 0
		}
	}
}

// benchMatch matches selector with topics in turn; each must match.
func benchMatch(b *testing.B, selector string, topics []string) {
	m := hub.NewMatcher(0)
	if !m.Match(selector, topics[0]) { // compiles the template, caches the result
		b.Fatalf("%q does not match %q", selector, topics[0])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !m.Match(selector, topics[i]) {
			b.Fatalf("%q does not match %q", selector, topics[i])
		}
		if i++; i == len(topics) {
			i = 0
		}
	}
}

// BenchmarkReplay measures a subscriber resuming with Last-Event-ID from a
// memory log of 10,000 events and receiving the 1,000 events after its ID
// over HTTP: an op is one resume, from the request to the end of the
// stream, and ns/event its cost per event replayed. The subscriber reads
// the log in its handler and writes the events, 256 at a time at most.
//
// The last event of the history ends its topic (Update.End), so that the
// hub closes each stream once it has sent it, the 1,000th event: the op
// ends with the stream, and no subscription outlives it. The op thus
// includes the request, the subscription's setup and its end.
func BenchmarkReplay(b *testing.B) {
	const history, replay = 10_000, 1_000
	h, srv := newBenchHub(b, hub.Config{BatchInterval: -1, Heartbeat: -1})
	ctx := context.Background()
	ids := make([]string, history)
	for i := range ids {
		id, err := h.Publish(ctx, hub.Update{Topics: []string{benchTopic}, Data: benchPayload, End: i == history-1})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	from := ids[history-replay-1]
	u := srv.URL + hub.Path + "?" + url.Values{"topic": {benchTopic}}.Encode()
	client := srv.Client()
	buf := make([]byte, 32<<10)

	resume := func() {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Last-Event-ID", from)
		req.Close = true // the hub closes the connection at the end
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("resume: status %d", resp.StatusCode)
		}
		got := 0
		var prev byte
		for {
			n, err := resp.Body.Read(buf)
			got += countEvents(buf[:n], &prev)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if got != replay {
			b.Fatalf("resume: got %d events, want %d", got, replay)
		}
	}
	resume() // warm up

	b.ReportAllocs()
	for b.Loop() {
		resume()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/replay, "ns/event")
}

// BenchmarkPublishHandler is a publication through the hub's handler, from
// the parsed request to the answer, without the HTTP server: what herald
// adds to net/http's cost per POST. The history is in memory and nobody
// subscribes.
func BenchmarkPublishHandler(b *testing.B) {
	h, body := newPublishBench(b)
	auth := "Bearer " + publisherToken(b)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "http://hub"+hub.Path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", auth)
		clear(w.header)
		w.status = 0
		h.ServeHTTP(w, r)
		if w.status != 0 && w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// newPublishBench returns the hub of the publication benchmarks, with its
// history in memory, and the form they publish.
func newPublishBench(b *testing.B) (*hub.Hub, string) {
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		b.Fatal(err)
	}
	h, err := hub.New(hub.Config{PublisherKey: key, Heartbeat: -1, Log: hub.NewMemoryLog(hub.MemoryLogConfig{})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	body := url.Values{"topic": {"https://example.com/books/1"}, "data": {`{"price": 12.5, "stock": 3}`}}.Encode()
	return h, body
}

// BenchmarkPublishPlain is BenchmarkPublishHandler's publication as Serve
// answers it, from the request's bytes to the answer's: parsed in place,
// without net/http.
func BenchmarkPublishPlain(b *testing.B) {
	h, body := newPublishBench(b)
	req := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", hub.Path, publisherToken(b), len(body), body))
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		if !hub.AnswerPlain(h, req, &out) {
			b.Fatal("not answered as a plain publication")
		}
	}
	if !bytes.HasPrefix(out, []byte("HTTP/1.1 200 OK\r\n")) {
		b.Fatalf("answer %q", out)
	}
}

// discardWriter is a ResponseWriter that keeps the status alone.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkCloseStorm measures how soon the hub finishes subscribers whose
// clients all close their connections at once, half with a FIN and half
// with a reset, with no heartbeat to find them out. One op is a storm of
// 1,000 subscribers, timed from the first close until the last has left
// the index (its socket closed, its departure queued).
func BenchmarkCloseStorm(b *testing.B) {
	h, srv := newBenchHub(b, hub.Config{Heartbeat: -1})
	addr := srv.Listener.Addr().String()
	conns := make([]net.Conn, stormSize)
	for range b.N {
		b.StopTimer()
		for i := range conns {
			conns[i] = subscribeRaw(b, addr, "topic=storm")
		}
		b.StartTimer()
		closeHalfReset(conns)
		for hub.Subscribers(h) > 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*stormSize), "µs/close")
}
