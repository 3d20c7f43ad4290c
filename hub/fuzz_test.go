package hub_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// FuzzPublish posts arbitrary bodies: the hub answers with one of its
// documented statuses, never panics, and what it accepts a subscriber can
// read back.
func FuzzPublish(f *testing.F) {
	f.Add("topic=a&data=hello", "application/x-www-form-urlencoded")
	f.Add("topic=a&topic=b&id=x&type=t&retry=10&private=on&end", "application/x-www-form-urlencoded")
	f.Add("topic=%0a&id=%0d", "application/x-www-form-urlencoded")
	f.Add("topic=a&retry=-5&id=%23x", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add("%zz", "application/x-www-form-urlencoded")
	f.Add("{}", "application/json")
	key, _ := hub.NewKey("HS256", testKey)
	h, err := hub.New(hub.Config{PublisherKey: key, MaxTopics: 5, MaxBodySize: 1 << 12})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.Close() })
	tok := publisherToken(f)
	f.Fuzz(func(t *testing.T, body, ctype string) {
		req := httptest.NewRequest(http.MethodPost, hub.Path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			if rec.Body.Len() == 0 || !sse.ValidField(rec.Body.String()) {
				t.Fatalf("200 with id %q", rec.Body.String())
			}
		case 400, 403, 409, 413, 415:
		default:
			t.Fatalf("status %d for %q (%s)", rec.Code, body, ctype)
		}
	})
}

// FuzzSubscribe sends arbitrary subscription queries (as HEAD requests,
// which the hub answers without streaming): a documented status, no panic.
func FuzzSubscribe(f *testing.F) {
	f.Add("topic=a")
	f.Add("topic=https://example.com/{id}&topic=*&lastEventID=earliest")
	f.Add("topic={&topic={+x}&topic={/a,b}{?c*}")
	f.Add("authorization=garbage&topic=a")
	f.Add("topic=%ff%fe")
	h, err := hub.New(hub.Config{MaxSelectors: 5})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.Close() })
	f.Fuzz(func(t *testing.T, query string) {
		if !utf8.ValidString(query) || strings.ContainsAny(query, " #\x7f") || strings.ContainsFunc(query, func(r rune) bool { return r < 0x20 }) {
			return // not a request line a client could send
		}
		req, err := http.NewRequest(http.MethodHead, "http://hub"+hub.Path+"?"+query, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 204, 400, 401:
		default:
			t.Fatalf("status %d for %q", rec.Code, query)
		}
	})
}
