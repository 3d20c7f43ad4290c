package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultTimeout bounds every wait of a tab unless its Timeout says
// otherwise: long enough that only a broken run reaches it.
const DefaultTimeout = 30 * time.Second

// Problem is something a page should not do: the kinds are "console" (a
// console.error), "exception" (an exception or a promise rejection nothing
// caught), "log" (an error of the browser's log, such as a request CORS
// refused), and "request" (a request that failed, or that was answered with a
// status of 400 or more; a request the page itself cancelled, such as an
// EventSource it closed, is not one).
type Problem struct {
	Kind string
	Text string
	URL  string
}

func (p Problem) String() string {
	if p.URL == "" {
		return p.Kind + ": " + p.Text
	}
	return p.Kind + ": " + p.Text + " (" + p.URL + ")"
}

// Request is a request the page made, as the browser saw it.
type Request struct {
	URL     string
	Method  string
	Type    string         // "Document", "EventSource", "Fetch", "Script", …
	Headers map[string]any // the request's headers, as the page's loader set them
	// Status is the response's status; 0 while there is none.
	Status int64
	// Protocol is the protocol the response came over: "http/1.1", "h2".
	Protocol string
	// Failed is the network error of a request that failed ("" if none),
	// such as net::ERR_INCOMPLETE_CHUNKED_ENCODING; Canceled says the page
	// cancelled it.
	Failed   string
	Canceled bool
}

// Viewport is a screen size to render a page at.
type Viewport struct {
	Width, Height int64
	Scale         float64 // the device's pixel ratio; 0 means 1
	Mobile        bool    // emulate a phone: its viewport meta tag, touch, overlay scrollbars
}

// Viewports for screenshots: a phone (an iPhone 12 to 15's CSS pixels) and a
// desktop.
var (
	Phone   = Viewport{Width: 390, Height: 844, Scale: 2, Mobile: true}
	Desktop = Viewport{Width: 1280, Height: 800, Scale: 1}
)

// Tab is one page of a browser, in a browser context of its own, that
// belongs to one test. Its methods fail the test (t.Fatal) when the browser
// does: call them from the test's goroutine. The records it keeps are safe to
// read from any goroutine.
type Tab struct {
	t   testing.TB
	ctx context.Context
	// Timeout bounds each of the tab's waits and calls; DefaultTimeout
	// when zero.
	Timeout time.Duration

	mu       sync.Mutex
	problems []Problem
	requests []*Request
	byID     map[network.RequestID]*Request
	changed  chan struct{} // closed, and replaced, at each record
}

// NewTab opens a tab for the test in a new browser context (its own
// cookies, cache and connections), and closes both at the test's end. The tab
// records problems and requests from its start.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &Tab{t: t, ctx: ctx, byID: map[network.RequestID]*Request{}, changed: make(chan struct{})}
	// Listen opens the tab, and sees its events in the order the browser
	// sends them: one that came before the answer to a command is recorded
	// when the command returns.
	if err := chromedp.Listen(ctx, tab.record); err != nil {
		t.Fatalf("browser: opening a tab: %v", err)
	}
	return tab
}

// Context is the tab's chromedp context, for what the Tab's methods do not
// cover: chromedp.Run(tab.Context(), chromedp.Click(…)).
func (tab *Tab) Context() context.Context { return tab.ctx }

func (tab *Tab) timeout() time.Duration {
	if tab.Timeout > 0 {
		return tab.Timeout
	}
	return DefaultTimeout
}

// run runs a chromedp action bounded by the tab's timeout.
func (tab *Tab) run(a chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout())
	defer cancel()
	return chromedp.Do(ctx, a)
}

// Navigate loads url in the tab and waits for its load event.
func (tab *Tab) Navigate(url string) {
	tab.t.Helper()
	if err := tab.run(chromedp.Navigate(url)); err != nil {
		tab.t.Fatalf("browser: navigating to %s: %v", url, err)
	}
}

// Eval evaluates the JavaScript expression in the page (awaiting it if it
// is a promise) and decodes its value, which must survive JSON, into out
// (nil to drop it).
func (tab *Tab) Eval(expr string, out any) {
	tab.t.Helper()
	if err := tab.eval(expr, out); err != nil {
		tab.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
}

func (tab *Tab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout())
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil || out == nil {
		return err
	}
	if len(raw) == 0 {
		raw = []byte("null") // undefined
	}
	return json.Unmarshal(raw, out)
}

// WaitFor waits until the JavaScript expression is truthy in the page,
// polling it every 10 ms, for at most the tab's timeout. On timeout it fails
// the test with the expression, the value of show (a JavaScript expression
// that tells what the page has instead; "" for none) and the problems
// recorded.
func (tab *Tab) WaitFor(cond, show string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout()+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(tab.timeout())))
	if err == nil {
		return
	}
	var state string
	if show != "" {
		var v any
		if err := tab.eval("JSON.stringify("+show+")", &v); err != nil {
			state = "(" + err.Error() + ")"
		} else {
			state = fmt.Sprint(v)
		}
	}
	tab.t.Fatalf("browser: waiting for %s: %v\n%s: %s\nproblems: %v", cond, err, show, state, tab.Problems())
}

// Screenshot renders the page at the viewport and writes what the viewport
// shows to path as PNG, creating its directory. The viewport stays set.
func (tab *Tab) Screenshot(path string, v Viewport) {
	tab.t.Helper()
	tab.screenshot(path, v, chromedp.CaptureScreenshot())
}

// FullScreenshot is Screenshot of the whole page, as tall as it is.
func (tab *Tab) FullScreenshot(path string, v Viewport) {
	tab.t.Helper()
	tab.screenshot(path, v, chromedp.FullScreenshot(100))
}

func (tab *Tab) screenshot(path string, v Viewport, capture chromedp.Action[[]byte]) {
	tab.t.Helper()
	scale := v.Scale
	if scale == 0 {
		scale = 1
	}
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(scale)}
	if v.Mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	if err := tab.run(chromedp.EmulateViewport(v.Width, v.Height, opts...)); err != nil {
		tab.t.Fatalf("browser: setting the viewport %dx%d: %v", v.Width, v.Height, err)
	}
	ctx, cancel := context.WithTimeout(tab.ctx, tab.timeout())
	defer cancel()
	png, err := chromedp.Run(ctx, capture)
	if err != nil {
		tab.t.Fatalf("browser: screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tab.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}

// Problems returns the problems recorded so far, in order.
func (tab *Tab) Problems() []Problem {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Problem(nil), tab.problems...)
}

// NoProblems fails the test if the page has had any problem so far.
func (tab *Tab) NoProblems() {
	tab.t.Helper()
	// A round trip, so that the events the browser sent before it are in.
	tab.Eval("0", nil)
	if p := tab.Problems(); len(p) > 0 {
		tab.t.Errorf("browser: the page had %d problems:\n%v", len(p), p)
	}
}

// Requests returns copies of the requests the page made so far, in the
// order it made them (a redirect is a request of its own).
func (tab *Tab) Requests() []Request {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	out := make([]Request, len(tab.requests))
	for i, r := range tab.requests {
		out[i] = *r
	}
	return out
}

// WaitProblem waits, for at most the tab's timeout, until the tab has
// recorded a problem that match accepts, and returns it.
func (tab *Tab) WaitProblem(what string, match func(Problem) bool) Problem {
	tab.t.Helper()
	var found Problem
	tab.waitRecord(what, func() bool {
		for _, p := range tab.problems {
			if match(p) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// WaitRequests waits, for at most the tab's timeout, until match accepts the
// requests recorded, and returns them.
func (tab *Tab) WaitRequests(what string, match func([]Request) bool) []Request {
	tab.t.Helper()
	var found []Request
	tab.waitRecord(what, func() bool {
		found = found[:0]
		for _, r := range tab.requests {
			found = append(found, *r)
		}
		return match(found)
	})
	return found
}

// waitRecord waits until ok, called under the lock, holds, checking it at
// each record.
func (tab *Tab) waitRecord(what string, ok func() bool) {
	tab.t.Helper()
	deadline := time.NewTimer(tab.timeout())
	defer deadline.Stop()
	for {
		tab.mu.Lock()
		done, changed := ok(), tab.changed
		tab.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			tab.t.Fatalf("browser: waiting for %s: not within %v\nproblems: %v\nrequests: %+v", what, tab.timeout(), tab.Problems(), tab.Requests())
		}
	}
}

// record is the tab's listener: it runs on the goroutine that reads the
// browser's messages, so it only appends under the lock.
func (tab *Tab) record(ev any) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	close(tab.changed)
	tab.changed = make(chan struct{})
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			url := ""
			if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
				url = ev.StackTrace.CallFrames[0].URL
			}
			tab.problems = append(tab.problems, Problem{Kind: "console", Text: consoleText(ev.Args), URL: url})
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		tab.problems = append(tab.problems, Problem{Kind: "exception", Text: text, URL: d.URL})
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			tab.problems = append(tab.problems, Problem{Kind: "log", Text: string(ev.Entry.Source) + ": " + ev.Entry.Text, URL: ev.Entry.URL})
		}
	case *network.EventRequestWillBeSent:
		r := &Request{URL: ev.Request.URL, Method: ev.Request.Method, Type: string(ev.Type), Headers: ev.Request.Headers}
		tab.requests = append(tab.requests, r)
		tab.byID[ev.RequestID] = r
	case *network.EventResponseReceived:
		if r := tab.byID[ev.RequestID]; r != nil {
			r.Status, r.Protocol = ev.Response.Status, ev.Response.Protocol
			if r.Status >= 400 {
				tab.problems = append(tab.problems, Problem{Kind: "request", Text: fmt.Sprintf("%s answered %d", r.Method, r.Status), URL: r.URL})
			}
		}
	case *network.EventLoadingFailed:
		if r := tab.byID[ev.RequestID]; r != nil {
			r.Failed, r.Canceled = ev.ErrorText, ev.Canceled
			if !ev.Canceled {
				tab.problems = append(tab.problems, Problem{Kind: "request", Text: r.Method + " failed: " + ev.ErrorText, URL: r.URL})
			}
		}
	}
}

// consoleText is roughly what the console shows of a call's arguments.
func consoleText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case len(a.Value) > 0:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		default:
			parts = append(parts, a.Description)
		}
	}
	return strings.Join(parts, " ")
}
