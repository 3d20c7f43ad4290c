package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

func TestHistogram(t *testing.T) {
	t.Parallel()
	var h Histogram
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}} {
		got := h.Percentile(c.p)
		if diff := math.Abs(float64(got-c.want)) / float64(c.want); diff > 0.02 {
			t.Errorf("p%v = %v, want %v within 2%%", c.p*100, got, c.want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100_000 {
		t.Errorf("max %v, count %d", h.Max(), h.Count())
	}
	var empty Histogram
	if empty.Percentile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
}

func TestRawConn(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		switch r.URL.Query().Get("mode") {
		case "chunked":
			w.(http.Flusher).Flush() // forces a chunked body
			io.WriteString(w, "chunked ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "body")
		case "close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "refuse":
			http.Error(w, "no", http.StatusForbidden)
		default:
			io.WriteString(w, "id-"+r.Header.Get("Authorization"))
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		mode   string
		status int
		body   string
	}{
		{"", 200, "id-Bearer tok"},
		{"chunked", 200, "chunked body"},
		{"close", 200, "bye"},
		{"", 200, "id-Bearer tok"}, // after a close: reconnects
		{"refuse", 403, "no\n"},
	} {
		tg, err := Target{URL: srv.URL + "/?mode=" + c.mode}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		conn := newRawConn(tg, "application/x-www-form-urlencoded", "tok")
		for range 2 { // the same connection, kept alive
			status, body, err := conn.post(context.Background(), tg.u.RequestURI(), []byte("topic=a&data=x"))
			if err != nil || status != c.status || string(body) != c.body {
				t.Fatalf("mode %q: %d %q %v, want %d %q", c.mode, status, body, err, c.status, c.body)
			}
		}
		conn.close()
	}
	if bodies[0] != "topic=a&data=x" {
		t.Fatalf("the server read %q", bodies[0])
	}
}

// A fan-out run against a real hub: every event reaches every subscriber
// of its topic, and the report says so.
func TestFanout(t *testing.T) {
	t.Parallel()
	h, err := hub.New(hub.Config{PublisherKey: mustKey(t), Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	tok := token(t)
	res, err := Fanout(context.Background(), FanoutConfig{
		Target:      Target{URL: srv.URL + hub.Path, PublisherToken: tok},
		Subscribers: 10, Topics: 3, Events: 600, Publishers: 4, Drain: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Topics 0, 1, 2 get 200 events each; subscribers 4, 3, 3.
	if res.Published != 600 || res.Expected != 200*4+200*3+200*3 || res.Delivered != res.Expected ||
		res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Incomplete != 0 {
		t.Fatalf("%+v", res)
	}
	if res.DeliveryLatency.Count != uint64(res.Expected) || res.PostLatency.Count != 600 {
		t.Fatalf("latencies: %+v %+v", res.DeliveryLatency, res.PostLatency)
	}
}

// The verification catches a hub that loses, repeats or reorders events.
func TestFanoutCatchesFaults(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"drop", "duplicate", "reorder"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			res, err := Fanout(context.Background(), FanoutConfig{
				Target: Target{URL: faultyHub(t, fault) + hub.Path}, Subscribers: 1, Topics: 1, Events: 50, Publishers: 1, Drain: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{"drop": res.Missing, "duplicate": res.Duplicated, "reorder": res.OutOfOrder}[fault]
			if got == 0 {
				t.Fatalf("a hub that does %s went unnoticed: %+v", fault, res)
			}
		})
	}
}

// faultyHub is a minimal hub that mistreats event 10: it drops it, sends
// it twice, or sends it after event 11.
func faultyHub(t *testing.T, fault string) string {
	t.Helper()
	var mu sync.Mutex
	var subs []chan string
	var held string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			ch := make(chan string, 1000)
			mu.Lock()
			subs = append(subs, ch)
			mu.Unlock()
			s, err := sse.NewStream(w, r, sse.StreamConfig{})
			if err != nil {
				return
			}
			defer s.Close()
			for {
				select {
				case data := <-ch:
					if s.Send(sse.Event{Data: data}) != nil {
						return
					}
				case <-r.Context().Done():
					return
				}
			}
		}
		_ = r.ParseForm()
		data := r.PostForm.Get("data")
		var out []string
		if strings.Fields(data + " x x")[1] == "10" {
			switch fault {
			case "drop":
			case "duplicate":
				out = []string{data, data}
			case "reorder":
				held = data
			}
		} else {
			out = append(out, data)
			if held != "" && strings.Fields(data + " x x")[1] == "11" {
				out, held = append(out, held), ""
			}
		}
		mu.Lock()
		for _, ch := range subs {
			for _, d := range out {
				ch <- d
			}
		}
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func mustKey(t *testing.T) *hub.Key {
	t.Helper()
	k, err := hub.NewKey("HS256", []byte("the key of the bench package's tests"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func token(t *testing.T) string {
	t.Helper()
	return signed(t, "the key of the bench package's tests")
}

func signed(t *testing.T, key string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestHub(t *testing.T, cfg hub.Config) string {
	t.Helper()
	cfg.PublisherKey, cfg.Anonymous = mustKey(t), true
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv.URL + hub.Path
}

// A connection run against a real hub: every connection opens, sees
// heartbeats, and receives the probe.
func TestConns(t *testing.T) {
	t.Parallel()
	u := newTestHub(t, hub.Config{Heartbeat: 300 * time.Millisecond})
	res, err := Conns(context.Background(), ConnsConfig{
		Target: Target{URL: u, PublisherToken: token(t)}, Subscribers: 50, Topics: 3, Rate: 500, Hold: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 50 || res.Failed != 0 || res.ProbeReceived != 50 || res.ProbeMissing != 0 || res.Dropped != 0 ||
		res.Heartbeating != 50 || res.ConnectLatency.Count != 50 || res.ProbeLatency.Count != 50 {
		t.Fatalf("%+v", res)
	}
}

// Over HTTP/2 with prior knowledge, the subscribers are streams, as many
// to a connection as asked, and each receives the probe; a hub that does
// not speak h2c fails every one (each stream's response must be HTTP/2).
func TestConnsHTTP2(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		h2c  bool
	}{{"h2c", true}, {"HTTP/1.1 only", false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, err := hub.New(hub.Config{PublisherKey: mustKey(t), Anonymous: true})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(h)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(c.h2c)
			srv.Start()
			t.Cleanup(func() {
				srv.Close()
				h.Close()
			})
			res, err := Conns(t.Context(), ConnsConfig{
				Target:      Target{URL: srv.URL + hub.Path, PublisherToken: token(t)},
				Subscribers: 30, Topics: 2, Hold: time.Millisecond, HTTP2: true, StreamsPerConn: 10,
				Probe: 30 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !c.h2c {
				if res.Connected != 0 || res.Failed != 30 {
					t.Fatalf("%+v", res)
				}
				return
			}
			if res.Connected != 30 || res.Connections != 3 || res.Failed != 0 || res.ProbeReceived != 30 || res.Dropped != 0 {
				t.Fatalf("%+v", res)
			}
		})
	}
}

// Connections a hub refuses are counted by kind, and the run says so.
func TestConnsFailures(t *testing.T) {
	t.Parallel()
	key, _ := hub.NewKey("HS256", []byte("another key of the bench tests, long enough"))
	h, err := hub.New(hub.Config{PublisherKey: mustKey(t), SubscriberKey: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	res, err := Conns(context.Background(), ConnsConfig{
		Target: Target{URL: srv.URL + hub.Path, PublisherToken: token(t)}, Subscribers: 5, Hold: time.Millisecond, Probe: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 0 || res.Failed != 5 || res.Failures["status 401"] != 5 {
		t.Fatalf("%+v", res)
	}
}

// A run that fails part way closes every connection it opened, those that
// had their probe too: a connection left open would hold its handler, and
// the test server's Close, forever.
func TestConnsClosesOnFailure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	open := 0
	changed := sync.NewCond(&mu)
	probe := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/pub/t0":
			close(probe)
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPost:
			http.Error(w, "refused", http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/sub/"):
			s, err := sse.NewStream(w, r, sse.StreamConfig{})
			if err != nil {
				return
			}
			defer s.Close()
			mu.Lock()
			open++
			mu.Unlock()
			defer func() { mu.Lock(); open--; changed.Broadcast(); mu.Unlock() }()
			if r.URL.Path == "/sub/t0" {
				select {
				case <-probe:
					if s.Send(sse.Event{Data: "probe"}) != nil {
						return
					}
				case <-r.Context().Done():
					return
				}
			}
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	_, err := Conns(context.Background(), ConnsConfig{Target: Target{URL: srv.URL, Protocol: Nchan}, Subscribers: 6, Topics: 2, Hold: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("the probe's refusal went unnoticed: %v", err)
	}
	// Closed connections are seen by the server at once; the bound is for
	// a failure of the test, not a measure.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { mu.Lock(); changed.Broadcast(); mu.Unlock() })
	defer stop()
	mu.Lock()
	defer mu.Unlock()
	for open > 0 && ctx.Err() == nil {
		changed.Wait()
	}
	if open > 0 {
		srv.CloseClientConnections() // or Close would wait for them
		t.Fatalf("%d connections left open after the run", open)
	}
}

// A reconnect run against a real hub: subscribers cut off come back with
// Last-Event-ID and miss nothing.
func TestReconnect(t *testing.T) {
	t.Parallel()
	u := newTestHub(t, hub.Config{})
	res, err := Reconnect(context.Background(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{URL: u, PublisherToken: token(t)},
			Subscribers: 20, Topics: 2, Events: 1000, Publishers: 2, Rate: 2000},
		KillEvery: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The last cut may come as the run ends, once its subscriber has
	// everything: its reconnection is then not waited for.
	if res.Kills < 10 || res.Reconnects < res.Kills-1 || res.Reconnects > res.Kills || res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 ||
		res.ReconnectLatency.Count != uint64(res.Reconnects) || res.CatchUpLatency.Count == 0 {
		t.Fatalf("%+v", res)
	}
}

// fakeNchan speaks nchan's protocol: POST /pub/CH with the data as body,
// GET /sub/CH for an event stream, and Last-Event-ID as "time:tag".
func fakeNchan(t *testing.T, resume bool) string {
	t.Helper()
	var mu sync.Mutex
	var msgs = map[string][]string{}
	changed := sync.NewCond(&mu)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/pub/"):
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			ch := strings.TrimPrefix(r.URL.Path, "/pub/")
			msgs[ch] = append(msgs[ch], string(b))
			changed.Broadcast()
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/sub/") && r.Header.Get("Accept") == "text/event-stream":
			ch := strings.TrimPrefix(r.URL.Path, "/sub/")
			s, err := sse.NewStream(w, r, sse.StreamConfig{})
			if err != nil {
				return
			}
			defer s.Close()
			mu.Lock()
			next := len(msgs[ch])
			if id := r.Header.Get("Last-Event-ID"); id != "" && resume {
				fmt.Sscanf(id, "1700000000:%d", &next)
				next++
			}
			stop := context.AfterFunc(r.Context(), func() { mu.Lock(); changed.Broadcast(); mu.Unlock() })
			defer stop()
			// Every wait follows a look at the context under mu: a
			// cancellation that came while a send had mu released
			// (its broadcast then woke no one) is seen before waiting.
			for r.Context().Err() == nil {
				if next == len(msgs[ch]) {
					changed.Wait()
					continue
				}
				ev := sse.Event{ID: fmt.Sprintf("1700000000:%d", next), Data: msgs[ch][next]}
				next++
				mu.Unlock()
				err := s.Send(ev)
				mu.Lock()
				if err != nil {
					break
				}
			}
			mu.Unlock()
		default:
			http.Error(w, "not nchan", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNchanProtocol(t *testing.T) {
	t.Parallel()
	u := fakeNchan(t, true)
	res, err := Reconnect(context.Background(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{URL: u, Protocol: Nchan},
			Subscribers: 6, Topics: 2, Events: 400, Publishers: 2, Rate: 1000},
		KillEvery: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Protocol != Nchan || res.Published != 400 || res.Missing != 0 || res.Duplicated != 0 || res.Kills == 0 || res.Reconnects != res.Kills {
		t.Fatalf("%+v", res)
	}
	conns, err := Conns(context.Background(), ConnsConfig{Target: Target{URL: u, Protocol: Nchan}, Subscribers: 10, Topics: 2, Hold: time.Millisecond})
	if err != nil || conns.ProbeReceived != 10 {
		t.Fatalf("%+v %v", conns, err)
	}
}

// A reconnect run catches a hub that does not resume.
func TestReconnectCatchesLoss(t *testing.T) {
	t.Parallel()
	res, err := Reconnect(context.Background(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{URL: fakeNchan(t, false), Protocol: Nchan},
			Subscribers: 4, Topics: 1, Events: 300, Publishers: 1, Rate: 1000, Drain: 500 * time.Millisecond},
		KillEvery: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kills == 0 || res.Missing == 0 {
		t.Fatalf("a hub that forgets Last-Event-ID went unnoticed: %+v", res)
	}
}

// A slow run against a real hub: the subscribers that never read are
// dropped once a write has waited for the dispatch timeout, and the
// readers, on their topic and on another, get every event once, in order.
func TestSlow(t *testing.T) {
	t.Parallel()
	// The dispatch timeout is long beside a reader's stall on a busy
	// machine, which would have the hub drop a reader too: a reader
	// would have to stop reading for 5 s, with megabytes pending.
	u := newTestHub(t, hub.Config{DispatchTimeout: 5 * time.Second, Heartbeat: -1})
	res, err := Slow(context.Background(), SlowConfig{
		Target: Target{URL: u, PublisherToken: token(t)}, Slow: 20, Fast: 2, Others: 1,
		Volume: 8 << 20, EventSize: 16 << 10, Wait: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 512 events, alternating between the topics: 256 to each reader.
	if res.Events != 512 || res.Published != 512 || res.Expected != 3*256 || res.Delivered != res.Expected ||
		res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Incomplete != 0 || res.ReadersLost != 0 ||
		res.FastLatency.Count != 2*256 || res.OtherLatency == nil || res.OtherLatency.Count != 256 {
		t.Fatalf("%+v", res)
	}
	if !res.Watched || res.Dropped != 20 || res.FirstDrop <= 0 || res.LastDrop < res.FirstDrop {
		t.Fatalf("the drops of the slow subscribers: %+v", res)
	}
}

func TestParseTCPLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, line    string
		local, remote string
		state         uint8
		tx, rx        int64
	}{
		{"ipv4", "   3: 0100007F:1F90 0200007F:C350 01 0003B600:00000010 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1",
			"127.0.0.1:8080", "127.0.0.2:50000", 1, 0x3b600, 0x10},
		{"ipv6 mapped", "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000800007F:C351 04 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1",
			"127.0.0.1:8080", "127.0.0.8:50001", 4, 0, 0},
		{"ipv6 loopback", "   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C352 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1",
			"[::1]:8080", "[::1]:50002", 10, 0, 0},
	} {
		e, ok := parseTCPLine([]byte(c.line))
		if !ok || e.local.String() != c.local || e.remote.String() != c.remote || e.state != c.state || e.txQueue != c.tx || e.rxQueue != c.rx {
			t.Errorf("%s: %+v %v", c.name, e, ok)
		}
	}
	if _, ok := parseTCPLine([]byte("  sl  local_address rem_address   st tx_queue rx_queue")); ok {
		t.Error("the header parsed")
	}
}

// cluster is hubs that share one history, each behind its own server, as
// the nodes of a herald cluster share a Redis stream; shared false gives
// each hub a history of its own, a cluster whose nodes do not talk. Each
// node counts the requests it serves.
type cluster struct {
	urls []string
	reqs []*nodeRequests
}

// nodeRequests counts a node's requests.
type nodeRequests struct {
	mu                         sync.Mutex
	subscribes, resumes, posts int
}

func (n *nodeRequests) counts() (subscribes, resumes, posts int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.subscribes, n.resumes, n.posts
}

func newCluster(t *testing.T, nodes int, shared bool) *cluster {
	t.Helper()
	lg := hub.NewMemoryLog(hub.MemoryLogConfig{})
	t.Cleanup(func() { lg.Close() })
	c := &cluster{}
	for range nodes {
		cfg := hub.Config{PublisherKey: mustKey(t), Anonymous: true, Log: lg}
		if !shared {
			cfg.Log = nil
		}
		h, err := hub.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := &nodeRequests{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.mu.Lock()
			switch {
			case r.Method == http.MethodPost:
				n.posts++
			case r.Header.Get("Last-Event-ID") != "":
				n.resumes++
			default:
				n.subscribes++
			}
			n.mu.Unlock()
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(func() {
			srv.Close()
			h.Close()
		})
		c.urls, c.reqs = append(c.urls, srv.URL+hub.Path), append(c.reqs, n)
	}
	return c
}

// A fan-out over the three nodes of a cluster: subscribers and publishers
// spread over every node, and every event reaches every subscriber of its
// topic once, in order, whichever node it was published to.
func TestFanoutCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, true)
	res, err := Fanout(t.Context(), FanoutConfig{
		Target:      Target{Nodes: c.urls, PublisherToken: token(t)},
		Subscribers: 12, Topics: 2, Events: 600, Publishers: 3, Drain: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 3 || res.Published != 600 || res.Expected != 600*6 || res.Delivered != res.Expected ||
		res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Incomplete != 0 {
		t.Fatalf("%+v", res)
	}
	// 12 subscribers, 6 to a topic, 2 to a topic on each node; the probes
	// go through node 0, the publishers' events one in three to each.
	for i, n := range c.reqs {
		subs, resumes, posts := n.counts()
		wantPosts := 200
		if i == 0 {
			wantPosts = 200 + 2 // and at least one probe per topic
		}
		if subs != 4 || resumes != 0 || posts < wantPosts || i > 0 && posts != wantPosts {
			t.Errorf("node %d: %d subscriptions, %d resumptions, %d publications", i, subs, resumes, posts)
		}
	}
}

// The checks catch a cluster whose nodes do not share their history: the
// subscribers of one node miss what was published to another.
func TestFanoutClusterCatchesSplit(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, false)
	// The probe would wait a minute for node 1's subscriber; a few seconds
	// show as well that it never comes.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := Fanout(ctx, FanoutConfig{
		Target:      Target{Nodes: c.urls, PublisherToken: token(t)},
		Subscribers: 2, Topics: 1, Events: 100, Publishers: 2, Drain: 500 * time.Millisecond,
	})
	// Node 1's subscriber never gets node 0's probe.
	if err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("a split cluster went unnoticed: %v", err)
	}
}

// A reconnect run over two nodes: every resumption crosses to the other
// node, and misses nothing.
func TestReconnectCluster(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, true)
	res, err := Reconnect(t.Context(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{Nodes: c.urls, PublisherToken: token(t)},
			Subscribers: 20, Topics: 2, Events: 1000, Publishers: 2, Rate: 2000},
		KillEvery: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kills < 10 || res.Reconnects < res.Kills-1 || res.Reconnects > res.Kills || res.Missing != 0 || res.Duplicated != 0 ||
		res.OutOfOrder != 0 || res.SubscriberFailures != 0 || res.NodeCut != nil {
		t.Fatalf("%+v", res)
	}
	var resumes int
	for i, n := range c.reqs {
		_, r, _ := n.counts()
		resumes += r
		if r == 0 && res.Reconnects > 2 {
			t.Errorf("node %d: no resumption", i)
		}
	}
	if int64(resumes) != res.Reconnects {
		t.Errorf("%d resumptions reached the nodes, %d reported", resumes, res.Reconnects)
	}
}

// A node cut: every subscriber of the node resumes on the next one, with
// nothing lost or repeated, the publishers move off it, and its process,
// when the run is given one, is killed.
func TestReconnectNodeCut(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, true)
	// The node's process: one that does nothing, so that its death is
	// the cut's doing.
	proc := exec.Command("sleep", "600")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()

	res, err := Reconnect(t.Context(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{Nodes: c.urls, PublisherToken: token(t)},
			Subscribers: 30, Topics: 2, Events: 600, Publishers: 3, Rate: 1000, PIDs: []int{proc.Process.Pid}},
		CutNode: &NodeCut{Node: 1, At: 200 * time.Millisecond, PID: proc.Process.Pid},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Subscribers 2, 3, 8, 9, 14, 15… are node 1's: 10 of them.
	nc := res.NodeCut
	if nc == nil || nc.Node != 1 || !nc.Killed || nc.Subscribers != 10 || nc.Resumed != 10 || nc.ResumeLatency.Count != 10 ||
		nc.CatchUpLatency.Count != 10 || nc.AtSeconds <= 0 {
		t.Fatalf("node cut: %+v", nc)
	}
	if res.Published != 600 || res.PublishErrors != 0 || res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 ||
		res.Incomplete != 0 || res.SubscriberFailures != 0 || res.Kills != 0 || res.Reconnects != 0 {
		t.Fatalf("%+v", res)
	}
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the node's process: %v", err)
	}
	// Node 1's subscribers resumed on node 2, and nowhere else.
	for i, want := range []int{0, 0, 10} {
		if _, r, _ := c.reqs[i].counts(); r != want {
			t.Errorf("node %d: %d resumptions, want %d", i, r, want)
		}
	}
}

// A node cut needs a cluster, and a node of it.
func TestReconnectNodeCutRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, true)
	for _, tc := range []struct {
		name  string
		nodes []string
		cut   NodeCut
	}{
		{"one node", c.urls[:1], NodeCut{Node: 0}},
		{"no such node", c.urls, NodeCut{Node: 2}},
		{"before the start", c.urls, NodeCut{Node: 1, At: -time.Second}},
	} {
		_, err := Reconnect(t.Context(), ReconnectConfig{
			FanoutConfig: FanoutConfig{Target: Target{Nodes: tc.nodes}, Subscribers: 1, Topics: 1, Events: 1, Publishers: 1},
			CutNode:      &tc.cut,
		})
		if err == nil || !strings.Contains(err.Error(), "node") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// A target names one hub or the nodes of a cluster, not both, and the
// scenarios that load one hub refuse several.
func TestTargetNodes(t *testing.T) {
	t.Parallel()
	if _, err := (Target{URL: "http://127.0.0.1:1/", Nodes: []string{"http://127.0.0.1:2/"}}).resolveNodes(); err == nil {
		t.Error("a URL and nodes were taken")
	}
	two := Target{Nodes: []string{"http://127.0.0.1:1/", "http://127.0.0.1:2/"}}
	if nodes, err := two.resolveNodes(); err != nil || len(nodes) != 2 || nodes[1].addr != "127.0.0.1:2" {
		t.Errorf("%v %v", nodes, err)
	}
	if _, err := Conns(t.Context(), ConnsConfig{Target: two, Subscribers: 1}); err == nil || !strings.Contains(err.Error(), "one hub") {
		t.Errorf("conns over two nodes: %v", err)
	}
}

// A node process that cannot be killed (here, one that has exited) is
// said so, and the cut still moves its subscribers elsewhere.
func TestReconnectNodeCutKillFails(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, true)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	res, err := Reconnect(t.Context(), ReconnectConfig{
		FanoutConfig: FanoutConfig{Target: Target{Nodes: c.urls, PublisherToken: token(t)},
			Subscribers: 4, Topics: 1, Events: 100, Publishers: 2, Rate: 1000},
		CutNode: &NodeCut{Node: 0, At: 20 * time.Millisecond, PID: gone.Process.Pid},
	})
	if err != nil {
		t.Fatal(err)
	}
	nc := res.NodeCut
	if nc == nil || nc.Killed || !strings.Contains(nc.KillError, "killing process") || nc.Subscribers != 2 || nc.Resumed != 2 ||
		res.Missing != 0 || res.Duplicated != 0 {
		t.Fatalf("%+v %+v", res, nc)
	}
}
