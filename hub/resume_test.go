package hub_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

func TestResume(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	var ids []string
	for i := range 5 {
		ids = append(ids, th.publish(t, "a", strconv.Itoa(i)))
		th.publish(t, "other", "not for a")
	}
	tests := []struct {
		name       string
		query      string
		header     []string
		wantHeader string // the Last-Event-ID response header
		first      string // the data of the first event replayed
	}{
		{"header", q("topic", "a"), []string{"Last-Event-ID", ids[1]}, ids[1], "2"},
		{"lastEventID", q("topic", "a", "lastEventID", ids[2]), nil, ids[2], "3"},
		{"last_event_id", q("topic", "a", "last_event_id", ids[2]), nil, ids[2], "3"},
		{"Last-Event-ID parameter", q("topic", "a", "Last-Event-ID", ids[2]), nil, ids[2], "3"},
		{"lastEventId (polyfill)", q("topic", "a", "lastEventId", ids[3]), nil, ids[3], "4"},
		{"the header wins", q("topic", "a", "lastEventID", ids[0]), []string{"Last-Event-ID", ids[3]}, ids[3], "4"},
		{"earliest", q("topic", "a", "lastEventID", "earliest"), nil, "earliest", "0"},
		{"unknown id", q("topic", "a", "lastEventID", "no-such-event"), nil, "earliest", "0"},
		{"the last one", q("topic", "a", "lastEventID", ids[4]), nil, ids[4], ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := th.subscribe(t, tc.query, header(tc.header...))
			for _, name := range []string{"Last-Event-ID", "Mercure-Last-Event-ID"} {
				if got := s.resp.Header.Get(name); got != tc.wantHeader {
					t.Fatalf("%s response header %q, want %q", name, got, tc.wantHeader)
				}
			}
			if tc.first == "" {
				return
			}
			n, _ := strconv.Atoi(tc.first)
			for i := n; i < 5; i++ {
				if ev := s.expect(t, strconv.Itoa(i)); ev.ID != ids[i] {
					t.Fatalf("event %d has id %s, want %s", i, ev.ID, ids[i])
				}
			}
		})
	}
}

// An empty history answers earliest, and then delivers live.
func TestResumeEmptyHistory(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	s := th.subscribe(t, q("topic", "a"), header("Last-Event-ID", "x"))
	if got := s.resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Fatalf("Last-Event-ID %q", got)
	}
	th.publish(t, "a", "live")
	s.expect(t, "live")
}

// A history that dropped the event a client resumes from is treated like
// an unknown ID: earliest, and all that is retained.
func TestResumePastRetention(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: 3})})
	var ids []string
	for i := range 6 {
		ids = append(ids, th.publish(t, "a", strconv.Itoa(i)))
	}
	s := th.subscribe(t, q("topic", "a", "lastEventID", ids[0]), nil)
	if got := s.resp.Header.Get("Last-Event-ID"); got != "earliest" {
		t.Fatalf("Last-Event-ID %q", got)
	}
	for i := 3; i < 6; i++ {
		s.expect(t, strconv.Itoa(i))
	}
}

// Clients disconnect at random and resume with the last ID they saw, while
// publishers keep publishing: every client ends up with every event of its
// topics, in order, once.
func TestResumeUnderConcurrentPublishing(t *testing.T) {
	t.Parallel()
	const (
		publishers = 4
		perPub     = 300
		clients    = 12
	)
	th := newTestHub(t, hub.Config{Log: hub.NewMemoryLog(hub.MemoryLogConfig{Size: publishers * perPub * 2})})
	topics := []string{"t/0", "t/1", "t/2"}
	ctx := context.Background()

	// Clients start before the first publish and stop after the last, with
	// reconnections at random in between.
	type result struct {
		client int
		got    []string
	}
	results := make(chan result, clients)
	stop := make(chan struct{})
	var running sync.WaitGroup
	for c := range clients {
		selector := topics[c%len(topics)]
		if c%4 == 3 {
			selector = "t/{n}"
		}
		first := th.subscribe(t, q("topic", selector, "topic", "stop"), nil)
		running.Add(1)
		go func() {
			defer running.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			s, last, got := first, "", []string(nil)
			for {
				ev := s.next(t)
				if ev.Data == "stop" {
					s.close()
					results <- result{c, got}
					return
				}
				got, last = append(got, ev.Data), ev.ID
				if rng.IntN(40) == 0 {
					s.close()
					s = th.subscribe(t, q("topic", selector, "topic", "stop"), header("Last-Event-ID", last))
				}
			}
		}()
	}

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range perPub {
				topic := topics[(p+i)%len(topics)]
				if _, err := th.Publish(ctx, hub.Update{Topics: []string{topic}, Data: fmt.Sprintf("%s|%d|%d", topic, p, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pubs.Wait()
	close(stop)
	if _, err := th.Publish(ctx, hub.Update{Topics: []string{"stop"}, Data: "stop"}); err != nil {
		t.Fatal(err)
	}
	running.Wait()
	close(results)

	// The log's order is the truth every client must agree with.
	evs, err := readAll(th)
	if err != nil {
		t.Fatal(err)
	}
	for r := range results {
		selector := topics[r.client%len(topics)]
		var want []string
		for _, ev := range evs {
			if ev.Topics[0] == "stop" {
				continue
			}
			if r.client%4 == 3 || ev.Topics[0] == selector {
				want = append(want, ev.Data)
			}
		}
		if !slices.Equal(r.got, want) {
			t.Errorf("client %d got %d events, want %d; first difference at %d", r.client, len(r.got), len(want), firstDiff(r.got, want))
		}
	}
}

func readAll(th *testHub) ([]*hub.Event, error) {
	return th.log().Read(context.Background(), 0, 1<<20)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Many subscribers with random selectors and random claims, many updates
// with random topics, some private: each subscriber gets exactly the
// updates that a plain reading of the rules gives it, and never a private
// update its claims do not cover.
func TestPrivateIsolationRandom(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	rng := rand.New(rand.NewPCG(11, 13))
	names := []string{"a", "b", "c", "d", "e"}
	topic := func(n string) string { return "https://example.com/" + n }
	pick := func() []string {
		var out []string
		for _, n := range names {
			if rng.IntN(3) == 0 {
				out = append(out, topic(n))
			}
		}
		switch rng.IntN(6) {
		case 0:
			out = append(out, "*")
		case 1:
			out = append(out, "https://example.com/{x}")
		}
		return out
	}
	matches := func(sels []string, topics []string) bool {
		for _, s := range sels {
			for _, tp := range topics {
				if s == "*" || s == tp || s == "https://example.com/{x}" {
					return true
				}
			}
		}
		return false
	}

	type sub struct {
		sels, claims []string
		anon         bool
		s            *stream
	}
	var subs []*sub
	for range 40 {
		sb := &sub{sels: pick(), claims: pick(), anon: rng.IntN(4) == 0}
		query := url.Values{"topic": append([]string{"end"}, sb.sels...)}
		var h = header()
		if !sb.anon {
			h = bearer(token(t, nil, sb.claims, time.Time{}))
		}
		sb.s = th.subscribe(t, query.Encode(), h)
		subs = append(subs, sb)
	}
	type upd struct {
		topics  []string
		private bool
		data    string
	}
	var upds []upd
	for i := range 300 {
		var ts []string
		for _, n := range names {
			if rng.IntN(4) == 0 {
				ts = append(ts, topic(n))
			}
		}
		if len(ts) == 0 {
			ts = []string{topic(names[rng.IntN(len(names))])}
		}
		u := upd{topics: ts, private: rng.IntN(2) == 0, data: strconv.Itoa(i)}
		upds = append(upds, u)
		if _, err := th.Publish(context.Background(), hub.Update{Topics: ts, Private: u.private, Data: u.data}); err != nil {
			t.Fatal(err)
		}
	}
	th.publish(t, "end", "end")
	for i, sb := range subs {
		var want []string
		for _, u := range upds {
			if matches(sb.sels, u.topics) && (!u.private || (!sb.anon && matches(sb.claims, u.topics))) {
				want = append(want, u.data)
			}
		}
		var got []string
		for {
			ev := sb.s.next(t)
			if ev.Data == "end" {
				break
			}
			got = append(got, ev.Data)
		}
		if !slices.Equal(got, want) {
			t.Errorf("subscriber %d (selectors %v, claims %v, anonymous %v): got %v, want %v", i, sb.sels, sb.claims, sb.anon, got, want)
		}
	}
}
