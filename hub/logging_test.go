package hub_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/logging"
	"github.com/herald-sse/herald/sse"
)

// lines is a log's output, safe to read while the hub writes it.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON records logged so far, failing the test on a
// line that is not one.
func (l *lines) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	out := l.b.String()
	l.mu.Unlock()
	var recs []map[string]any
	for line := range strings.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		recs = append(recs, rec)
	}
	return recs
}

// find returns the first record with message msg, or nil.
func find(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// A subscription, a publication, a refusal and the subscriber's departure
// each log one line, at debug but the refusal at info, with what tells the
// story; durations are text.
func TestLogsTellTheStory(t *testing.T) {
	t.Parallel()
	var out lines
	th := newTestHub(t, hub.Config{Heartbeat: -1, Logger: logging.New(&out, "json", "debug")})
	s := th.subscribe(t, q("topic", "/books/1"), nil)
	id := th.publish(t, "/books/1", "hello")
	s.expect(t, "hello")
	if status, _ := th.post(t, url.Values{"topic": {"/books/1"}}, ""); status != http.StatusUnauthorized {
		t.Fatalf("publish without a token: %d", status)
	}
	s.close()
	waitFor(t, "the subscriber to leave", func() bool { return find(out.records(t), "hub: subscriber left") != nil })

	recs := out.records(t)
	wire, err := sse.Event{ID: id, Data: "hello"}.AppendText(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		msg   string
		level string
		attrs map[string]any // attributes with a known value
		some  []string       // attributes that must be there
	}{
		{"hub: subscriber joined", "DEBUG",
			map[string]any{"topics": []any{"/books/1"}, "transport": "http1.1"},
			[]string{"subscriber", "remote"}},
		{"hub: published", "DEBUG",
			map[string]any{"id": id, "topics": []any{"/books/1"}, "private": false, "pos": float64(1)},
			nil},
		{"hub: request refused", "INFO",
			map[string]any{"status": float64(401), "error": "missing_token", "method": "POST", "path": hub.Path},
			[]string{"remote", "message"}},
		{"hub: subscriber left", "DEBUG",
			map[string]any{"reason": "client closed the connection", "events": float64(1), "bytes": float64(len(wire))},
			[]string{"subscriber", "remote", "duration"}},
	} {
		r := find(recs, c.msg)
		if r == nil {
			t.Errorf("no %q line in\n%s", c.msg, out.b.String())
			continue
		}
		if r["level"] != c.level {
			t.Errorf("%q at %v, want %s", c.msg, r["level"], c.level)
		}
		for k, want := range c.attrs {
			got, _ := json.Marshal(r[k])
			if w, _ := json.Marshal(want); string(got) != string(w) {
				t.Errorf("%q: %s = %s, want %s", c.msg, k, got, w)
			}
		}
		for _, k := range c.some {
			if v, ok := r[k].(string); !ok || v == "" {
				t.Errorf("%q: %s = %v, want some text", c.msg, k, r[k])
			}
		}
	}
	if r := find(recs, "hub: subscriber left"); r != nil {
		if d, err := time.ParseDuration(r["duration"].(string)); err != nil || d <= 0 {
			t.Errorf("duration %v: %v", r["duration"], err)
		}
	}
}

// At info level the hub logs nothing for a subscription or a publication.
func TestNoDebugLinesAtInfo(t *testing.T) {
	t.Parallel()
	var out lines
	th := newTestHub(t, hub.Config{Heartbeat: -1, Logger: logging.New(&out, "json", "info")})
	s := th.subscribe(t, q("topic", "/a"), nil)
	th.publish(t, "/a", "x")
	s.expect(t, "x")
	s.close()
	waitFor(t, "the subscriber to leave", func() bool { return th.Stats().Subscribers == 0 })
	if recs := out.records(t); len(recs) != 0 {
		t.Fatalf("%d lines at info: %v", len(recs), recs)
	}
}
