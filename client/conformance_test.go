package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/client"
)

// The behaviours the SSE client contract suite checks
// (../shared/reference/sse-client-conformance.md, §1.6), one named test
// each, on the harness of harness_test.go.

// run runs a behaviour in a bubble with its own harness.
func run(t *testing.T, name string, c client.Client, req func(t *testing.T) *http.Request, opts client.Options, fn func(*harness)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var r *http.Request
			if req != nil {
				r = req(t)
			}
			fn(start(t, c, r, opts))
		})
	})
}

// stream runs a behaviour on one connection that sends chunks.
func stream(t *testing.T, name string, chunks []string, check func(*harness)) {
	run(t, name, fast, nil, client.Options{}, func(h *harness) {
		h.accept().ok().send(chunks...)
		check(h)
	})
}

func TestBasicParsing(t *testing.T) {
	t.Parallel()
	five := bigString(5 << 20)
	stream(t, "one-line message in one chunk", []string{"data: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "two messages spanning 3 chunks with shared chunk", []string{"data: test", "test\n\ndata:", "test\n\n"}, func(h *harness) {
		h.event("", "testtest", "")
		h.event("", "test", "")
	})
	stream(t, "large message in one chunk", []string{"data: " + five + "\n\n"}, func(h *harness) {
		h.event("", five, "")
	})
	stream(t, "large message in two chunks", []string{"data: " + five, five + "\n\n"}, func(h *harness) {
		h.event("", five+five, "")
	})
	stream(t, "one-line message in two chunks", []string{"data: Hel", "lo\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "two one-line messages in one chunk", []string{"data: Hello\n\ndata: World\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
		h.event("", "World", "")
	})
	stream(t, "one two-line message in one chunk", []string{"data: Hello\ndata: World\n\n"}, func(h *harness) {
		h.event("", "Hello\nWorld", "")
	})
	stream(t, "empty data", []string{"data:\n\n"}, func(h *harness) {
		h.event("", "", "")
	})
	stream(t, "event with specific type", []string{"event: greeting\ndata: Hello\n\n"}, func(h *harness) {
		h.event("greeting", "Hello", "")
	})
	stream(t, "default event type", []string{"data: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "") // "" is the default type, "message"
	})
	stream(t, "event with ID", []string{"id: abc\ndata: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "abc")
	})
	stream(t, "event with type and ID", []string{"event: greeting\nid: abc\ndata: Hello\n\n"}, func(h *harness) {
		h.event("greeting", "Hello", "abc")
	})
	stream(t, "ID field is ignored if it contains a null", []string{"id: a\x00bc\ndata: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "last ID persists if not overridden by later event", []string{"id: abc\ndata: Hello\n\n", "data: World\n\n"}, func(h *harness) {
		h.event("", "Hello", "abc")
		h.event("", "World", "abc")
	})
	stream(t, "last ID can be overridden by an empty value", []string{"id: abc\ndata: Hello\n\n", "id:\ndata: World\n\n"}, func(h *harness) {
		h.event("", "Hello", "abc")
		h.event("", "World", "")
	})
	stream(t, "fields in reverse order", []string{"data: Hello\nid: abc\nevent: greeting\n\n"}, func(h *harness) {
		h.event("greeting", "Hello", "abc")
	})
	stream(t, "unknown field is ignored", []string{"data: Hello\nfoo: bar\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "fields without leading space", []string{"event:greeting\nid:abc\ndata:Hello\n\n"}, func(h *harness) {
		h.event("greeting", "Hello", "abc")
	})
	stream(t, "fields with extra leading space", []string{"event:  greeting\ndata:  Hello\n\n"}, func(h *harness) {
		h.event(" greeting", " Hello", "")
	})
	stream(t, "field with no colon", []string{"data\n\ndata\ndata\n\n"}, func(h *harness) {
		h.event("", "", "")
		h.event("", "\n", "")
	})
	stream(t, "multi-byte characters", []string{"data: €豆腐😀\n\n"}, func(h *harness) {
		h.event("", "€豆腐😀", "")
	})
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("data: %d\n\n", i))
	}
	stream(t, "many messages in rapid succession", many, func(h *harness) {
		for i := range 100 {
			h.event("", fmt.Sprint(i), "")
		}
	})
	stream(t, "multi-byte characters sent in single-byte pieces", strings.Split("data: €豆腐😀\n\n", ""), func(h *harness) {
		h.event("", "€豆腐😀", "")
	})
}

// bytesOf splits s into single bytes, so that multi-byte characters are cut.
func bytesOf(s string) []string {
	out := make([]string, len(s))
	for i := 0; i < len(s); i++ { // bytes, not runes
		out[i] = s[i : i+1]
	}
	return out
}

func TestBOMHandling(t *testing.T) {
	t.Parallel()
	const bom = "\xEF\xBB\xBF"
	stream(t, "BOM at start of stream is stripped", []string{bom + "data: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "BOM stripped before first event with type and ID", []string{bom + "event: greeting\nid: 1\ndata: Hello\n\n"}, func(h *harness) {
		h.event("greeting", "Hello", "1")
	})
	stream(t, "BOM stripped with multiple messages", []string{bom + "data: One\n\ndata: Two\n\n"}, func(h *harness) {
		h.event("", "One", "")
		h.event("", "Two", "")
	})
	stream(t, "BOM only stripped at stream start, not from later data", []string{"data: First\n\n", "data: " + bom + "Second\n\n"}, func(h *harness) {
		h.event("", "First", "")
		h.event("", "\uFEFFSecond", "")
	})
	stream(t, "BOM split across first two chunks", []string{bom[:2], bom[2:] + "data: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "BOM split byte by byte across chunks", append(bytesOf(bom), "data: Hello\n\n"), func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "only first BOM at start is stripped", []string{bom + "data: " + bom + "Hello\n\n"}, func(h *harness) {
		h.event("", "\uFEFFHello", "")
	})
	stream(t, "no BOM - baseline test", []string{"data: Hello\n\n"}, func(h *harness) {
		h.event("", "Hello", "")
	})
	stream(t, "BOM with multi-line data", []string{bom + "data: Line1\ndata: Line2\n\n"}, func(h *harness) {
		h.event("", "Line1\nLine2", "")
	})
	stream(t, "BOM with comment at start", []string{bom + ":comment\ndata: Hello\n\n"}, func(h *harness) {
		h.comment("comment")
		h.event("", "Hello", "")
	})
	stream(t, "BOM does not affect empty data field", []string{bom + "data:\n\n"}, func(h *harness) {
		h.event("", "", "")
	})
}

func TestComments(t *testing.T) {
	t.Parallel()
	stream(t, "single comment", []string{":Hello\n"}, func(h *harness) {
		h.comment("Hello")
	})
	stream(t, "two comments in a row", []string{":Hello\n", ":World\n"}, func(h *harness) {
		h.comment("Hello")
		h.comment("World")
	})
	stream(t, "comment before event", []string{":Hello\n", "data: Hello\n\n"}, func(h *harness) {
		h.comment("Hello")
		h.event("", "Hello", "")
	})
	stream(t, "comment after event", []string{"data: Hello\n\n", ":Hello\n"}, func(h *harness) {
		h.event("", "Hello", "")
		h.comment("Hello")
	})
}

func TestLinefeeds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		lines  []string // joined by the separator
		events []string // the data of the events
	}{
		{"one-line event", []string{"data: Hello", ""}, []string{"Hello"}},
		{"one-line event + two-line event", []string{"data: Hello", "", "data: Hello", "data: World", ""}, []string{"Hello", "Hello\nWorld"}},
		{"3-line event with empty line at beginning", []string{"data:", "data: Hello", "data: World", ""}, []string{"\nHello\nWorld"}},
		{"3-line event with empty line in middle", []string{"data: Hello", "data:", "data: World", ""}, []string{"Hello\n\nWorld"}},
		{"ignores 1 extra empty line", []string{"data: Hello", "", "", "data: World", ""}, []string{"Hello", "World"}},
		{"ignores 2 extra empty lines", []string{"data: Hello", "", "", "", "data: World", ""}, []string{"Hello", "World"}},
	}
	for _, sep := range []struct{ name, s string }{{"LF", "\n"}, {"CRLF", "\r\n"}, {"CR", "\r"}} {
		for _, c := range cases {
			body := strings.Join(c.lines, sep.s) + sep.s
			for _, split := range []struct {
				name  string
				parts []string
			}{
				{"in one chunk", []string{body}},
				{"in 1-character chunks", bytesOf(body)},
				{"in 2-character chunks", chunks2(body)},
			} {
				stream(t, sep.name+" separator/"+c.name+" "+split.name, split.parts, func(h *harness) {
					for _, data := range c.events {
						h.event("", data, "")
					}
				})
			}
		}
	}
	stream(t, "CRLF where CR is end of 1 chunk", []string{"data: Hello\r", "\ndata: World\r", "\n\r\ndata: OK\r", "\n", "\r", "\n"}, func(h *harness) {
		h.event("", "Hello\nWorld", "")
		h.event("", "OK", "")
	})
}

func chunks2(s string) []string {
	var out []string
	for len(s) > 2 {
		out = append(out, s[:2])
		s = s[2:]
	}
	return append(out, s)
}

func TestHTTPBehavior(t *testing.T) {
	t.Parallel()
	run(t, "default method and headers", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept()
		r := c.req
		if r.Method != http.MethodGet || r.Header.Get("Accept") != "text/event-stream" ||
			r.Header.Get("Cache-Control") != "no-cache" || len(r.Header.Values("Last-Event-Id")) != 0 {
			h.t.Fatalf("%s, headers %v", r.Method, r.Header)
		}
		c.ok()
	})
	run(t, "204 halts re-connection attempts", fast, nil, client.Options{}, func(h *harness) {
		h.accept().respond(http.StatusNoContent)
		if err := h.ended(); !errors.Is(err, client.ErrNoContent) {
			h.t.Fatalf("got %v", err)
		}
		h.quiet(10 * time.Second)
		if n := h.requests(); n != 1 {
			h.t.Fatalf("%d requests", n)
		}
	})
	for _, code := range []int{301, 307} {
		run(t, fmt.Sprintf("client follows %d redirect", code), fast, nil, client.Options{}, func(h *harness) {
			h.accept().respond(code, "Location", "/elsewhere")
			c := h.accept()
			if c.req.URL.Path != "/elsewhere" {
				h.t.Fatalf("followed to %s", c.req.URL)
			}
			c.ok().send("data: Hello\n\n")
			h.event("", "Hello", "")
		})
		for _, loc := range []struct {
			name string
			kv   []string
		}{{"empty", []string{"Location", ""}}, {"missing", nil}} {
			run(t, fmt.Sprintf("client handles %s Location header with %d status", loc.name, code), fast, nil, client.Options{}, func(h *harness) {
				h.accept().respond(code, loc.kv...)
				var se *client.StatusError
				if err := h.ended(); !errors.As(err, &se) || se.StatusCode != code {
					h.t.Fatalf("got %v", err)
				}
			})
		}
	}
	run(t, "custom headers", fast, func(t *testing.T) *http.Request {
		r := get(t, baseURL)
		r.Header.Set("header-name-1", "value-1")
		r.Header.Set("Authorization", "Bearer x")
		return r
	}, client.Options{}, func(h *harness) {
		c := h.accept()
		if c.req.Header.Get("Header-Name-1") != "value-1" || c.req.Header.Get("Authorization") != "Bearer x" {
			h.t.Fatalf("headers %v", c.req.Header)
		}
		c.ok()
	})
	for _, method := range []string{"POST", "REPORT"} {
		run(t, method+" request", fast, func(t *testing.T) *http.Request {
			r, _ := http.NewRequest(method, baseURL, strings.NewReader(`{"hello": "world"}`))
			return r
		}, client.Options{}, func(h *harness) {
			c := h.accept()
			if c.req.Method != method || c.body != `{"hello": "world"}` {
				h.t.Fatalf("%s %q", c.req.Method, c.body)
			}
			c.ok()
		})
	}
	run(t, "sends Last-Event-Id in initial request if set", fast, nil, client.Options{LastEventID: "abc"}, func(h *harness) {
		c := h.accept()
		if got := c.req.Header.Get("Last-Event-ID"); got != "abc" {
			h.t.Fatalf("Last-Event-ID %q", got)
		}
		c.ok()
	})
}

func TestReconnection(t *testing.T) {
	t.Parallel()
	run(t, "caller can trigger a restart", fast, nil, client.Options{}, func(h *harness) {
		h.accept().ok().send("id: 1\ndata: Hello\n\n")
		h.event("", "Hello", "1")
		h.stream.Restart()
		c := h.accept()
		if c.req.Header.Get("Last-Event-ID") != "1" {
			h.t.Fatalf("restart without Last-Event-ID: %v", c.req.Header)
		}
		c.ok().send("data: again\n\n")
		h.event("", "again", "1") // and no error in between
	})
	run(t, "sends ID of last received event", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("id: abc\ndata: Hello\n\n")
		h.event("", "Hello", "abc")
		c.end()
		h.dropped()
		if got := h.accept().ok().req.Header.Get("Last-Event-ID"); got != "abc" {
			h.t.Fatalf("Last-Event-ID %q", got)
		}
	})
	run(t, "sends ID of last received event that had an ID if later events did not", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("id: abc\ndata: Hello\n\n", "data: World\n\n")
		h.event("", "Hello", "abc")
		h.event("", "World", "abc")
		c.end()
		h.dropped()
		if got := h.accept().ok().req.Header.Get("Last-Event-ID"); got != "abc" {
			h.t.Fatalf("Last-Event-ID %q", got)
		}
	})
	run(t, "last event ID can be explicitly overridden with an empty value", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("id: abc\ndata: Hello\n\n", "id:\ndata: World\n\n")
		h.event("", "Hello", "abc")
		h.event("", "World", "")
		c.end()
		h.dropped()
		if vs := h.accept().ok().req.Header.Values("Last-Event-Id"); len(vs) != 0 {
			h.t.Fatalf("Last-Event-ID %q", vs)
		}
	})
	run(t, "resends request body if any when reconnecting", fast, func(t *testing.T) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, baseURL, strings.NewReader("the body"))
		return r
	}, client.Options{}, func(h *harness) {
		c := h.accept().ok()
		c.end()
		h.dropped()
		if c := h.accept().ok(); c.body != "the body" || c.req.Method != http.MethodPost {
			h.t.Fatalf("%s %q", c.req.Method, c.body)
		}
	})
	run(t, "can set read timeout", client.Client{Retry: -1, Jitter: -1, ReadTimeout: 500 * time.Millisecond}, nil, client.Options{}, func(h *harness) {
		h.accept().ok().send("data: Hello\n\n")
		h.event("", "Hello", "")
		start := time.Now()
		h.dropped()
		if waited := time.Since(start); waited != 500*time.Millisecond {
			h.t.Fatalf("dropped after %v of silence", waited)
		}
		h.accept().ok().send("data: again\n\n")
		h.event("", "again", "")
	})
	run(t, "discards partial messages on retry", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("id: abc\ndata: Hello\n\n", "id: def\ndata: Goodbye")
		h.event("", "Hello", "abc")
		c.end()
		h.dropped()
		c = h.accept()
		if got := c.req.Header.Get("Last-Event-ID"); got != "abc" {
			h.t.Fatalf("Last-Event-ID %q", got)
		}
		c.ok().send("data: We meet again\n\n")
		h.event("", "We meet again", "abc")
	})
	run(t, "new connection established after breaking previous is functional", fast, nil, client.Options{}, func(h *harness) {
		c := h.accept().ok().send("data: first\n\n")
		h.event("", "first", "")
		c.end()
		h.dropped()
		h.accept().ok().send("data: second\n\n")
		h.event("", "second", "")
	})
}
