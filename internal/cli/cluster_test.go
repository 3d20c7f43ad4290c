package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/cutproxy"
)

// The cluster tests run herald nodes as processes of their own, sharing the
// Redis at 127.0.0.1:6379, each test in a database of its own (emptied
// first). They fail when Redis cannot be reached: scripts/test.sh starts it.

const clusterRedis = "127.0.0.1:6379"

// redisDB empties database db of the test Redis and returns its URL.
func redisDB(t *testing.T, db int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", clusterRedis, 5*time.Second)
	if err != nil {
		t.Fatalf("Redis at %s, which the cluster tests need (scripts/test.sh starts it): %v", clusterRedis, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "SELECT %d\r\nFLUSHDB\r\n", db)
	r := bufio.NewReader(conn)
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("emptying Redis database %d: %q %v", db, line, err)
		}
	}
	return fmt.Sprintf("redis://%s/%d", clusterRedis, db)
}

// startNode runs a herald node on the Redis at redisURL.
func startNode(t *testing.T, redisURL string) *child {
	t.Helper()
	c := runChild(t, nil, "serve", "-redis", redisURL, "-addr", "127.0.0.1:0", "-data-dir", t.TempDir(),
		"-publisher-jwt-key", crashKey, "-subscriber-jwt-key", crashKey, "-anonymous", "-subscriptions",
		"-ui=false", "-log-level", "error")
	t.Cleanup(c.kill)
	return c
}

func clusterToken(t *testing.T, claim string, targets ...string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{claim: targets},
	}).SignedString([]byte(crashKey))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clusterPub is one event the cluster tests publish.
type clusterPub struct {
	id      string
	topics  []string
	private bool
}

// publishOn publishes p on the node at base and fails the test unless the
// node acknowledges it.
func publishOn(t *testing.T, base, tok string, p clusterPub) {
	t.Helper()
	form := url.Values{"topic": p.topics, "data": {p.id}, "id": {p.id}}
	if p.private {
		form.Set("private", "on")
	}
	if status, body := publish(t, base, tok, form); status != http.StatusOK || body != p.id {
		t.Fatalf("publishing %s on %s: %d %s", p.id, base, status, body)
	}
}

// clusterSub is a subscriber of a cluster test: what it asked for, and
// what it received.
type clusterSub struct {
	topics     []string // topic selectors
	authorized bool     // its token lets it receive private updates
	base       string   // the node it is connected to
	got        []string // the IDs of the events received, in order
	stream     *client.Stream
	connected  chan struct{}
	// gone, if set, says that a node is gone for good: a subscriber
	// dropped by it stops reconnecting there.
	gone func(base string) bool
}

// wants reports whether s must receive p: a topic of p matches one of s's
// selectors (an exact topic, or a URI template of the form .../{x}), and p
// is public or s may receive it.
func (s *clusterSub) wants(p clusterPub) bool {
	if p.private && !s.authorized {
		return false
	}
	for _, sel := range s.topics {
		for _, topic := range p.topics {
			if sel == topic || (strings.HasSuffix(sel, "/{id}") && strings.HasPrefix(topic, strings.TrimSuffix(sel, "{id}"))) {
				return true
			}
		}
	}
	return false
}

// connect opens s's stream on base, resuming after lastEventID if set,
// and returns once the node has answered.
func (s *clusterSub) connect(t *testing.T, ctx context.Context, base, lastEventID string) {
	t.Helper()
	q := url.Values{"topic": s.topics}
	if s.authorized {
		q.Set("authorization", clusterToken(t, "subscribe", "*"))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+hub.Path+"?"+q.Encode(), nil)
	s.base, s.connected = base, make(chan struct{})
	var once sync.Once
	s.stream = (&client.Client{Retry: 50 * time.Millisecond}).Connect(ctx, req, client.Options{
		LastEventID: lastEventID,
		OnConnect:   func(*http.Response) { once.Do(func() { close(s.connected) }) },
	})
}

// readUntil reads s's stream until the event with the ID last, or the
// stream's end, or a drop by a node that is gone: on an error, it returns
// it with what it read so far.
func (s *clusterSub) readUntil(last string) error {
	for {
		ev, err := s.stream.Next()
		if err != nil {
			var drop *client.DropError
			if errors.As(err, &drop) && (s.gone == nil || !s.gone(s.base)) {
				continue
			}
			return err
		}
		s.got = append(s.got, ev.Data)
		if ev.ID == last {
			return nil
		}
	}
}

// Three nodes on one Redis: random publications on random nodes, and
// subscribers spread over the nodes with random topics and selectors,
// private updates among them. Every subscriber gets exactly the events it
// should, once each, in the order they were published.
func TestClusterDelivery(t *testing.T) {
	t.Parallel()
	redisURL := redisDB(t, 12)
	nodes := []*child{startNode(t, redisURL), startNode(t, redisURL), startNode(t, redisURL)}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	const base = "https://example.com/books/"
	topic := func() string { return fmt.Sprint(base, rng.IntN(6)) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	subs := make([]*clusterSub, 30)
	for i := range subs {
		s := &clusterSub{authorized: rng.IntN(3) == 0, topics: []string{base + "end"}}
		switch rng.IntN(3) {
		case 0:
			s.topics = append(s.topics, base+"{id}")
		case 1:
			s.topics = append(s.topics, topic())
		default:
			s.topics = append(s.topics, topic(), topic())
		}
		s.connect(t, ctx, nodes[i%len(nodes)].base, "")
		subs[i] = s
	}
	// A subscriber's stream is read by its own goroutine, which also
	// makes the connection.
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.readUntil("end") }()
	}
	waitConnected(t, ctx, subs)

	// Every node's subscriptions API lists every node's subscribers
	// (within the time presence takes to reach Redis).
	apiTok := clusterToken(t, "subscribe", "/.well-known/mercure/subscriptions{/topic}{/subscriber}")
	for _, n := range nodes {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			listed := listSubscribers(t, n.base, apiTok)
			if len(listed) == len(subs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %d subscribers, not the %d of the cluster", n.base, len(listed), len(subs))
			}
		}
	}

	tok := clusterToken(t, "publish", "*")
	var pubs []clusterPub
	for i := range 300 {
		p := clusterPub{id: fmt.Sprintf("e%03d", i), topics: []string{topic()}, private: rng.IntN(4) == 0}
		if rng.IntN(4) == 0 {
			p.topics = append(p.topics, topic())
		}
		publishOn(t, nodes[rng.IntN(len(nodes))].base, tok, p)
		pubs = append(pubs, p)
	}
	end := clusterPub{id: "end", topics: []string{base + "end"}}
	publishOn(t, nodes[rng.IntN(len(nodes))].base, tok, end)
	pubs = append(pubs, end)
	wg.Wait()

	// A topic ended on one node is ended on every node: a subscriber to it
	// on another node gets the last event, then 204 on reconnecting, and
	// so does a new subscription on any node.
	closed := &clusterSub{topics: []string{base + "closed"}}
	closed.connect(t, ctx, nodes[2].base, "")
	closedErr := make(chan error, 1)
	go func() {
		if err := closed.readUntil("closed-end"); err != nil {
			closedErr <- err
			return
		}
		for {
			_, err := closed.stream.Next()
			var drop *client.DropError
			if !errors.As(err, &drop) {
				closedErr <- err
				return
			}
		}
	}()
	waitConnected(t, ctx, []*clusterSub{closed})
	if status, body := publish(t, nodes[0].base, tok, url.Values{"topic": {base + "closed"}, "id": {"closed-end"}, "data": {"closed-end"}, "end": {"on"}}); status != http.StatusOK {
		t.Fatalf("ending a topic: %d %s", status, body)
	}
	if err := <-closedErr; !errors.Is(err, client.ErrNoContent) {
		t.Fatalf("a subscriber on another node to a topic ended on node 0: %v after %v", err, closed.got)
	}
	for _, n := range nodes {
		resp, err := http.Get(n.base + hub.Path + "?topic=" + url.QueryEscape(base+"closed"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("a subscription on %s to a topic ended on node 0: %d", n.base, resp.StatusCode)
		}
	}

	for i, s := range subs {
		var want []string
		for _, p := range pubs {
			if s.wants(p) {
				want = append(want, p.id)
			}
		}
		if errs[i] != nil || !slices.Equal(s.got, want) {
			t.Errorf("subscriber %d on %s (%v, authorized %v): %v\n got %v\nwant %v", i, s.base, s.topics, s.authorized, errs[i], s.got, want)
		}
	}
}

// A node killed with SIGKILL mid-stream: its subscribers resume on the
// other nodes with Last-Event-ID and miss nothing, get nothing twice; every
// publication a node acknowledged, the killed one's included, reaches
// every subscriber, in each publisher's order.
func TestClusterKillNode(t *testing.T) {
	t.Parallel()
	redisURL := redisDB(t, 13)
	nodes := []*child{startNode(t, redisURL), startNode(t, redisURL), startNode(t, redisURL)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "https://example.com/trips/1"
	tok := clusterToken(t, "publish", "*")

	// Twelve subscribers, eight of them on the node to be killed.
	var killed atomic.Bool
	gone := func(base string) bool { return killed.Load() && base == nodes[0].base }
	subs := make([]*clusterSub, 12)
	for i := range subs {
		subs[i] = &clusterSub{topics: []string{topic}, gone: gone}
		subs[i].connect(t, ctx, nodes[min(i%3, i%2)*2].base, "") // nodes 0 and 2, mostly 0
	}
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := s.readUntil("end")
				var drop *client.DropError
				if err == nil || !errors.As(err, &drop) {
					errs[i] = err
					return
				}
				// The node is gone: resume on another.
				last := s.stream.LastEventID()
				s.stream.Close()
				s.connect(t, ctx, nodes[1+i%2].base, last)
			}
		}()
	}
	waitConnected(t, ctx, subs)

	// Publisher a on node 0, until it dies; publisher b on nodes 1 and 2,
	// all the while.
	var acked, unknown []string // publisher a's
	var pubA sync.WaitGroup
	pubA.Add(1)
	go func() {
		defer pubA.Done()
		hc := &http.Client{Timeout: 10 * time.Second}
		for i := 0; ; i++ {
			id := fmt.Sprintf("a%04d", i)
			form := url.Values{"topic": {topic}, "data": {id}, "id": {id}}
			req, _ := http.NewRequest(http.MethodPost, nodes[0].base+hub.Path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err != nil {
				unknown = append(unknown, id)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != id {
				unknown = append(unknown, id)
				return
			}
			acked = append(acked, id)
		}
	}()
	var b []string
	for i := range 400 {
		if i == 150 {
			killed.Store(true)
			nodes[0].kill()
		}
		id := fmt.Sprintf("b%04d", i)
		publishOn(t, nodes[1+i%2].base, tok, clusterPub{id: id, topics: []string{topic}})
		b = append(b, id)
	}
	pubA.Wait()
	publishOn(t, nodes[1].base, tok, clusterPub{id: "end", topics: []string{topic}})
	wg.Wait()

	if len(acked) == 0 {
		t.Fatal("node 0 acknowledged no publication before it was killed")
	}
	for i, s := range subs {
		if errs[i] != nil {
			t.Errorf("subscriber %d: %v", i, errs[i])
			continue
		}
		var gotA, gotB []string
		seen := map[string]bool{}
		for _, id := range s.got {
			if seen[id] {
				t.Errorf("subscriber %d got %s twice", i, id)
			}
			seen[id] = true
			switch id[0] {
			case 'a':
				gotA = append(gotA, id)
			case 'b':
				gotB = append(gotB, id)
			}
		}
		if !slices.Equal(gotB, b) {
			t.Errorf("subscriber %d: publisher b's events\n got %v\nwant %v", i, gotB, b)
		}
		// Publisher a's acknowledged events, in order, then perhaps the
		// one whose answer the kill cut off.
		if len(gotA) < len(acked) || !slices.Equal(gotA[:len(acked)], acked) ||
			len(gotA) > len(acked)+len(unknown) || !slices.Equal(gotA[len(acked):], unknown[:len(gotA)-len(acked)]) {
			t.Errorf("subscriber %d: publisher a's events\n got %v\nacknowledged %v, unknown %v", i, gotA, acked, unknown)
		}
	}
}

// privateRedis is a redis-server of a test's own, which it can restart.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

// startPrivateRedis starts a redis-server that keeps nothing on disk, on a
// free loopback port, and stops it at the end of the test.
func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	r := &privateRedis{t: t, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if err := r.start(); err == nil {
			break
		} else if attempt == 4 {
			t.Fatalf("redis-server, which the cluster tests need (scripts/test.sh installs it): %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// start runs redis-server on r.port and waits until it answers.
func (r *privateRedis) start() error {
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "log"))
	if err := r.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(r.dir, "log"))
			return fmt.Errorf("redis-server exited: %v\n%s", err, log)
		default:
		}
		if conn, err := net.Dial("tcp", r.addr()); err == nil {
			fmt.Fprint(conn, "PING\r\n")
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				go func() { <-exited }() // reaped; stop waits on the process itself
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = r.cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer within 20 s", r.port)
}

// stop kills redis-server: what it held is lost.
func (r *privateRedis) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if conn, err := net.Dial("tcp", r.addr()); err != nil {
				return
			} else {
				conn.Close()
			}
		}
	}
}

// restart kills redis-server and starts it again on the same port, empty.
func (r *privateRedis) restart() {
	r.t.Helper()
	r.stop()
	if err := r.start(); err != nil {
		r.t.Fatal(err)
	}
}

// Redis cut away mid-stream, then back; then restarted, empty. During the
// cut publications fail at once with 503 (never a false 200), /readyz says
// so, and subscribers stay connected; once Redis is back every node takes
// publications again and delivers them with no gap. After the restart the
// nodes notice the new epoch and go on. No acknowledged event is lost or
// repeated.
func TestClusterRedisOutage(t *testing.T) {
	t.Parallel()
	redis := startPrivateRedis(t)
	proxy := cutproxy.Start(t, redis.addr())
	redisURL := "redis://" + proxy.Addr() + "/0"
	nodes := []*child{startNode(t, redisURL), startNode(t, redisURL)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "https://example.com/outage"
	tok := clusterToken(t, "publish", "*")

	var drops atomic.Int64
	subs := make([]*clusterSub, 6)
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i := range subs {
		s := &clusterSub{topics: []string{topic}, gone: func(string) bool { drops.Add(1); return false }}
		s.connect(t, ctx, nodes[i%2].base, "")
		subs[i] = s
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.readUntil("end") }()
	}
	waitConnected(t, ctx, subs)
	var acked []string
	pub := func(i int, id string) {
		publishOn(t, nodes[i%2].base, tok, clusterPub{id: id, topics: []string{topic}})
		acked = append(acked, id)
	}
	ready := func(n *child) int {
		resp, err := http.Get(n.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitReady := func() {
		for _, n := range nodes {
			for ready(n) != http.StatusOK {
				if ctx.Err() != nil {
					t.Fatalf("%s is not ready again", n.base)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	for i := range 30 {
		pub(i, fmt.Sprintf("before-%02d", i))
	}

	proxy.Cut()
	for i, n := range nodes {
		for k := range 3 {
			id := fmt.Sprintf("refused-%d-%d", i, k)
			status, body := publish(t, n.base, tok, url.Values{"topic": {topic}, "data": {id}, "id": {id}})
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "history") {
				t.Fatalf("a publication while Redis is cut away: %d %s", status, body)
			}
		}
		if status := ready(n); status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz while Redis is cut away: %d", status)
		}
	}
	proxy.Mend()
	waitReady()
	for i := range 30 {
		pub(i, fmt.Sprintf("after-%02d", i))
	}

	redis.restart()
	// The first publication on each node after the restart may find the
	// loss and be refused; the nodes then take them again.
	for i := range 30 {
		id := fmt.Sprintf("restarted-%02d", i)
		for {
			status, body := publish(t, nodes[i%2].base, tok, url.Values{"topic": {topic}, "data": {id}, "id": {id}})
			if status == http.StatusOK && body == id {
				acked = append(acked, id)
				break
			}
			if status != http.StatusServiceUnavailable || ctx.Err() != nil {
				t.Fatalf("a publication after Redis restarted: %d %s", status, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publishOn(t, nodes[0].base, tok, clusterPub{id: "end", topics: []string{topic}})
	acked = append(acked, "end")
	wg.Wait()

	for i, s := range subs {
		if errs[i] != nil || !slices.Equal(s.got, acked) {
			t.Errorf("subscriber %d on %s: %v\n got %v\nwant %v", i, s.base, errs[i], s.got, acked)
		}
	}
	if n := drops.Load(); n != 0 {
		t.Errorf("subscribers were dropped %d times; they should stay connected through the outage", n)
	}
}

// listSubscribers returns the subscribers that the subscriptions API of
// the node at base lists, each once.
func listSubscribers(t *testing.T, base, tok string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+hub.Path+"/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Subscriptions []struct {
			Subscriber string `json:"subscriber"`
		} `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the subscriptions API of %s: %d %v", base, resp.StatusCode, err)
	}
	out := map[string]bool{}
	for _, s := range doc.Subscriptions {
		out[s.Subscriber] = true
	}
	return out
}

// waitConnected waits until every subscriber has had its first answer.
func waitConnected(t *testing.T, ctx context.Context, subs []*clusterSub) {
	t.Helper()
	for _, s := range subs {
		select {
		case <-s.connected:
		case <-ctx.Done():
			t.Fatal("a subscriber did not connect")
		}
	}
}
