package browser_test

// The Mercure protocol in a real browser, against the real daemon (herald
// serve, run in process). The test pages come from a server of the test's
// own, on another port than the hub: another origin, so the browser makes
// CORS requests (with credentials when the page asks), but the same site, so
// that a cookie the page's server sets reaches the hub, as a cookie set by
// app.example.com for example.com reaches hub.example.com.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-sse/herald/internal/browser"
	"github.com/herald-sse/herald/internal/cli/clitest"
)

const (
	testKey = "a test key, longer than its 32-byte hash"
	topicA  = "https://example.com/books/1"
	topicB  = "https://example.com/books/2"
)

// startHub runs herald serve in process, with an in-memory history, the test
// key and the flags given, until the test ends, and returns its address
// (host:port).
func startHub(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.Serve(t, nil, append([]string{"-store", "memory", "-publisher-jwt-key", testKey}, args...)...).Addr
}

// token signs a token with the test key and the Mercure claims.
func token(t *testing.T, key string, publish, subscribe []string) string {
	t.Helper()
	claims := map[string]any{}
	if publish != nil {
		claims["publish"] = publish
	}
	if subscribe != nil {
		claims["subscribe"] = subscribe
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claims}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publish posts an update to the hub at base (http:// or https://, with
// client for the latter) and returns its ID.
func publish(t *testing.T, client *http.Client, base string, form url.Values) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token(t, testKey, []string{"*"}, nil))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publishing %v: %s: %s", form, resp.Status, body)
	}
	return string(body)
}

// update is the form of a publication of data to topic, with more fields
// as name, value pairs.
func update(topic, data string, more ...string) url.Values {
	form := url.Values{"topic": {topic}, "data": {data}}
	for i := 0; i+1 < len(more); i += 2 {
		form.Add(more[i], more[i+1])
	}
	return form
}

// subscribePage is the test page: it opens n EventSources (n, default 1) to
// the hub's URL (hub) for the topics (topic, repeated), with credentials
// when cred is set, and keeps what each sees in window.streams:
// opens, errors, the readyState after each error, and the events.
// window.state() adds each one's current readyState.
const subscribePage = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>subscribe</title></head>
<body><ol id="events"></ol><script>
const q = new URLSearchParams(location.search);
const hub = new URL(q.get("hub"));
for (const t of q.getAll("topic")) hub.searchParams.append("topic", t);
window.streams = [];
window.sources = [];
for (let i = 0; i < Number(q.get("n") || 1); i++) {
  const s = {opens: 0, errors: 0, states: [], events: []};
  const es = new EventSource(hub, {withCredentials: q.has("cred")});
  es.onopen = () => { s.opens++; };
  es.onerror = () => { s.errors++; s.states.push(es.readyState); };
  es.onmessage = (e) => {
    s.events.push({id: e.lastEventId, data: e.data});
    const li = document.createElement("li");
    li.textContent = i + ": " + e.data;
    document.getElementById("events").append(li);
  };
  window.streams.push(s);
  window.sources.push(es);
}
window.state = () => window.streams.map((s, i) => ({...s, readyState: window.sources[i].readyState}));
</script></body></html>`

// pageServer serves subscribePage at /, setting the mercureAuthorization
// cookie, for the hub's path, to the query's cookie parameter if any.
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if tok := r.URL.Query().Get("cookie"); tok != "" {
			http.SetCookie(w, &http.Cookie{Name: "mercureAuthorization", Value: tok, Path: "/.well-known/mercure", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, subscribePage)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pageURL is the page's URL that subscribes to hub (a base URL) for the
// topics, with the query's other parameters from more (name, value pairs).
func pageURL(page, hub string, topics []string, more ...string) string {
	q := url.Values{"hub": {hub + "/.well-known/mercure"}, "topic": topics}
	for i := 0; i+1 < len(more); i += 2 {
		q.Add(more[i], more[i+1])
	}
	return page + "/?" + q.Encode()
}

// event is an event as the page saw it.
type event struct {
	ID   string `json:"id"`
	Data string `json:"data"`
}

// stream is an EventSource as the page saw it.
type stream struct {
	Opens      int     `json:"opens"`
	Errors     int     `json:"errors"`
	States     []int   `json:"states"`
	Events     []event `json:"events"`
	ReadyState int     `json:"readyState"`
}

func streams(tab *browser.Tab) []stream {
	var s []stream
	tab.Eval(`window.state()`, &s)
	return s
}

// The EventSource states.
const (
	connecting = 0
	open       = 1
	closed     = 2
)

func TestEventSourceReceivesPublicUpdates(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	hub := "http://" + startHub(t, "-anonymous", "-cors-origins", page.URL)
	tab := browser.NewTab(t)
	tab.Navigate(pageURL(page.URL, hub, []string{topicA}))
	tab.WaitFor(`window.streams[0].opens === 1`, `window.state()`)

	var want []event
	for i := range 3 {
		data := fmt.Sprintf(`{"book":1,"stock":%d}`, i)
		want = append(want, event{ID: publish(t, http.DefaultClient, hub, update(topicA, data)), Data: data})
	}
	publish(t, http.DefaultClient, hub, update(topicB, "another topic"))
	tab.WaitFor(`window.streams[0].events.length >= 3`, `window.state()`)
	got := streams(tab)[0]
	if !slices.Equal(got.Events, want) || got.ReadyState != open || got.Errors != 0 {
		t.Errorf("the page has %+v, want the events %v on an open stream", got, want)
	}
	var shown int
	tab.Eval(`document.querySelectorAll("#events li").length`, &shown)
	if shown != 3 {
		t.Errorf("the page shows %d events, want 3", shown)
	}
	tab.NoProblems()
}

func TestEventSourcePrivateUpdatesNeedTheCookie(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		cookie  string // the token in the cookie; "" for none
		cred    bool   // the EventSource's withCredentials
		private bool   // whether the page gets the private update
	}{
		{name: "a valid cookie", cookie: token(t, testKey, nil, []string{topicA}), cred: true, private: true},
		{name: "a valid cookie for a template", cookie: token(t, testKey, nil, []string{"https://example.com/books/{id}"}), cred: true, private: true},
		{name: "no cookie", cred: true},
		{name: "a cookie for another topic", cookie: token(t, testKey, nil, []string{topicB}), cred: true},
		{name: "a valid cookie not sent without credentials", cookie: token(t, testKey, nil, []string{topicA})},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			page := pageServer(t)
			hub := "http://" + startHub(t, "-anonymous", "-cors-origins", page.URL)
			tab := browser.NewTab(t)
			var more []string
			if c.cookie != "" {
				more = append(more, "cookie", c.cookie)
			}
			if c.cred {
				more = append(more, "cred", "1")
			}
			// The page subscribes to the private topic and to a public one.
			tab.Navigate(pageURL(page.URL, hub, []string{topicA, "https://example.com/news"}, more...))
			tab.WaitFor(`window.streams[0].opens === 1`, `window.state()`)

			private := event{Data: "private stock"}
			private.ID = publish(t, http.DefaultClient, hub, update(topicA, private.Data, "private", "on"))
			public := event{Data: "public news"}
			public.ID = publish(t, http.DefaultClient, hub, update("https://example.com/news", public.Data))
			// The hub delivers in publication order: once the page has the
			// public update, it has had the private one or never will.
			tab.WaitFor(`window.streams[0].events.some(e => e.data === "public news")`, `window.state()`)
			want := []event{public}
			if c.private {
				want = []event{private, public}
			}
			if got := streams(tab)[0]; !slices.Equal(got.Events, want) {
				t.Errorf("the page got %v, want %v", got.Events, want)
			}
			tab.NoProblems()
		})
	}
}

func TestEventSourceInvalidCookieIsRefused(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	hub := "http://" + startHub(t, "-anonymous", "-cors-origins", page.URL)
	tab := browser.NewTab(t)
	bad := token(t, "another key, as long as the test key is", nil, []string{"*"})
	tab.Navigate(pageURL(page.URL, hub, []string{topicA}, "cookie", bad, "cred", "1"))
	// A token that is present but invalid is refused (401), never taken as
	// anonymous: the EventSource fails for good.
	tab.WaitFor(`window.sources[0].readyState === 2`, `window.state()`)
	publish(t, http.DefaultClient, hub, update(topicA, "public"))
	got := streams(tab)[0]
	if got.Opens != 0 || len(got.Events) != 0 {
		t.Errorf("the page has %+v, want a stream that never opened", got)
	}
	tab.WaitProblem("the 401", func(p browser.Problem) bool {
		return p.Kind == "request" && strings.Contains(p.Text, "401") && strings.HasPrefix(p.URL, hub)
	})
}

func TestEventSourceResumesAfterADrop(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	hubAddr := startHub(t, "-anonymous", "-cors-origins", page.URL)
	hub := "http://" + hubAddr
	px := newProxy(t, hubAddr)
	tab := browser.NewTab(t)
	tab.Navigate(pageURL(page.URL, px.URL(), []string{topicA}))
	tab.WaitFor(`window.streams[0].opens === 1`, `window.state()`)

	var want []event
	pub := func(more ...string) {
		data := fmt.Sprintf("update %d", len(want)+1)
		want = append(want, event{ID: publish(t, http.DefaultClient, hub, update(topicA, data, more...)), Data: data})
	}
	pub("retry", "50") // the browser comes back 50 ms after a drop, not 3 s
	pub()
	pub()
	tab.WaitFor(`window.streams[0].events.length === 3`, `window.state()`)

	// Drop the connection, and hold the browser's next one while three
	// more updates are published.
	px.hold()
	px.cut()
	tab.WaitFor(`window.streams[0].errors === 1`, `window.state()`)
	px.wait("the browser to reconnect", func() bool { return len(px.held) == 1 })
	pub()
	pub()
	pub()
	px.release()
	tab.WaitFor(`window.streams[0].events.length >= 6`, `window.state()`)
	pub() // after the replay: a duplicate would come before it
	tab.WaitFor(`window.streams[0].events.length >= 7`, `window.state()`)

	got := streams(tab)[0]
	if !slices.Equal(got.Events, want) {
		t.Errorf("the page got %v, want each of %v once, in order", got.Events, want)
	}
	if got.Opens != 2 || got.Errors != 1 || !slices.Equal(got.States, []int{connecting}) || got.ReadyState != open {
		t.Errorf("the stream: %+v; want it opened twice, one error while it reconnected, open", got)
	}
	reqs, statuses := px.seen()
	if len(reqs) != 2 {
		t.Fatalf("%d requests reached the hub, want 2", len(reqs))
	}
	if h := reqs[0].Header.Get("Last-Event-ID"); h != "" {
		t.Errorf("the first request had Last-Event-ID %q", h)
	}
	if h := reqs[1].Header.Get("Last-Event-ID"); h != want[2].ID {
		t.Errorf("the reconnection had Last-Event-ID %q, want %q (the last event before the drop)", h, want[2].ID)
	}
	if !slices.Equal(statuses, []int{200, 200}) {
		t.Errorf("the hub answered %v, want 200 twice", statuses)
	}
	// The drop is the only problem: the first stream's request failed
	// (net::ERR_INCOMPLETE_CHUNKED_ENCODING), as a request and in the log.
	for _, p := range tab.Problems() {
		if p.Kind != "request" && p.Kind != "log" || !strings.HasPrefix(p.URL, px.URL()) {
			t.Errorf("problem: %v", p)
		}
	}
}

func TestEventSourceStopsAtTheEnd(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	hubAddr := startHub(t, "-anonymous", "-cors-origins", page.URL)
	hub := "http://" + hubAddr
	px := newProxy(t, hubAddr)
	tab := browser.NewTab(t)
	tab.Navigate(pageURL(page.URL, px.URL(), []string{topicA}))
	tab.WaitFor(`window.streams[0].opens === 1`, `window.state()`)

	first := event{Data: "on the way"}
	first.ID = publish(t, http.DefaultClient, hub, update(topicA, first.Data, "retry", "50"))
	last := event{Data: "arrived"}
	last.ID = publish(t, http.DefaultClient, hub, update(topicA, last.Data, "end", "1"))
	// The hub ends the stream after the last event; the browser comes back
	// with its ID, is answered 204, and closes the EventSource for good.
	tab.WaitFor(`window.sources[0].readyState === 2`, `window.state()`)

	got := streams(tab)[0]
	if !slices.Equal(got.Events, []event{first, last}) {
		t.Errorf("the page got %v, want %v", got.Events, []event{first, last})
	}
	if got.Opens != 1 || !slices.Equal(got.States, []int{connecting, closed}) {
		t.Errorf("the stream: %+v; want it opened once, then an error while it reconnected, then one that closed it", got)
	}
	reqs, statuses := px.seen()
	if len(reqs) != 2 || !slices.Equal(statuses, []int{200, 204}) {
		t.Fatalf("%d requests reached the hub, answered %v; want 2, answered 200 then 204", len(reqs), statuses)
	}
	if h := reqs[1].Header.Get("Last-Event-ID"); h != last.ID {
		t.Errorf("the reconnection had Last-Event-ID %q, want %q", h, last.ID)
	}
	tab.NoProblems()
}

// Over HTTP/2 one connection carries every stream, so a page can hold more
// EventSources to one hub than HTTP/1.1's six connections per host.
func TestEventSourceTwelveStreamsOverHTTP2(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	cert, key := browser.TestCert(t)
	hub := "https://" + startHub(t, "-anonymous", "-cors-origins", page.URL, "-tls-cert", cert, "-tls-key", key)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: browser.TestCertPool(t)}, ForceAttemptHTTP2: true}}
	t.Cleanup(client.CloseIdleConnections)

	tab := browser.NewTab(t)
	tab.Navigate(pageURL(page.URL, hub, []string{topicA}, "n", "12"))
	tab.WaitFor(`window.streams.every(s => s.opens === 1)`, `window.state()`)
	id := publish(t, client, hub, update(topicA, "to all twelve"))
	tab.WaitFor(`window.streams.every(s => s.events.length === 1)`, `window.state()`)
	for i, s := range streams(tab) {
		if want := []event{{ID: id, Data: "to all twelve"}}; !slices.Equal(s.Events, want) || s.ReadyState != open {
			t.Errorf("stream %d: %+v, want %v on an open stream", i, s, want)
		}
	}
	// The browser's word for the protocol of each stream's response.
	var h2 int
	for _, r := range tab.Requests() {
		if r.Type != "EventSource" {
			continue
		}
		if r.Protocol != "h2" || r.Status != http.StatusOK {
			t.Errorf("%s: %d over %q, want 200 over h2", r.URL, r.Status, r.Protocol)
		}
		h2++
	}
	if h2 != 12 {
		t.Errorf("%d EventSource requests over h2, want 12", h2)
	}
	tab.NoProblems()
}

// The contrast: over HTTP/1.1 Chromium opens at most six connections to a
// host, so of twelve EventSources six stream and six wait to connect for as
// long as the first six stay open.
func TestEventSourceSixStreamsOverHTTP1(t *testing.T) {
	t.Parallel()
	page := pageServer(t)
	hub := "http://" + startHub(t, "-anonymous", "-cors-origins", page.URL)
	tab := browser.NewTab(t)
	tab.Navigate(pageURL(page.URL, hub, []string{topicA}, "n", "12"))
	tab.WaitFor(`window.streams.filter(s => s.opens === 1).length === 6`, `window.state()`)
	publish(t, http.DefaultClient, hub, update(topicA, "to the six"))
	tab.WaitFor(`window.streams.filter(s => s.events.length === 1).length === 6`, `window.state()`)
	var opened, waiting int
	for _, s := range streams(tab) {
		switch {
		case s.Opens == 1 && len(s.Events) == 1 && s.ReadyState == open:
			opened++
		case s.Opens == 0 && len(s.Events) == 0 && s.ReadyState == connecting:
			waiting++
		}
	}
	if opened != 6 || waiting != 6 {
		t.Errorf("%d streams open with the event and %d waiting to connect, want 6 and 6: %+v", opened, waiting, streams(tab))
	}
	for _, r := range tab.Requests() {
		if r.Type == "EventSource" && r.Status != 0 && r.Protocol != "http/1.1" {
			t.Errorf("%s: over %q, want http/1.1", r.URL, r.Protocol)
		}
	}
	tab.NoProblems()
}
