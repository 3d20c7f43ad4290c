package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
)

// TestIndexPresence runs the presence suite against the hub's default,
// which lists the subscribers of its index.
func TestIndexPresence(t *testing.T) {
	t.Parallel()
	hubtest.RunPresence(t, func(*testing.T) hub.Presence { return hub.NewIndexPresence() })
}

// recordingPresence is a Presence given in Config: it records the calls
// of the hub, and answers Subscriptions with what the test set, as a
// presence shared with other nodes would answer with theirs.
type recordingPresence struct {
	mu      sync.Mutex
	joins   [][]hub.Subscription
	leaves  [][]hub.Subscription
	filters []hub.SubscriptionFilter
	list    []hub.Subscription
	err     error
}

func (p *recordingPresence) Join(subs []hub.Subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.joins = append(p.joins, subs)
}

func (p *recordingPresence) Leave(subs []hub.Subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaves = append(p.leaves, subs)
}

func (p *recordingPresence) Subscriptions(_ context.Context, f hub.SubscriptionFilter) ([]hub.Subscription, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.filters = append(p.filters, f)
	if p.err != nil {
		return nil, p.err
	}
	var subs []hub.Subscription
	for _, s := range p.list {
		if f.Selects(s) {
			subs = append(subs, s)
		}
	}
	return subs, nil
}

func (p *recordingPresence) calls() (joins, leaves [][]hub.Subscription, filters []hub.SubscriptionFilter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.joins), slices.Clone(p.leaves), slices.Clone(p.filters)
}

// TestPresenceAnswersTheAPI checks that the subscriptions API lists what
// the Presence in Config lists, with the filter of its path, and nothing
// of the hub's own index; and that a Presence that fails gives 503.
func TestPresenceAnswersTheAPI(t *testing.T) {
	t.Parallel()
	elsewhere := hub.Subscription{Subscriber: "urn:uuid:on-another-node", Topic: "https://example.com/a", Payload: json.RawMessage(`{"node":"b"}`)}
	p := &recordingPresence{list: []hub.Subscription{
		elsewhere,
		{Subscriber: "urn:uuid:also-elsewhere", Topic: "https://example.com/{x}"},
	}}
	th := newTestHub(t, hub.Config{Subscriptions: true, Presence: p})
	// A subscriber of this hub, which the Presence does not list.
	th.subscribe(t, q("topic", "https://example.com/a"), nil)
	reader := bearer(token(t, nil, []string{apiClaim}, time.Time{}))

	get := func(t *testing.T, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, th.srv.URL+path, nil)
		req.Header = reader
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := readBody(resp)
		return resp, string(body)
	}
	lastFilter := func() hub.SubscriptionFilter {
		_, _, fs := p.calls()
		return fs[len(fs)-1]
	}

	t.Run("all", func(t *testing.T) {
		resp, body := get(t, "/.well-known/mercure/subscriptions")
		var all collectionDoc
		if err := json.Unmarshal([]byte(body), &all); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
		}
		if f := lastFilter(); f != (hub.SubscriptionFilter{}) {
			t.Fatalf("filter %+v", f)
		}
		var got []string
		for _, s := range all.Subscriptions {
			got = append(got, s.Subscriber+" "+s.Topic)
		}
		slices.Sort(got)
		if want := []string{"urn:uuid:also-elsewhere https://example.com/{x}", "urn:uuid:on-another-node https://example.com/a"}; !slices.Equal(got, want) {
			t.Fatalf("listed %q, want %q", got, want)
		}
	})
	t.Run("a topic", func(t *testing.T) {
		_, body := get(t, "/.well-known/mercure/subscriptions/"+url.QueryEscape("https://example.com/a"))
		var forA collectionDoc
		if err := json.Unmarshal([]byte(body), &forA); err != nil || len(forA.Subscriptions) != 1 || forA.Subscriptions[0].Subscriber != elsewhere.Subscriber {
			t.Fatalf("%s: %v", body, err)
		}
		if f := lastFilter(); f != (hub.SubscriptionFilter{Topic: "https://example.com/a"}) {
			t.Fatalf("filter %+v", f)
		}
	})
	t.Run("one", func(t *testing.T) {
		resp, body := get(t, "/.well-known/mercure/subscriptions/"+url.QueryEscape(elsewhere.Topic)+"/"+url.QueryEscape(elsewhere.Subscriber))
		var one subscriptionDoc
		if err := json.Unmarshal([]byte(body), &one); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
		}
		if f := lastFilter(); f != (hub.SubscriptionFilter{Topic: elsewhere.Topic, Subscriber: elsewhere.Subscriber}) {
			t.Fatalf("filter %+v", f)
		}
		want := subscriptionDoc{Context: "https://mercure.rocks/", ID: elsewhere.ID(), Type: "Subscription", Subscriber: elsewhere.Subscriber,
			Topic: elsewhere.Topic, Active: true, LastEventID: one.LastEventID, Payload: one.Payload}
		if one.LastEventID == "" || compact(one.Payload) != `{"node":"b"}` || !sameDoc(one, want) {
			t.Fatalf("one: %s", body)
		}
	})
	t.Run("failing", func(t *testing.T) {
		p.mu.Lock()
		p.err = errors.New("dial tcp 127.0.0.1:6379: connection refused")
		p.mu.Unlock()
		for _, path := range []string{"/.well-known/mercure/subscriptions", "/.well-known/mercure/subscriptions/a/b"} {
			resp, body := get(t, path)
			var e struct{ Error, Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("%s: %d %s: %v", path, resp.StatusCode, body, err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || e.Error != "presence_unavailable" || e.Message == "" ||
				resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("ETag") != "" {
				t.Fatalf("%s: %d %v %s", path, resp.StatusCode, resp.Header, body)
			}
			if strings.Contains(body, "6379") {
				t.Fatalf("%s: the answer tells the cause, which is for the logs: %s", path, body)
			}
		}
		if n := th.Stats().Refused[hub.Refusal{Request: "other", Code: "presence_unavailable"}]; n != 2 {
			t.Fatalf("refusals counted: %d, want 2", n)
		}
	})
}

func sameDoc(a, b subscriptionDoc) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestPresenceJoinLeave checks that the hub tells its Presence of each
// subscriber that connects, before the response's head is sent, and of
// each that leaves, with its subscriptions; and tells it nothing when the
// subscriptions are off.
func TestPresenceJoinLeave(t *testing.T) {
	t.Parallel()
	t.Run("on", func(t *testing.T) {
		t.Parallel()
		p := &recordingPresence{}
		th := newTestHub(t, hub.Config{Subscriptions: true, Presence: p})
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"mercure": map[string]any{"subscribe": []string{"x"}, "payload": map[string]string{"user": "alice"}},
		}).SignedString(testKey)
		if err != nil {
			t.Fatal(err)
		}
		s := th.subscribe(t, q("topic", "https://example.com/b", "topic", "https://example.com/{id}", "topic", "https://example.com/b"), bearer(tok))
		joins, leaves, _ := p.calls()
		if len(joins) != 1 || len(leaves) != 0 {
			t.Fatalf("once subscribed: %d joins, %d leaves", len(joins), len(leaves))
		}
		joined := joins[0]
		var got []string
		for _, sub := range joined {
			got = append(got, sub.Topic+" "+string(sub.Payload))
			if sub.Subscriber != joined[0].Subscriber || !strings.HasPrefix(sub.Subscriber, "urn:uuid:") {
				t.Fatalf("subscribers %+v", joined)
			}
		}
		if want := []string{`https://example.com/b {"user":"alice"}`, `https://example.com/{id} {"user":"alice"}`, `https://example.com/b {"user":"alice"}`}; !slices.Equal(got, want) {
			t.Fatalf("joined %q, want %q", got, want)
		}

		anon := th.subscribe(t, q("topic", "https://example.com/c"), nil)
		joins, _, _ = p.calls()
		if len(joins) != 2 || len(joins[1]) != 1 || joins[1][0].Payload != nil || joins[1][0].Subscriber == joined[0].Subscriber {
			t.Fatalf("joins %+v", joins)
		}

		s.close()
		waitFor(t, "the leave", func() bool { _, leaves, _ := p.calls(); return len(leaves) == 1 })
		_, leaves, _ = p.calls()
		if !slices.EqualFunc(leaves[0], joined, equalSubscription) {
			t.Fatalf("left %+v, joined %+v", leaves[0], joined)
		}
		anon.close()
		waitFor(t, "the second leave", func() bool { _, leaves, _ := p.calls(); return len(leaves) == 2 })
		_, leaves, _ = p.calls()
		if !slices.EqualFunc(leaves[1], joins[1], equalSubscription) {
			t.Fatalf("left %+v, joined %+v", leaves[1], joins[1])
		}
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		p := &recordingPresence{}
		th := newTestHub(t, hub.Config{Presence: p})
		s := th.subscribe(t, q("topic", "https://example.com/b"), nil)
		s.close()
		// The hub would tell the Presence before it counts the close.
		waitFor(t, "the close", func() bool {
			return th.Stats().StreamsClosed["client_closed"]+th.Stats().StreamsClosed["client_gone"] == 1
		})
		if joins, leaves, _ := p.calls(); len(joins) != 0 || len(leaves) != 0 {
			t.Fatalf("subscriptions off: %d joins, %d leaves", len(joins), len(leaves))
		}
	})
}

func equalSubscription(a, b hub.Subscription) bool {
	return a.Subscriber == b.Subscriber && a.Topic == b.Topic && string(a.Payload) == string(b.Payload)
}

func compact(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
