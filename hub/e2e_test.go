package hub_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

func TestSubscribeAndPublish(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	s := th.subscribe(t, q("topic", "https://example.com/a"), nil)
	h := s.resp.Header
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "private, no-cache, no-store, must-revalidate, max-age=0",
		"X-Accel-Buffering": "no",
		"Pragma":            "no-cache",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s: %q, want %q", k, got, want)
		}
	}
	if h.Get("Last-Event-ID") != "" {
		t.Errorf("Last-Event-ID %q on a request without one", h.Get("Last-Event-ID"))
	}
	// The hub closes the connection at the end of the stream, and says
	// so: a client must not pool it (net/http's client takes the header
	// out and sets Close).
	if !s.resp.Close {
		t.Error("the response does not say Connection: close")
	}

	id := th.publish(t, "https://example.com/a", "line 1\nline 2\r\nline 3", "type", "update", "retry", "2500")
	ev := s.expect(t, "line 1\nline 2\nline 3")
	if ev.ID != id || ev.Type != "update" || ev.Retry != 2500*time.Millisecond {
		t.Fatalf("got %+v, want id %s, type update, retry 2.5s", ev, id)
	}
	if !strings.HasPrefix(id, "urn:uuid:") || len(id) != len("urn:uuid:")+36 {
		t.Fatalf("generated id %q is not a urn:uuid", id)
	}
	custom := th.publish(t, "https://example.com/a", "x", "id", "my-id-1")
	if custom != "my-id-1" {
		t.Fatalf("publish returned %q, want the custom id", custom)
	}
	if ev := s.expect(t, "x"); ev.ID != "my-id-1" {
		t.Fatalf("id %q", ev.ID)
	}
}

// The first bytes of a stream are its headers and a comment, so that a
// client knows at once that it is subscribed.
func TestStreamStartsWithComment(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, transfer encoding %v", resp.StatusCode, resp.TransferEncoding)
	}
	first := make([]byte, 2)
	if _, err := resp.Body.Read(first); err != nil || string(first) != ":\n" {
		t.Fatalf("first bytes %q, %v", first, err)
	}
}

func TestPublishFromGo(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	s := th.subscribe(t, q("topic", "a"), nil)
	id, err := th.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "from Go", ID: "go-1"})
	if err != nil || id != "go-1" {
		t.Fatalf("Publish: %q, %v", id, err)
	}
	s.expect(t, "from Go")
	if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "again", ID: "go-1"}); err == nil {
		t.Fatal("a duplicate id was accepted")
	}
	if _, err := th.Publish(context.Background(), hub.Update{Data: "no topic"}); err == nil {
		t.Fatal("an update without a topic was accepted")
	}
}

// The zero Config gives a hub that serves anonymous subscribers and takes
// updates from Go only.
func TestZeroConfig(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config{})
	th := serveHub(t, h, httptest.NewUnstartedServer(h), false)
	s := th.subscribe(t, q("topic", "a"), nil)
	if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "hi"}); err != nil {
		t.Fatal(err)
	}
	s.expect(t, "hi")
	if status, body := th.post(t, url.Values{"topic": {"a"}}, publisherToken(t)); status != http.StatusUnauthorized {
		t.Fatalf("publish over HTTP without a publisher key: %d %s", status, body)
	}
}

func TestTopicSelectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		selectors []string
		topics    []string // of the update
		want      bool
	}{
		{"exact", []string{"https://example.com/a"}, []string{"https://example.com/a"}, true},
		{"exact, another topic", []string{"https://example.com/a"}, []string{"https://example.com/b"}, false},
		{"exact is byte for byte", []string{"https://example.com/A"}, []string{"https://example.com/a"}, false},
		{"wildcard", []string{"*"}, []string{"anything at all"}, true},
		{"template", []string{"https://example.com/books/{id}"}, []string{"https://example.com/books/42"}, true},
		{"template, no match", []string{"https://example.com/books/{id}"}, []string{"https://example.com/authors/42"}, false},
		{"template with a stray brace", []string{"https://example.com/books/{id}"}, []string{"https://example.com/books/42}"}, false},
		{"template, reserved expansion", []string{"https://example.com/{+path}"}, []string{"https://example.com/a/b/c"}, true},
		{"invalid template matches itself", []string{"https://example.com/{"}, []string{"https://example.com/{"}, true},
		{"several selectors", []string{"x", "https://example.com/a"}, []string{"https://example.com/a"}, true},
		{"alternate topic", []string{"https://example.com/alt"}, []string{"https://example.com/canonical", "https://example.com/alt"}, true},
		{"raw string", []string{"raw string"}, []string{"raw string"}, true},
	}
	th := newTestHub(t, hub.Config{})
	for _, tc := range tests {
		// In turn: each subscriber sees only what is published after it
		// subscribed, and the cases share topics.
		t.Run(tc.name, func(t *testing.T) {
			sentinel := "sentinel " + tc.name
			query := url.Values{"topic": append([]string{sentinel}, tc.selectors...)}
			s := th.subscribe(t, query.Encode(), nil)
			form := url.Values{"topic": tc.topics, "data": {"the update"}}
			if status, body := th.post(t, form, publisherToken(t)); status != 200 {
				t.Fatalf("publish: %d %s", status, body)
			}
			// Delivery is in log order: if the sentinel comes first, the
			// update was not delivered.
			th.publish(t, sentinel, "sentinel")
			got := s.next(t).Data
			if received := got == "the update"; received != tc.want {
				t.Fatalf("received the update: %v, want %v (got %q)", received, tc.want, got)
			}
			if tc.want {
				s.expect(t, "sentinel")
			}
		})
	}
}

// An event matching several selectors of one subscriber comes once.
func TestNoDuplicateAcrossSelectors(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	s := th.subscribe(t, q("topic", "a", "topic", "*", "topic", "{x}", "topic", "a"), nil)
	th.publish(t, "a", "once")
	th.publish(t, "b", "then b")
	s.expect(t, "once")
	s.expect(t, "then b")
}

func TestHead(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	req, _ := http.NewRequest(http.MethodHead, th.url+"?topic=a", nil)
	status, _ := do(t, req)
	if status != 200 {
		t.Fatalf("HEAD: %d", status)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	req, _ := http.NewRequest(http.MethodPut, th.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("PUT: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	status, _ := do(t, mustRequest(t, http.MethodGet, th.srv.URL+"/elsewhere"))
	if status != http.StatusNotFound {
		t.Fatalf("GET /elsewhere: %d", status)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
