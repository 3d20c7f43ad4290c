package redisstore_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/internal/cutproxy"
	"github.com/herald-sse/herald/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// redisURL is the Redis server the tests use; scripts/test.sh starts it.
// The tests fail, not skip, when it is not there.
const redisURL = "redis://127.0.0.1:6379/0"

// prefix returns a key prefix of the test's own, and deletes its keys
// when the test ends.
func prefix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "herald-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { drop(t, p) })
	return p
}

// drop deletes every key of the history with prefix p, epoch and all: what
// a Redis restart without persistence does to it.
func drop(t *testing.T, p string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	k := "{" + p + "}:"
	if err := c.Del(context.Background(), k+"epoch", k+"last", k+"first", k+"log", k+"ids").Err(); err != nil {
		t.Errorf("deleting the keys of %s: %v", p, err)
	}
}

func open(t *testing.T, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = redisURL
	}
	if cfg.Prefix == "" {
		cfg.Prefix = prefix(t)
	}
	s, err := redisstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	t.Parallel()
	hubtest.Run(t, hubtest.Suite{
		New: func(t *testing.T, o hubtest.Options) hub.Log {
			return open(t, redisstore.Config{Size: o.Size, MaxAge: o.MaxAge})
		},
		Fault: func(t *testing.T) (hub.Log, func(), func()) {
			px := newProxy(t, "127.0.0.1:6379")
			return open(t, redisstore.Config{URL: px.URL()}), px.Cut, px.Mend
		},
		Lose: func(t *testing.T) (hub.Log, func()) {
			p := prefix(t)
			return open(t, redisstore.Config{Prefix: p}), func() { drop(t, p) }
		},
	})
}

func ev(id string) *hub.Event {
	return &hub.Event{Update: hub.Update{ID: id, Topics: []string{"t"}, Data: "data of " + id}}
}

func appendIDs(t *testing.T, l hub.Log, ids ...string) []*hub.Event {
	t.Helper()
	evs := make([]*hub.Event, len(ids))
	for i, id := range ids {
		evs[i] = ev(id)
	}
	if err := l.Append(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitFor waits until cond holds; a store that never gets there fails by
// the test's timeout.
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(5 * time.Millisecond)
	}
}

func readAll(t *testing.T, l hub.Log) []*hub.Event {
	t.Helper()
	first, next, err := l.Bounds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*hub.Event
	for from := first; from < next; {
		evs, err := l.Read(t.Context(), from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		out = append(out, evs...)
		from = evs[len(evs)-1].Pos + 1
	}
	return out
}

func idsOf(evs []*hub.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// Two stores on one prefix are two nodes of a cluster: what one appends
// the other reads, in the same order and with the same IDs, and looks up;
// an ID appended on one is a duplicate on the other.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	a := open(t, redisstore.Config{Prefix: p})
	b := open(t, redisstore.Config{Prefix: p})
	var want []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n, s := range []*redisstore.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				id := fmt.Sprintf("n%d-%d", n, i)
				if err := s.Append(context.Background(), ev(id)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want = append(want, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range []*redisstore.Store{a, b} {
		waitFor(func() bool { _, next, _ := s.Bounds(t.Context()); return next == 601 })
	}
	onA, onB := readAll(t, a), readAll(t, b)
	if len(onA) != 600 || !slices.Equal(idsOf(onA), idsOf(onB)) {
		t.Fatalf("node A read %d events, node B %d, or in another order", len(onA), len(onB))
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(idsOf(onA)))
	if !slices.Equal(got, want) {
		t.Fatal("the nodes read other events than were appended")
	}
	for i := range onA {
		if onA[i].Pos != onB[i].Pos || !onA[i].Time.Equal(onB[i].Time) || onA[i].Data != onB[i].Data {
			t.Fatalf("event %s: position %d and time %v on A, %d and %v on B", onA[i].ID, onA[i].Pos, onA[i].Time, onB[i].Pos, onB[i].Time)
		}
	}
	for _, e := range onA[:5] {
		pos, ok, err := b.Lookup(t.Context(), e.ID)
		if err != nil || !ok || pos != e.Pos {
			t.Fatalf("Lookup(%s) on B: %d %v %v, want %d", e.ID, pos, ok, err, e.Pos)
		}
	}
	if err := b.Append(t.Context(), ev("n0-7")); !errors.Is(err, hub.ErrDuplicateID) {
		t.Fatalf("appending on B an ID appended on A: %v", err)
	}
	// A reader waiting on B is woken by an append on A.
	woken := make(chan error, 1)
	go func() { woken <- b.Wait(context.Background(), 601) }()
	appendIDs(t, a, "late")
	if err := <-woken; err != nil {
		t.Fatal(err)
	}
	if evs, err := b.Read(t.Context(), 601, 10); err != nil || len(evs) != 1 || evs[0].ID != "late" {
		t.Fatalf("B read %v, %v after the append on A", idsOf(evs), err)
	}
}

// A node that starts on a history reads its old events from Redis (they
// are not in its memory), and the node that appended them reads the same.
func TestOldEventsFromRedis(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	a := open(t, redisstore.Config{Prefix: p})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprint("e", i)
	}
	appendIDs(t, a, ids...)
	b := open(t, redisstore.Config{Prefix: p})
	evs, err := b.Read(t.Context(), 1, 1000)
	if err != nil || !slices.Equal(idsOf(evs), ids) {
		t.Fatalf("B read %d events, %v", len(evs), err)
	}
	for i, e := range evs {
		if e.Pos != uint64(i+1) {
			t.Fatalf("event %s at position %d", e.ID, e.Pos)
		}
	}
}

// When Redis loses the history, every node notices: positions go on
// rising, Bounds' first jumps past the lost events, new appends (from
// either node) are read back, a waiting reader is woken, and a lost ID is
// not found.
func TestLostHistoryTwoNodes(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	a := open(t, redisstore.Config{Prefix: p})
	b := open(t, redisstore.Config{Prefix: p})
	appendIDs(t, a, "a1", "a2", "a3")
	waitFor(func() bool { _, next, _ := b.Bounds(t.Context()); return next == 4 })
	woken := make(chan error, 1)
	go func() { woken <- b.Wait(context.Background(), 4) }()
	drop(t, p)
	if _, ok, err := b.Lookup(t.Context(), "a1"); ok || err != nil {
		t.Fatalf("Lookup of a lost ID: %v %v", ok, err)
	}
	var c *hub.Event
	for {
		c = ev("c")
		err := a.Append(t.Context(), c)
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	if c.Pos < 4 {
		t.Fatalf("after the loss an event got position %d", c.Pos)
	}
	if err := <-woken; err != nil {
		t.Fatal(err)
	}
	waitFor(func() bool {
		evs, _ := b.Read(t.Context(), 1, 10)
		return len(evs) == 1 && evs[0].ID == "c"
	})
	first, _, _ := b.Bounds(t.Context())
	if first < 4 {
		t.Fatalf("B's first position %d after the loss", first)
	}
	d := ev("d")
	if err := b.Append(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	waitFor(func() bool {
		evs, _ := a.Read(t.Context(), c.Pos, 10)
		return slices.Equal(idsOf(evs), []string{"c", "d"})
	})
	if pos, ok, err := a.Lookup(t.Context(), "d"); err != nil || !ok || pos != c.Pos+1 {
		t.Fatalf("Lookup(d) on A: %d %v %v, want %d", pos, ok, err, c.Pos+1)
	}
	if _, ok, _ := a.Lookup(t.Context(), "a2"); ok {
		t.Fatal("a lost ID is found")
	}
}

// newProxy puts a proxy that the test can cut between a store and Redis.
func newProxy(t *testing.T, target string) proxy {
	return proxy{cutproxy.Start(t, target)}
}

type proxy struct{ *cutproxy.Proxy }

// URL is Redis's URL through the proxy.
func (p proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// When Redis cannot be reached, appends fail with ErrUnavailable (never a
// false success), Healthy says so, and recent reads go on; once it can,
// appends work again, and the node reads with no gap the events another
// node appended meanwhile.
func TestOutage(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	px := newProxy(t, "127.0.0.1:6379")
	cut := open(t, redisstore.Config{URL: px.URL(), Prefix: p})
	other := open(t, redisstore.Config{Prefix: p})
	appendIDs(t, cut, "a1", "a2")
	px.Cut()
	err := cut.Append(t.Context(), ev("b1"))
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an append while Redis is cut away: %v", err)
	}
	if err := cut.Healthy(); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("Healthy while Redis is cut away: %v", err)
	}
	if evs, err := cut.Read(t.Context(), 1, 10); err != nil || !slices.Equal(idsOf(evs), []string{"a1", "a2"}) {
		t.Fatalf("a recent read while Redis is cut away: %v %v", idsOf(evs), err)
	}
	// Meanwhile the other node appends.
	var more []string
	for i := range 50 {
		more = append(more, fmt.Sprint("o", i))
	}
	appendIDs(t, other, more...)
	px.Mend()
	waitFor(func() bool { return cut.Healthy() == nil })
	for {
		err := cut.Append(t.Context(), ev("c1"))
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	got := idsOf(readAll(t, cut))
	want := append(append([]string{"a1", "a2"}, more...), "c1")
	// b1's outcome is unknown: it may be there, after a2.
	if !slices.Equal(got, want) && !slices.Equal(got, slices.Insert(slices.Clone(want), 2, "b1")) {
		t.Fatalf("after the outage the node reads %v", got)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, url string }{
		{"scheme", "http://127.0.0.1:6379"},
		{"unreachable", "redis://127.0.0.1:1/0?dial_timeout=100ms"},
		{"option", "redis://127.0.0.1:6379/0?no_such_option=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if s, err := redisstore.Open(t.Context(), redisstore.Config{URL: c.url, Prefix: prefix(t)}); err == nil {
				_ = s.Close()
				t.Fatalf("Open(%s) worked", c.url)
			}
		})
	}
}

// Where names the server and the prefix, never the password.
func TestWhere(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	s := open(t, redisstore.Config{Prefix: p})
	if want := "redis://127.0.0.1:6379/0, prefix " + p; s.Where() != want {
		t.Fatalf("Where() = %q, want %q", s.Where(), want)
	}
	if r := redisstore.Redact("rediss://user:secret@example.com:6380/2"); strings.Contains(r, "secret") || !strings.Contains(r, "example.com:6380/2") {
		t.Fatalf("Redact gave %q", r)
	}
}

// A read older than the window that Redis cannot serve fails when the
// window holds nothing after it (an empty answer would read as the end of
// the log), and otherwise hands over what the window holds, a gap the hub
// reports, rather than an error that would stop its delivery.
func TestOldReadDuringOutage(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	a := open(t, redisstore.Config{Prefix: p})
	appendIDs(t, a, "a1", "a2", "a3")
	px := newProxy(t, "127.0.0.1:6379")
	b := open(t, redisstore.Config{URL: px.URL(), Prefix: p})
	px.Cut()
	if evs, err := b.Read(t.Context(), 1, 10); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("an old read with Redis cut away and nothing in memory: %v, %v", idsOf(evs), err)
	}
	px.Mend()
	for {
		err := b.Append(t.Context(), ev("b1"))
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	px.Cut()
	if evs, err := b.Read(t.Context(), 1, 10); err != nil || !slices.Equal(idsOf(evs), []string{"b1"}) {
		t.Fatalf("an old read with Redis cut away: %v, %v; want what memory holds", idsOf(evs), err)
	}
	px.Mend()
	waitFor(func() bool {
		evs, err := b.Read(t.Context(), 1, 10)
		return err == nil && slices.Equal(idsOf(evs), []string{"a1", "a2", "a3", "b1"})
	})
}

// Events past their age are dropped while no one appends too.
func TestAgeWhileIdle(t *testing.T) {
	t.Parallel()
	s := open(t, redisstore.Config{MaxAge: 500 * time.Millisecond})
	appendIDs(t, s, "a", "b", "c")
	waitFor(func() bool { first, next, _ := s.Bounds(t.Context()); return first == next && next == 4 })
	if _, ok, _ := s.Lookup(t.Context(), "a"); ok {
		t.Fatal("an expired event can still be found")
	}
}

// A hub on a node that loses Redis refuses publications and is not ready,
// keeps its subscribers, and once Redis is back delivers to them, in order
// and with no gap, what other nodes published meanwhile, and takes
// publications again: the outage does not break its delivery for good.
func TestHubThroughOutage(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	px := newProxy(t, "127.0.0.1:6379")
	cut := open(t, redisstore.Config{URL: px.URL(), Prefix: p})
	other := open(t, redisstore.Config{Prefix: p})
	h, err := hub.New(hub.Config{Log: cut, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { _ = h.Close(); srv.Close() })
	resp, err := http.Get(srv.URL + hub.Path + "?topic=t")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				got <- id
			}
		}
		close(got)
	}()
	expect := func(ids ...string) {
		t.Helper()
		for _, want := range ids {
			if id, ok := <-got; !ok || id != want {
				t.Fatalf("the subscriber got %q (stream open: %v), want %q", id, ok, want)
			}
		}
	}
	publish := func(id string) error {
		_, err := h.Publish(t.Context(), hub.Update{ID: id, Topics: []string{"t"}, Data: id})
		return err
	}
	if err := publish("before"); err != nil {
		t.Fatal(err)
	}
	expect("before")
	px.Cut()
	if err := publish("refused"); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("a publication while Redis is cut away: %v", err)
	}
	if err := h.Ready(t.Context()); err == nil {
		t.Fatal("the hub is ready while Redis is cut away")
	}
	appendIDs(t, other, "o1", "o2", "o3")
	px.Mend()
	expect("o1", "o2", "o3")
	for {
		err := publish("after")
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	expect("after")
	waitFor(func() bool { return h.Ready(t.Context()) == nil })
}

// Appends that arrive together share a script run, each batch all or
// nothing: of the batches that hold the same ID, one is appended and the
// others refused as duplicates, whichever run they fall in.
func TestConcurrentAppendsWithDuplicates(t *testing.T) {
	t.Parallel()
	s := open(t, redisstore.Config{})
	const batches, shared = 64, 4
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Append(t.Context(), ev(fmt.Sprint("own-", i)), ev(fmt.Sprint("shared-", i%shared)))
		}()
	}
	wg.Wait()
	won := map[int]int{}
	for i, err := range errs {
		switch {
		case err == nil:
			won[i%shared]++
		case !errors.Is(err, hub.ErrDuplicateID):
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	for k := range shared {
		if won[k] != 1 {
			t.Fatalf("shared-%d was appended by %d batches", k, won[k])
		}
	}
	evs := readAll(t, s)
	if len(evs) != 2*shared {
		t.Fatalf("%d events: %v", len(evs), idsOf(evs))
	}
	for i, e := range evs {
		if e.Pos != evs[0].Pos+uint64(i) {
			t.Fatalf("positions not dense: %v", evs)
		}
	}
}
