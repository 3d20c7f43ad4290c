package hub_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// The tests of a subscriber's connection: its close noticed at once, its
// subscription listed before it is answered, and a connection the hub
// closes never taken back into a client's pool.

// stormSize is how many subscribers close at once in the close tests.
const stormSize = 1000

// stormWait bounds the wait for a storm's subscribers to be finished: far
// more than it takes (tens of milliseconds; BenchmarkCloseStorm), so that
// a loaded machine cannot fail the test, and far less than never, which is
// what a hub that notices a close only at a write does with no heartbeat.
const stormWait = 60 * time.Second

// presence follows the subscription events of one topic.
type presence struct {
	mu     sync.Mutex
	joined map[string]bool // subscriber IDs
	left   map[string]bool
}

// watchPresence subscribes, with client, to the subscription events of the
// hub at hubURL and records those of topic.
func watchPresence(t *testing.T, client *http.Client, hubURL, topic string) *presence {
	t.Helper()
	const events = "/.well-known/mercure/subscriptions/{topic}/{subscriber}"
	req, err := http.NewRequest(http.MethodGet, hubURL+"?"+q("topic", events), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = bearer(token(t, nil, []string{events}, time.Time{}))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribing to the subscription events: %d", resp.StatusCode)
	}
	p := &presence{joined: map[string]bool{}, left: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range sse.NewDecoder(resp.Body).Events() {
			if err != nil {
				return
			}
			var doc subscriptionDoc
			if json.Unmarshal([]byte(ev.Data), &doc) != nil || doc.Topic != topic {
				continue
			}
			p.mu.Lock()
			if doc.Active {
				p.joined[doc.Subscriber] = true
			} else {
				p.left[doc.Subscriber] = true
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-done
	})
	return p
}

func (p *presence) counts() (joined, left int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.joined), len(p.left)
}

// check fails the test unless every subscriber that joined has left.
func (p *presence) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.joined {
		if !p.left[id] {
			t.Errorf("subscriber %s joined and never left", id)
		}
	}
	for id := range p.left {
		if !p.joined[id] {
			t.Errorf("subscriber %s left without having joined", id)
		}
	}
}

// listed returns the number of active subscriptions to topic that the
// subscriptions API lists.
func listed(t *testing.T, client *http.Client, base, topic string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/.well-known/mercure/subscriptions/"+url.QueryEscape(topic), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = bearer(token(t, nil, []string{apiClaim}, time.Time{}))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc collectionDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the subscriptions API: %d, %v", resp.StatusCode, err)
	}
	return len(doc.Subscriptions)
}

// sockets counts this process's TCP sockets with an end at port, and those
// of them in CLOSE-WAIT on the hub's side (the client closed, the hub has
// not), from /proc/net/tcp and /proc/self/fd. Sockets in TIME-WAIT belong
// to no process and are not counted.
func sockets(t *testing.T, port int) (open, closeWait int) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil {
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				mine[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !mine[f[9]] {
				continue
			}
			local, remote, state := f[1], f[2], f[3]
			switch {
			case strings.HasSuffix(local, hexPort):
				open++
				if state == "08" {
					closeWait++
				}
			case strings.HasSuffix(remote, hexPort):
				open++
			}
		}
	}
	return open, closeWait
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// subscribeRaw opens an HTTP/1.1 subscription on a connection of its own
// and returns it once the response's head and first comment have come.
func subscribeRaw(t testing.TB, addr, query string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c, "GET %s?%s HTTP/1.1\r\nHost: hub.test\r\n\r\n", hub.Path, query); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 1024)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		t.Fatalf("subscribing: %q, %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	// The first chunk, a comment: the hub sends nothing more unasked.
	if first, err := br.ReadString('\n'); err != nil || first != "2\r\n" {
		t.Fatalf("the first chunk: %q, %v", first, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// closeHalfReset closes half the connections with a FIN and the other
// half with a reset.
func closeHalfReset(conns []net.Conn) {
	for i, c := range conns {
		if i%2 == 1 {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		_ = c.Close()
	}
}

// Subscribers whose clients close their connections at once, half with a
// FIN and half with a reset, with no heartbeat to find them out, are all
// finished: each leaves the index and the subscriptions API, its socket is
// closed (none left in CLOSE-WAIT) and its departure is published.
func TestClosedConnectionsFinish(t *testing.T) {
	for _, c := range []struct {
		name    string
		reading bool // watch by reading, as systems without epoll do
	}{{"epoll", false}, {"reading", true}} {
		t.Run(c.name, func(t *testing.T) {
			s := newServed(t, hub.Config{Subscriptions: true, Heartbeat: -1}, nil)
			if c.reading {
				hub.WatchByReading(s.h)
			}
			base, port := "http://"+s.fast, portOf(t, s.fast)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			p := watchPresence(t, client, base+hub.Path, "storm")
			before, _ := sockets(t, port)

			conns := make([]net.Conn, stormSize)
			for i := range conns {
				conns[i] = subscribeRaw(t, s.fast, q("topic", "storm"))
			}
			if n := listed(t, client, base, "storm"); n != stormSize {
				t.Fatalf("%d subscriptions listed, want %d", n, stormSize)
			}
			if !c.reading {
				if n := hub.Watching(s.h); n != stormSize+1 {
					t.Fatalf("%d connections watched, want %d", n, stormSize+1)
				}
			}
			start := time.Now()
			closeHalfReset(conns)
			waitLong(t, "every subscriber to leave", func() bool {
				joined, left := p.counts()
				return joined == stormSize && left == stormSize
			})
			t.Logf("%d closes noticed and published in %v", stormSize, time.Since(start))
			p.check(t)
			waitLong(t, "the sockets to close", func() bool {
				open, _ := sockets(t, port)
				return open == before
			})
			if _, closeWait := sockets(t, port); closeWait != 0 {
				t.Fatalf("%d sockets in CLOSE-WAIT", closeWait)
			}
			if n := listed(t, client, base, "storm"); n != 0 {
				t.Fatalf("%d subscriptions listed after the storm", n)
			}
			if n := hub.Subscribers(s.h); n != 1 {
				t.Fatalf("%d subscribers left in the index, want the watcher only", n)
			}
			if !c.reading {
				if n := hub.Watching(s.h); n != 1 {
					t.Fatalf("%d connections still watched, want the watcher's only", n)
				}
			}
		})
	}
}

// The same over HTTP/2: subscribers on five connections, of which two
// close with a FIN, two with a reset, and one stays while each of its
// streams is cancelled (RST_STREAM).
func TestClosedStreamsFinishHTTP2(t *testing.T) {
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, hub.Config{PublisherKey: key, SubscriberKey: key, Anonymous: true, Subscriptions: true, Heartbeat: -1})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), true)
	port := portOf(t, th.srv.Listener.Addr().String())
	client := th.srv.Client()
	p := watchPresence(t, client, th.url, "storm")
	before, _ := sockets(t, port)

	const conns = 5
	tlsConfig := client.Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.NextProtos = []string{"h2"}
	type link struct {
		tr     *http.Transport
		mu     sync.Mutex
		raw    []net.Conn
		cancel []context.CancelFunc
	}
	links := make([]*link, conns)
	for i := range links {
		l := &link{}
		l.tr = &http.Transport{ForceAttemptHTTP2: true, DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, network, addr)
			if err == nil {
				l.mu.Lock()
				l.raw = append(l.raw, c.(*tls.Conn).NetConn())
				l.mu.Unlock()
			}
			return c, err
		}}
		t.Cleanup(l.tr.CloseIdleConnections)
		links[i] = l
	}
	for i := range stormSize {
		l := links[i%conns]
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, th.url+"?"+q("topic", "storm"), nil)
		resp, err := l.tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("subscribing: %s %d", resp.Proto, resp.StatusCode)
		}
		l.cancel = append(l.cancel, cancel)
		t.Cleanup(func() { resp.Body.Close() })
	}
	for i, l := range links {
		if len(l.raw) != 1 {
			t.Fatalf("link %d made %d connections, want 1", i, len(l.raw))
		}
	}
	if n := listed(t, client, th.srv.URL, "storm"); n != stormSize {
		t.Fatalf("%d subscriptions listed, want %d", n, stormSize)
	}

	start := time.Now()
	closeHalfReset([]net.Conn{links[0].raw[0], links[1].raw[0], links[2].raw[0], links[3].raw[0]})
	for _, cancel := range links[4].cancel {
		cancel()
	}
	waitLong(t, "every subscriber to leave", func() bool {
		joined, left := p.counts()
		return joined == stormSize && left == stormSize
	})
	t.Logf("%d closes noticed and published in %v", stormSize, time.Since(start))
	p.check(t)
	links[4].tr.CloseIdleConnections()
	waitLong(t, "the sockets to close", func() bool {
		open, _ := sockets(t, port)
		return open == before
	})
	if _, closeWait := sockets(t, port); closeWait != 0 {
		t.Fatalf("%d sockets in CLOSE-WAIT", closeWait)
	}
	if n := listed(t, client, th.srv.URL, "storm"); n != 0 {
		t.Fatalf("%d subscriptions listed after the storm", n)
	}
}

// waitLong waits for cond up to stormWait.
func waitLong(t *testing.T, what string, cond func() bool) { waitWithin(t, stormWait, what, cond) }

// A client that has the answer to its subscription finds itself in the
// subscriptions API, and its connection's event in the history, at once.
func TestSubscribedBeforeAnswered(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{Subscriptions: true})
	addr := th.srv.Listener.Addr().String()
	client := th.srv.Client()
	for i := range stormSize {
		topic := fmt.Sprintf("/rooms/%d", i)
		c := subscribeRaw(t, addr, q("topic", topic))
		if n := listed(t, client, th.srv.URL, topic); n != 1 {
			t.Fatalf("subscription %d: %d listed right after the answer, want 1", i, n)
		}
		if !announced(t, th.log(), topic) {
			t.Fatalf("subscription %d: its event is not in the history when it is answered", i)
		}
		c.Close()
	}
}

// announced reports whether one of the last events of the log announces
// a subscription to topic.
func announced(t *testing.T, l hub.Log, topic string) bool {
	t.Helper()
	ctx := context.Background()
	_, next, err := l.Bounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The departures of the subscribers before may come after.
	from := uint64(1)
	if next > 64 {
		from = next - 64
	}
	evs, err := l.Read(ctx, from, 64)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/.well-known/mercure/subscriptions/" + url.QueryEscape(topic) + "/"
	for _, ev := range evs {
		if strings.HasPrefix(ev.Topics[0], prefix) && strings.Contains(ev.Data, `"active":true`) {
			return true
		}
	}
	return false
}

// A client that pools its connections subscribes, has its stream ended by
// the hub, which closes that connection, and publishes through the same
// pool: no request of it ever goes down the closing connection.
func TestPooledClientAfterEndedStream(t *testing.T) {
	t.Parallel()
	s := newServed(t, hub.Config{}, nil)
	base := "http://" + s.fast + hub.Path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	auth := "Bearer " + publisherToken(t)
	publish := func(form url.Values) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", auth)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("publishing: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publishing: %d", resp.StatusCode)
		}
	}
	for round := range 100 {
		topic := fmt.Sprintf("/trips/%d", round)
		resp, err := client.Get(base + "?" + q("topic", topic))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribing: %v", err)
		}
		if !resp.Close {
			t.Fatal("the stream's head does not say Connection: close")
		}
		publish(url.Values{"topic": {topic}, "data": {"arrived"}, "end": {"1"}})
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("reading the stream to its end: %v", err)
		}
		resp.Body.Close()
		for i := range 10 {
			publish(url.Values{"topic": {topic + "/log"}, "data": {strconv.Itoa(i)}})
		}
	}
}
