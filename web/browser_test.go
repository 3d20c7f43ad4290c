package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/herald-sse/herald/internal/browser"
	"github.com/herald-sse/herald/web"
)

// The browser starts with the first test that opens a tab, and stops with
// the binary.
func TestMain(m *testing.M) { browser.Main(m) }

// screenshots is where the test run writes the pages' screenshots, which
// the README shows.
const screenshots = "../docs/screenshots"

// shoot writes screenshots of the tab's page at phone and desktop sizes:
// on a phone, what the screen shows from the element with the id (none:
// the top); on a desktop, the whole page.
func shoot(tab *browser.Tab, name, id string) {
	tab.Screenshot(filepath.Join(screenshots, name+"-phone.png"), browser.Phone)
	if id != "" {
		tab.Eval(fmt.Sprintf(`document.getElementById(%q).scrollIntoView()`, id), nil)
		tab.Screenshot(filepath.Join(screenshots, name+"-phone.png"), browser.Phone)
	}
	tab.FullScreenshot(filepath.Join(screenshots, name+"-desktop.png"), browser.Desktop)
}

// fill sets the value of the element with the id, as typing would.
func fill(t *testing.T, tab *browser.Tab, id, value string) {
	t.Helper()
	if _, err := chromedp.Run(tab.Context(), chromedp.SetValue("#"+id, value)); err != nil {
		t.Fatalf("filling #%s: %v", id, err)
	}
}

// enter types Enter in the element with the id, which submits its form.
func enter(t *testing.T, tab *browser.Tab, id string) {
	t.Helper()
	if _, err := chromedp.Run(tab.Context(), chromedp.SendKeys("#"+id, kb.Enter)); err != nil {
		t.Fatalf("Enter in #%s: %v", id, err)
	}
}

// Every page loads, runs its script, and has no problem: no console error,
// no failed request. The welcome and debugger pages are photographed here,
// the demo's in TestDemo.
func TestPagesLoad(t *testing.T) {
	t.Parallel()
	h := serve(t)
	for _, p := range []struct{ path, ready, shot string }{
		{"/", `document.getElementById("hub-url").textContent.endsWith("/.well-known/mercure")`, "home"},
		{"/debugger", `document.getElementById("sub-state").textContent === "not subscribed"`, ""},
		{"/demo/driver", `!document.getElementById("new-trip-button").disabled`, ""},
		{"/demo/rider", `document.getElementById("rider-trip").value === ""`, ""},
		{"/demo/rider?trip=nobody", `document.getElementById("connection").textContent === "connected" && document.getElementById("presence").textContent === "offline"`, ""},
	} {
		t.Run(p.path, func(t *testing.T) {
			t.Parallel()
			tab := browser.NewTab(t)
			tab.Navigate(h.base + p.path)
			tab.WaitFor(`document.readyState === "complete" && `+p.ready, `document.body.innerText.slice(0, 300)`)
			if p.shot != "" {
				shoot(tab, p.shot, "")
			}
			tab.NoProblems() // failed requests, and those answered 400 or more, included
		})
	}
}

// The debugger, by keyboard and mouse: subscribe to a URI template, publish
// an update of a type, see it arrive pretty-printed, see its own
// subscription in the subscriptions API come and go, and see the hub's
// refusal of a bad token.
func TestDebugger(t *testing.T) {
	t.Parallel()
	h := serve(t)
	if h.token == "" {
		t.Fatalf("no development token printed:\n%s", h.stderr)
	}
	tab := browser.NewTab(t)
	tab.Navigate(h.base + "/debugger")
	fill(t, tab, "sub-topics", "https://example.com/books/{id}")
	enter(t, tab, "sub-last") // Enter submits the form
	tab.WaitFor(`document.getElementById("sub-state").textContent.startsWith("open")`, `document.getElementById("sub-state").textContent`)

	fill(t, tab, "subs-token", h.token)
	click(t, tab, "subs-watch")
	rows := `[...document.querySelectorAll("#subs tr")].map(tr => tr.textContent)`
	tab.WaitFor(`document.getElementById("subs-state").textContent === "live" && `+rows+`.some(r => r.startsWith("https://example.com/books/{id}"))`, rows)

	fill(t, tab, "pub-topics", "https://example.com/books/1")
	fill(t, tab, "pub-data", `{"title":"Dune","year":1965}`)
	fill(t, tab, "pub-id", "book-1")
	fill(t, tab, "pub-type", "book")
	fill(t, tab, "pub-token", h.token)
	click(t, tab, "publish-button")
	tab.WaitFor(`document.getElementById("pub-result").textContent.includes("published: book-1")`, `document.getElementById("pub-result").textContent`)
	events := `[...document.querySelectorAll("#events li")].map(li => li.textContent)`
	tab.WaitFor(events+`.some(e => e.includes("book") && e.includes("book-1") && e.includes('{\n  "title": "Dune",\n  "year": 1965\n}'))`, events)
	shoot(tab, "debugger", "sub-state")

	// Unsubscribing: the subscription leaves the API, live.
	click(t, tab, "unsubscribe")
	tab.WaitFor(`!`+rows+`.some(r => r.startsWith("https://example.com/books/{id}"))`, rows)

	// The end of a topic's stream: the subscription to it stops for good.
	fill(t, tab, "sub-topics", "https://example.com/last")
	click(t, tab, "subscribe-button")
	tab.WaitFor(`document.getElementById("sub-state").textContent.startsWith("open")`, `document.getElementById("sub-state").textContent`)
	fill(t, tab, "pub-topics", "https://example.com/last")
	fill(t, tab, "pub-id", "last-1")
	click(t, tab, "pub-end")
	click(t, tab, "publish-button")
	tab.WaitFor(`document.getElementById("sub-state").textContent.includes("ended (204)")`, `document.getElementById("sub-state").textContent`)
	tab.NoProblems()

	// The hub's refusal, shown as it said it.
	fill(t, tab, "pub-token", "not-a-token")
	click(t, tab, "publish-button")
	tab.WaitFor(`document.getElementById("pub-result").textContent.includes("refused: 401 invalid_token")`, `document.getElementById("pub-result").textContent`)
	for _, p := range tab.Problems() {
		if !strings.Contains(p.Text, "401") && !strings.Contains(p.URL, "/.well-known/mercure") {
			t.Errorf("a problem other than the refusal: %v", p)
		}
	}
}

// click clicks the element with the id, as a mouse does, once it is
// enabled.
func click(t *testing.T, tab *browser.Tab, id string) {
	t.Helper()
	tab.WaitFor(fmt.Sprintf(`(e => e && !e.disabled && !e.closest("[hidden]"))(document.getElementById(%q))`, id), "")
	if _, err := chromedp.Run(tab.Context(), chromedp.Click("#"+id)); err != nil {
		t.Fatalf("clicking #%s: %v", id, err)
	}
}

// text is the text of the element with the id.
func text(t *testing.T, tab *browser.Tab, id string) string {
	t.Helper()
	var s string
	tab.Eval(fmt.Sprintf(`document.getElementById(%q).textContent`, id), &s)
	return s
}

// The trip demo in two tabs, each in a browser context of its own: the
// rider sees every update of the driver's, once and in order, sees the
// driver present, survives dropping its connection, and stops at the
// trip's end with its EventSource closed by the hub's 204.
func TestDemo(t *testing.T) {
	t.Parallel()
	h := serve(t)
	driver, rider := browser.NewTab(t), browser.NewTab(t)

	driver.Navigate(h.base + "/demo/driver")
	click(t, driver, "new-trip-button")
	driver.WaitFor(`document.getElementById("presence").textContent === "online"`, `document.getElementById("presence").textContent`)
	trip := text(t, driver, "trip-id")
	link := text(t, driver, "rider-link")
	if want := h.base + "/demo/rider?trip=" + trip; link != want {
		t.Fatalf("the rider's link is %q, want %q", link, want)
	}

	rider.Navigate(link)
	rider.WaitFor(`document.getElementById("connection").textContent === "connected"`, `document.getElementById("connection").textContent`)
	rider.WaitFor(`document.getElementById("presence").textContent === "online"`, `document.getElementById("presence").textContent`)

	// The trip: accepted, arriving, driving to the pickup, picked up, on
	// the way, driving to the destination, arrived. The rider drops its
	// connection twice on the way.
	sent := 0
	advance := func() { click(t, driver, "advance"); sent++ }
	drive := func() { click(t, driver, "drive"); sent++ }
	advance() // accepted
	advance() // arriving
	for range 4 {
		drive()
	}
	advance() // picked up
	rider.WaitFor(fmt.Sprintf(`document.querySelectorAll("#timeline li.event").length === %d`, sent), `document.getElementById("timeline").textContent`)
	shoot(driver, "driver", "trip")
	shoot(rider, "rider", "trip")
	click(t, rider, "drop")
	advance() // on the way
	drive()
	click(t, rider, "drop")
	for range 5 {
		drive()
	}
	advance() // arrived, the end of the trip's stream
	rider.WaitFor(`document.getElementById("connection").textContent.includes("trip ended")`, `document.getElementById("connection").textContent`)

	var seqs []int
	rider.Eval(`[...document.querySelectorAll("#timeline li.event")].map(li => Number(li.dataset.seq))`, &seqs)
	if len(seqs) != sent {
		t.Errorf("the rider shows %d updates, want %d: %v", len(seqs), sent, seqs)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Errorf("update %d of the rider's is #%d, want #%d: %v", i, s, i+1, seqs)
			break
		}
	}
	if s := text(t, rider, "state"); !strings.HasPrefix(s, "arrived") {
		t.Errorf("the rider's state is %q, want arrived", s)
	}

	// The rider's trip subscriptions: the first from the start of the
	// history, each after a drop from the last update received, then the
	// browser's own reconnection after the end, answered 204.
	var trips []browser.Request
	for _, r := range rider.Requests() {
		u, _ := url.Parse(r.URL)
		if r.Type == "EventSource" && u.Query().Get("topic") == "https://herald.example/demo/trips/"+trip {
			trips = append(trips, r)
		}
	}
	if len(trips) != 4 {
		t.Fatalf("the rider made %d trip subscriptions, want 4: %+v", len(trips), trips)
	}
	if u, _ := url.Parse(trips[0].URL); u.Query().Get("lastEventID") != "earliest" {
		t.Errorf("the first subscription is %s, want one from the earliest event", trips[0].URL)
	}
	for _, r := range trips[1:3] {
		if u, _ := url.Parse(r.URL); u.Query().Get("lastEventID") == "" || u.Query().Get("lastEventID") == "earliest" {
			t.Errorf("a resumption is %s, want one from the last event received", r.URL)
		}
	}
	// (Its Last-Event-ID header is added below the loader, out of the
	// request's record: without it, the hub would have replayed updates,
	// which the count above would have shown twice.)
	if last := trips[3]; last.Status != 204 {
		t.Errorf("the reconnection after the end: status %d, want 204", last.Status)
	}
	driver.NoProblems()
	rider.NoProblems()
}

// The rider sees the driver come and go, live, through the subscription
// events of the driver topic: here the driver is a Go client holding a
// driver's token of the demo's.
func TestPresence(t *testing.T) {
	t.Parallel()
	h := serve(t)
	rider := browser.NewTab(t)
	rider.Navigate(h.base + "/demo/rider?trip=p-1")
	presence := `document.getElementById("presence").textContent`
	rider.WaitFor(presence+` === "offline"`, presence)

	resp, err := http.PostForm(h.base+"/demo/token", url.Values{"role": {"driver"}, "trip": {"p-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var g web.Grant
	err = json.NewDecoder(resp.Body).Decode(&g)
	resp.Body.Close()
	if err != nil || g.Token == "" {
		t.Fatalf("the driver's token: %s %v %+v", resp.Status, err, g)
	}
	q := url.Values{"topic": {g.DriverTopic}, "authorization": {g.Token}}
	req, err := http.NewRequestWithContext(t.Context(), "GET", h.base+"/.well-known/mercure?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	driver, err := http.DefaultClient.Do(req)
	if err != nil || driver.StatusCode != 200 {
		t.Fatalf("the driver's subscription: %v %v", driver, err)
	}
	rider.WaitFor(presence+` === "online"`, presence)
	driver.Body.Close()
	rider.WaitFor(presence+` === "offline"`, presence)
	rider.NoProblems()
}
