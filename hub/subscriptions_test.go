package hub_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
)

type subscriptionDoc struct {
	Context     string          `json:"@context"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic"`
	Active      bool            `json:"active"`
	LastEventID string          `json:"lastEventID"`
	Payload     json.RawMessage `json:"payload"`
}

type collectionDoc struct {
	Context       string            `json:"@context"`
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	LastEventID   string            `json:"lastEventID"`
	Subscriptions []subscriptionDoc `json:"subscriptions"`
}

const apiClaim = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"

func TestSubscriptionEvents(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{Subscriptions: true})
	watcher := th.subscribe(t, q("topic", "/.well-known/mercure/subscriptions/{topic}/{subscriber}"),
		bearer(token(t, nil, []string{"/.well-known/mercure/subscriptions/{topic}/{subscriber}"}, time.Time{})))
	// The watcher's own connection comes first.
	var own subscriptionDoc
	if err := json.Unmarshal([]byte(watcher.next(t).Data), &own); err != nil || !own.Active {
		t.Fatalf("the watcher's own event: %+v, %v", own, err)
	}

	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"subscribe": []string{"x"}, "payload": map[string]string{"user": "alice"}},
	}).SignedString(testKey)
	alice := th.subscribe(t, q("topic", "https://example.com/a"), bearer(tok))

	var joined subscriptionDoc
	ev := watcher.next(t)
	if err := json.Unmarshal([]byte(ev.Data), &joined); err != nil {
		t.Fatal(err)
	}
	wantID := "/.well-known/mercure/subscriptions/" + url.QueryEscape("https://example.com/a") + "/" + url.QueryEscape(joined.Subscriber)
	if joined.Context != "https://mercure.rocks/" || joined.Type != "Subscription" || joined.ID != wantID ||
		joined.Topic != "https://example.com/a" || !joined.Active || string(joined.Payload) != `{"user":"alice"}` {
		t.Fatalf("joined: %+v", joined)
	}

	alice.close()
	// The hub notices the close by itself: no write is needed (the
	// heartbeat is 40 s away).
	var left subscriptionDoc
	err := json.Unmarshal([]byte(watcher.next(t).Data), &left)
	if err != nil {
		t.Fatal(err)
	}
	if left.Active || left.Subscriber != joined.Subscriber {
		t.Fatalf("left: %+v", left)
	}

	// Anonymous subscribers may not see them: they are private.
	anon := th.subscribe(t, q("topic", "/.well-known/mercure/subscriptions/{topic}/{subscriber}", "topic", "sentinel"), nil)
	th.subscribe(t, q("topic", "b"), nil)
	th.publish(t, "sentinel", "sentinel")
	anon.expect(t, "sentinel")
}

func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{Subscriptions: true})
	reader := bearer(token(t, nil, []string{apiClaim}, time.Time{}))
	a := th.subscribe(t, q("topic", "https://example.com/a", "topic", "https://example.com/b"), nil)
	th.subscribe(t, q("topic", "https://example.com/b"), nil)
	// The ETag is the last event the dispatcher has handled: once a has
	// an event published after the subscription events, the dispatcher
	// has handled them all, and the ETag stays put between two requests.
	th.publish(t, "https://example.com/b", "settled")
	a.expect(t, "settled")

	get := func(path string, h http.Header) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, th.srv.URL+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body []byte
		body, _ = readBody(resp)
		return resp, body
	}

	resp, body := get("/.well-known/mercure/subscriptions", reader)
	var all collectionDoc
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	if resp.Header.Get("Content-Type") != "application/ld+json" || all.Type != "Subscriptions" ||
		all.ID != "/.well-known/mercure/subscriptions" || all.Context != "https://mercure.rocks/" || len(all.Subscriptions) != 3 {
		t.Fatalf("collection: %s", body)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || all.LastEventID == "" {
		t.Fatalf("no ETag or lastEventID: %q %q", etag, all.LastEventID)
	}
	if resp, _ := get("/.well-known/mercure/subscriptions", header("Authorization", reader.Get("Authorization"), "If-None-Match", etag)); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}

	_, body = get("/.well-known/mercure/subscriptions/"+url.QueryEscape("https://example.com/b"), reader)
	var forB collectionDoc
	if err := json.Unmarshal(body, &forB); err != nil || len(forB.Subscriptions) != 2 {
		t.Fatalf("for b: %s", body)
	}

	var subscriber string
	for _, s := range all.Subscriptions {
		if s.Topic == "https://example.com/a" {
			subscriber = s.Subscriber
		}
	}
	path := "/.well-known/mercure/subscriptions/" + url.QueryEscape("https://example.com/a") + "/" + url.QueryEscape(subscriber)
	resp, body = get(path, reader)
	var one subscriptionDoc
	if err := json.Unmarshal(body, &one); err != nil || resp.StatusCode != 200 || one.Subscriber != subscriber ||
		one.Context == "" || one.LastEventID == "" || !one.Active {
		t.Fatalf("one: %d %s", resp.StatusCode, body)
	}

	for _, c := range []struct {
		name   string
		path   string
		h      http.Header
		status int
	}{
		{"unknown subscriber", "/.well-known/mercure/subscriptions/" + url.QueryEscape("https://example.com/a") + "/urn%3Auuid%3Anope", reader, 404},
		{"no token", "/.well-known/mercure/subscriptions", nil, 401},
		{"a claim that does not cover it", "/.well-known/mercure/subscriptions", bearer(token(t, nil, []string{"https://example.com/a"}, time.Time{})), 403},
		{"too deep", "/.well-known/mercure/subscriptions/a/b/c", bearer(token(t, nil, []string{"*"}, time.Time{})), 404},
	} {
		if resp, body := get(c.path, c.h); resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}

	off := newTestHub(t, hub.Config{})
	req, _ := http.NewRequest(http.MethodGet, off.srv.URL+"/.well-known/mercure/subscriptions", nil)
	req.Header = reader
	if status, _ := do(t, req); status != 404 {
		t.Fatalf("the API on a hub without subscriptions: %d", status)
	}
}

func readBody(resp *http.Response) ([]byte, error) {
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			return b, nil
		}
	}
}
