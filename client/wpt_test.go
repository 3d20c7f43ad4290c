package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/client"
)

// The web-platform-tests cases about connections
// (../shared/reference/wpt-eventsource-cases.md, cases 5, 9–11, 15–19,
// 21, 22 and 30–41), with the handlers' bodies byte for byte. A browser's
// "open" event is the client's OnConnect; "error" with readyState
// CONNECTING is a *DropError; "error" with readyState CLOSED is the error
// that ends the stream.

// message is the body of resources/message.py with its defaults.
const message = "data: data\n\n\n"

// browser is a client with the defaults, as a browser has them.
var browser = client.Client{}

// between returns how long the stream took from the end of c to its next
// connection, which it returns.
func between(h *harness, c *conn) (time.Duration, *conn) {
	h.t.Helper()
	c.end()
	t0 := time.Now()
	h.dropped()
	next := h.accept()
	return time.Since(t0), next
}

func within(t *testing.T, got, want time.Duration, tolerance float64) {
	t.Helper()
	lo, hi := time.Duration(float64(want)*(1-tolerance)), time.Duration(float64(want)*(1+tolerance))
	if got < lo || got > hi {
		t.Fatalf("reconnected after %v, want %v ±%g%%", got, want, tolerance*100)
	}
}

func TestWPT(t *testing.T) {
	t.Parallel()

	run(t, "5 format-data-before-final-empty-line", browser, nil, client.Options{}, func(h *harness) {
		const body = "retry:1000\ndata:test1\n\nid:test\ndata:test2\n"
		c := h.accept().ok().send(body)
		h.event("", "test1", "")
		gap, c := between(h, c)
		within(h.t, gap, time.Second, 0.25)
		if vs := c.req.Header.Values("Last-Event-ID"); len(vs) != 0 {
			h.t.Fatalf("the undispatched id was sent: %q", vs)
		}
		c.ok().send(body)
		h.event("", "test1", "")
	})

	// 9–11: an ID in UTF-8 is sent back byte for byte, and again on every
	// reconnection.
	run(t, "9-11 format-field-id", browser, nil, client.Options{}, func(h *harness) {
		const id = "\xE2\x80\xA6"
		lastEventID := func(h *harness, c *conn) {
			h.t.Helper()
			if got := c.req.Header.Get("Last-Event-ID"); got != id {
				h.t.Fatalf("Last-Event-ID %q, want %q", got, id)
			}
		}
		c := h.accept()
		if vs := c.req.Header.Values("Last-Event-ID"); len(vs) != 0 {
			h.t.Fatalf("a first connection with Last-Event-ID %q", vs)
		}
		c.ok().send("id: " + id + "\nretry: 200\ndata: hello\n\n")
		h.event("", "hello", "…")
		for range 2 {
			gap, next := between(h, c)
			within(h.t, gap, 200*time.Millisecond, 0.25)
			lastEventID(h, next)
			c = next.ok().send("data: " + next.req.Header.Get("Last-Event-ID") + "\n\n")
			h.event("", "…", "…")
		}
	})

	for i, id := range []string{"\x00\x00", "x\x00", "\x00x", "x\x00x", " \x00"} {
		run(t, fmt.Sprintf("%d format-field-id-null %q", 15+i, id), browser, nil, client.Options{}, func(h *harness) {
			body := "id: " + id + "\nretry: 200\ndata: hello\n\n"
			c := h.accept().ok().send(body)
			h.event("", "hello", "")
			gap, c := between(h, c)
			within(h.t, gap, 200*time.Millisecond, 0.25)
			if vs := c.req.Header.Values("Last-Event-ID"); len(vs) != 0 {
				h.t.Fatalf("Last-Event-ID %q sent", vs)
			}
			c.ok().send(body)
			h.event("", "hello", "")
		})
	}

	run(t, "21 format-field-retry", browser, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("retry:03000\ndata:x\n\n\n")
		h.event("", "x", "")
		gap, _ := between(h, c)
		within(h.t, gap, 3*time.Second, 0.25)
	})
	run(t, "22 format-field-retry-bogus", client.Client{Retry: 50 * time.Millisecond}, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("retry:3000\nretry:1000x\ndata:x\n\n\n")
		h.event("", "x", "")
		gap, _ := between(h, c)
		within(h.t, gap, 3*time.Second, 0.25)
	})

	// opened returns a harness's OnConnect that counts the responses.
	opened := func(n *int) client.Options {
		return client.Options{OnConnect: func(*http.Response) { *n++ }}
	}
	var opens30 int
	run(t, "30 format-mime-trailing-semicolon", browser, nil, opened(&opens30), func(h *harness) {
		h.accept().respond(http.StatusOK, "Content-Type", "text/event-stream;").send(message)
		h.event("", "data", "")
		if opens30 != 1 {
			h.t.Fatalf("%d opens", opens30)
		}
	})
	for _, c := range []struct{ name, typ string }{
		{"31 format-mime-valid-bogus", "text/x-bogus"},
		{"32 format-mime-bogus", "x bogus"},
	} {
		typ := c.typ
		run(t, c.name, browser, nil, client.Options{}, func(h *harness) {
			h.accept().respond(http.StatusOK, "Content-Type", typ).send(message)
			if err := h.ended(); !errors.Is(err, client.ErrContentType) {
				h.t.Fatalf("ended with %v", err)
			}
			h.quiet(10 * time.Second)
			if n := h.requests(); n != 1 {
				h.t.Fatalf("%d requests: the failure was retried", n)
			}
		})
	}
	for _, status := range []int{204, 205, 210, 299, 404, 410, 503} {
		run(t, fmt.Sprintf("33 request-status-error %d", status), browser, nil, client.Options{}, func(h *harness) {
			c := h.accept().respond(status, "Content-Type", "text/event-stream")
			if status != 204 && status != 205 {
				c.send("data: data\n\n")
			}
			c.end()
			err := h.ended()
			var se *client.StatusError
			switch {
			case status == 204 && !errors.Is(err, client.ErrNoContent):
				h.t.Fatalf("ended with %v", err)
			case status != 204 && (!errors.As(err, &se) || se.StatusCode != status):
				h.t.Fatalf("ended with %v", err)
			}
			h.quiet(10 * time.Second)
			if n := h.requests(); n != 1 {
				h.t.Fatalf("%d requests: the failure was retried", n)
			}
		})
	}
	for _, status := range []int{301, 302, 303, 307, 308} {
		var opens int
		run(t, fmt.Sprintf("34 request-redirect %d", status), browser, nil, opened(&opens), func(h *harness) {
			h.accept().respond(status, "Location", "/eventsource/resources/message.py")
			c := h.accept()
			if c.req.URL.Path != "/eventsource/resources/message.py" {
				h.t.Fatalf("redirected to %s", c.req.URL)
			}
			c.ok().send(message)
			h.event("", "data", "")
			if opens != 1 {
				h.t.Fatalf("%d opens", opens)
			}
		})
	}

	run(t, "35 eventsource-reconnect 200", browser, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("retry: 2\n")
		gap, c := between(h, c)
		within(h.t, gap, 2*time.Millisecond, 0.25)
		c.ok().send("data: data\n\n")
		h.event("", "data", "")
	})
	run(t, "36 eventsource-reconnect reconnection events", browser, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("retry: 2\ndata: ok\n\n")
		h.event("", "ok", "")
		c.end()
		h.dropped() // one error, with the stream still connecting
		h.accept().ok().send("data: data\n\n")
		h.event("", "data", "")
	})
	run(t, "37 eventsource-close reconnect-fail", browser, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("retry: 2\ndata: opened\n\n")
		h.event("", "opened", "")
		c.end()
		h.dropped()
		c = h.accept().ok().send("data: reconnected\n\n")
		h.event("", "reconnected", "")
		c.end()
		h.dropped()
		h.accept().respond(http.StatusNoContent)
		if err := h.ended(); !errors.Is(err, client.ErrNoContent) {
			h.t.Fatalf("ended with %v", err)
		}
		h.quiet(10 * time.Second)
		if n := h.requests(); n != 3 {
			h.t.Fatalf("%d requests after the 204", n)
		}
	})
	run(t, "38 eventsource-close", browser, nil, client.Options{}, func(h *harness) {
		h.accept().ok().send(message)
		h.event("", "data", "")
		h.stream.Close() // closed at once, with nothing more
		if err := h.ended(); !errors.Is(err, client.ErrClosed) {
			h.t.Fatalf("ended with %v", err)
		}
		if _, err := h.stream.Next(); !errors.Is(err, client.ErrClosed) {
			h.t.Fatalf("Next after Close: %v", err)
		}
		h.quiet(10 * time.Second)
	})
	var opened39 []*http.Response
	run(t, "39 eventsource-onopen", browser, nil, client.Options{OnConnect: func(r *http.Response) { opened39 = append(opened39, r) }}, func(h *harness) {
		c := h.accept().ok()
		synctest.Wait()
		if len(opened39) != 1 || opened39[0].StatusCode != http.StatusOK {
			h.t.Fatalf("opens before any event: %v", opened39)
		}
		c.send(message)
		h.event("", "data", "")
	})
	run(t, "40 request-accept", browser, nil, client.Options{}, func(h *harness) {
		c := h.accept()
		c.ok().send("data: " + c.req.Header.Get("Accept") + "\n\n")
		h.event("", "text/event-stream", "")
	})
	run(t, "41 request-cache-control", browser, nil, client.Options{}, func(h *harness) {
		for range 2 {
			c := h.accept()
			c.ok().send("data: " + c.req.Header.Get("Cache-Control") + "\n\n")
			h.event("", "no-cache", "")
			h.stream.Restart()
		}
	})
}
