package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// testKey signs the tokens of the tests (HS256).
var testKey = []byte("a key for the tests of herald's hub, long enough")

// wait bounds how long a test waits for something that should happen.
const wait = 10 * time.Second

type testHub struct {
	*hub.Hub
	srv *httptest.Server
	url string  // the hub's URL
	lg  hub.Log // the hub's log
}

func (th *testHub) log() hub.Log { return th.lg }

// newTestHub starts a hub behind a real HTTP server on loopback. Unless cfg
// says otherwise, publishers and subscribers use testKey and anonymous
// subscribers are allowed.
func newTestHub(t testing.TB, cfg hub.Config) *testHub {
	t.Helper()
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublisherKey == nil {
		cfg.PublisherKey = key
	}
	if cfg.SubscriberKey == nil {
		cfg.SubscriberKey = key
		cfg.Anonymous = true
	}
	if cfg.Log == nil {
		cfg.Log = hub.NewMemoryLog(hub.MemoryLogConfig{})
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cfg.Log.Close() })
	th := serveHub(t, h, httptest.NewUnstartedServer(h), false)
	th.lg = cfg.Log
	return th
}

// serveHub starts srv, which serves h, over TLS with HTTP/2 when asked,
// and stops both at the end of the test.
func serveHub(t testing.TB, h *hub.Hub, srv *httptest.Server, http2 bool) *testHub {
	t.Helper()
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})
	return &testHub{Hub: h, srv: srv, url: srv.URL + hub.Path}
}

// newHub returns a hub with cfg, failing the test if it cannot.
func newHub(t testing.TB, cfg hub.Config) *hub.Hub {
	t.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// token returns a token signed with testKey holding the given Mercure claims
// and, when exp is not zero, that expiry.
func token(t testing.TB, publish, subscribe []string, exp time.Time) string {
	t.Helper()
	c := jwt.MapClaims{"mercure": map[string]any{"publish": publish, "subscribe": subscribe}}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publisherToken may publish to every topic.
func publisherToken(t testing.TB) string { return token(t, []string{"*"}, nil, time.Time{}) }

// post publishes form over HTTP with the token (none when empty) and
// returns the status and the body.
func (th *testHub) post(t testing.TB, form url.Values, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, th.url, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// publish publishes over HTTP and fails the test unless the hub says 200;
// it returns the event's ID.
func (th *testHub) publish(t testing.TB, topic, data string, extra ...string) string {
	t.Helper()
	form := url.Values{"topic": {topic}, "data": {data}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Add(extra[i], extra[i+1])
	}
	status, body := th.post(t, form, publisherToken(t))
	if status != http.StatusOK {
		t.Fatalf("publish %v: %d %s", form, status, body)
	}
	return body
}

// stream is an open subscription, read by the sse package's decoder.
type stream struct {
	resp   *http.Response
	events chan sse.Event
	done   chan struct{} // closed when the stream ends
	err    error         // why it ended, once done is closed
	cancel context.CancelFunc
	mu     sync.Mutex
	lastID string
}

// subscribe opens a subscription with the query (topic=… and the rest) and
// the headers given, and fails the test unless the hub answers 200.
func (th *testHub) subscribe(t testing.TB, query string, header http.Header) *stream {
	t.Helper()
	s, status := th.open(t, query, header)
	if status != http.StatusOK {
		t.Fatalf("subscribe %q: status %d", query, status)
	}
	return s
}

// open opens a subscription and returns it with the status; the stream is
// nil unless the status is 200.
func (th *testHub) open(t testing.TB, query string, header http.Header) (*stream, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, th.url+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := th.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	s := &stream{resp: resp, events: make(chan sse.Event, 100_000), done: make(chan struct{}), cancel: cancel}
	go s.read()
	t.Cleanup(s.close)
	return s, resp.StatusCode
}

func (s *stream) read() {
	defer close(s.done)
	d := sse.NewDecoder(s.resp.Body)
	for ev, err := range d.Events() {
		if err != nil {
			s.err = err
			return
		}
		s.mu.Lock()
		s.lastID = ev.ID
		s.mu.Unlock()
		s.events <- ev
	}
	s.err = io.EOF
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}

// next returns the next event, failing the test if none comes in time.
func (s *stream) next(t testing.TB) sse.Event {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatalf("the stream ended (%v) before the next event", s.err)
	case <-time.After(wait):
		t.Fatal("no event came")
	}
	return sse.Event{}
}

// expect reads the next event and checks its data.
func (s *stream) expect(t testing.TB, data string) sse.Event {
	t.Helper()
	ev := s.next(t)
	if ev.Data != data {
		t.Fatalf("got event %q (id %s), want %q", ev.Data, ev.ID, data)
	}
	return ev
}

// ended waits for the stream to end after its pending events, and returns
// those events.
func (s *stream) ended(t testing.TB) []sse.Event {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(wait):
		t.Fatal("the stream did not end")
	}
	var evs []sse.Event
	for {
		select {
		case ev := <-s.events:
			evs = append(evs, ev)
		default:
			if !errors.Is(s.err, io.EOF) {
				t.Fatalf("the stream ended with %v, want a clean end", s.err)
			}
			return evs
		}
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func bearer(tok string) http.Header { return header("Authorization", "Bearer "+tok) }

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func topicURL(i int) string { return fmt.Sprintf("https://example.com/books/%d", i) }
