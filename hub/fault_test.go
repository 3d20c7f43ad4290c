package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/hub"
)

// faultyLog is a MemoryLog whose appends fail, as those of a store whose
// disk is full, while a fault is set.
type faultyLog struct {
	*hub.MemoryLog
	fault atomic.Pointer[error]
}

var _ hub.HealthChecker = (*faultyLog)(nil)

func newFaultyLog() *faultyLog { return &faultyLog{MemoryLog: hub.NewMemoryLog(hub.MemoryLogConfig{})} }

func (l *faultyLog) set() {
	err := fmt.Errorf("%w: the disk is full; it retries", hub.ErrUnavailable)
	l.fault.Store(&err)
}

func (l *faultyLog) clear() { l.fault.Store(nil) }

func (l *faultyLog) Append(ctx context.Context, evs ...*hub.Event) error {
	if err := l.fault.Load(); err != nil {
		return *err
	}
	return l.MemoryLog.Append(ctx, evs...)
}

func (l *faultyLog) Healthy() error {
	if err := l.fault.Load(); err != nil {
		return *err
	}
	return nil
}

// While the history refuses appends, a publication is answered 503
// history_unavailable, by the handler and by Serve's fast path alike; the
// hub is not ready, and says why; subscribers keep their streams and their
// heartbeats. Once the log recovers, publications go through again, and
// shutdown completes.
func TestHistoryFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lg := newFaultyLog()
		defer lg.Close()
		key, _ := hub.NewKey("HS256", testKey)
		h, c := bubbleHub(t, hub.Config{Log: lg, PublisherKey: key, Heartbeat: 15 * time.Second, MaxLifetime: -1})
		w := watchStream(t, c, q("topic", "a"), nil)
		tok := publisherToken(t)
		post := func(data string) *http.Response {
			t.Helper()
			form := url.Values{"topic": {"a"}, "data": {data}}
			req, _ := http.NewRequest(http.MethodPost, "http://hub"+hub.Path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp
		}
		refused := func(resp *http.Response) {
			t.Helper()
			defer resp.Body.Close()
			var body struct{ Error, Message string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusServiceUnavailable || body.Error != "history_unavailable" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("a publication while the history fails: %d %+v, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
		}

		if resp := post("before"); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		lg.set()
		refused(post("during"))
		if _, err := h.Publish(context.Background(), hub.Update{Topics: []string{"a"}, Data: "during"}); !errors.Is(err, hub.ErrUnavailable) {
			t.Fatalf("Publish while the history fails: %v", err)
		}
		form := url.Values{"topic": {"a"}, "data": {"during"}}.Encode()
		plain := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", hub.Path, tok, len(form), form))
		var out []byte
		if !hub.AnswerPlain(h, plain, &out) || !bytes.HasPrefix(out, []byte("HTTP/1.1 503 ")) || !bytes.Contains(out, []byte(`"history_unavailable"`)) {
			t.Fatalf("the fast path's answer while the history fails: %q", out)
		}
		// Both refusals are counted by their code.
		if st := h.Stats(); st.Refused[hub.Refusal{Request: "publish", Code: "history_unavailable"}] != 2 {
			t.Fatalf("refusals counted: %v", st.Refused)
		}
		if err := h.Ready(context.Background()); !errors.Is(err, hub.ErrUnavailable) || !strings.Contains(err.Error(), "disk is full") {
			t.Fatalf("Ready while the history fails: %v", err)
		}

		time.Sleep(50 * time.Second)
		synctest.Wait()
		comments, events, ended := w.snapshot()
		if len(comments) < 4 || ended != 0 || len(events) != 1 {
			t.Fatalf("the subscriber while the history fails: comments at %v, events %v, ended %v", comments, events, ended)
		}

		lg.clear()
		if err := h.Ready(context.Background()); err != nil {
			t.Fatalf("Ready once the history recovered: %v", err)
		}
		if resp := post("after"); resp.StatusCode != http.StatusOK {
			t.Fatalf("a publication once the history recovered: %d", resp.StatusCode)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, events, _ := w.snapshot(); strings.Join(events, ",") != "before,after" {
			t.Fatalf("the subscriber's events %v", events)
		}
		lg.set() // shutdown completes while the history fails
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, _, ended := w.snapshot(); ended == 0 {
			t.Fatal("the subscriber's stream outlived the shutdown")
		}
		if err := h.Ready(context.Background()); !errors.Is(err, hub.ErrClosed) {
			t.Fatalf("Ready after Shutdown: %v", err)
		}
	})
}
