package sse_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/herald-sse/herald/sse"
)

func serveEvents(t *testing.T, w http.ResponseWriter, r *http.Request) {
	s, err := sse.NewStream(w, r, sse.StreamConfig{Retry: 3 * time.Second})
	if err != nil {
		t.Error(err)
		return
	}
	defer s.Close()
	if err := s.Send(sse.Event{ID: "1", Data: "one"}); err != nil {
		t.Error(err)
	}
	if err := s.Comment("between"); err != nil {
		t.Error(err)
	}
	if err := s.Send(sse.Event{ID: "2", Type: "t", Data: "two"}); err != nil {
		t.Error(err)
	}
}

func TestStreamOverHTTP(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				serveEvents(t, w, r)
			}))
			if proto == "HTTP/2" {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)

			req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if !strings.HasPrefix(resp.Proto, proto) || resp.StatusCode != http.StatusOK {
				t.Fatalf("got %s %s", resp.Proto, resp.Status)
			}
			h := resp.Header
			if h.Get("Content-Type") != "text/event-stream" || h.Get("X-Accel-Buffering") != "no" ||
				!strings.Contains(h.Get("Cache-Control"), "no-cache") {
				t.Errorf("headers: %v", h)
			}
			if got, want := h.Get("Connection") == "keep-alive", proto == "HTTP/1.1"; got != want {
				t.Errorf("Connection header %q on %s", h.Get("Connection"), proto)
			}
			d := sse.NewDecoder(resp.Body)
			var got []sse.Event
			for e, err := range d.Events() {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			// The retry field shares the first event's block.
			want := []sse.Event{{ID: "1", Data: "one", Retry: 3 * time.Second}, {ID: "2", Type: "t", Data: "two"}}
			if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("events %+v, want %+v", got, want)
			}
			if r, _ := d.Retry(); r != 3*time.Second {
				t.Errorf("retry %v, want 3s", r)
			}
		})
	}
}

// plainWriter hides the Flush of the recorder it wraps, as some middleware
// does.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

func TestStreamNeedsFlusher(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	_, err := sse.NewStream(plainWriter{rec}, httptest.NewRequest("GET", "/", nil), sse.StreamConfig{Retry: time.Second})
	if !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("got %v, want http.ErrNotSupported", err)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" || rec.Code != http.StatusOK || rec.Flushed {
		t.Fatalf("wrote something: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
}

// syncRecorder is a ResponseRecorder safe to read while a heartbeat writes.
type syncRecorder struct {
	mu        sync.Mutex
	rec       *httptest.ResponseRecorder
	deadlines []time.Time
	fail      error
}

func newSyncRecorder() *syncRecorder { return &syncRecorder{rec: httptest.NewRecorder()} }

func (s *syncRecorder) Header() http.Header { return s.rec.Header() }
func (s *syncRecorder) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.WriteHeader(code)
}
func (s *syncRecorder) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	return s.rec.Write(b)
}
func (s *syncRecorder) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Flush()
}
func (s *syncRecorder) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadlines = append(s.deadlines, t)
	return nil
}
func (s *syncRecorder) body() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Body.String()
}

func TestStreamHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rec := newSyncRecorder()
		s, err := sse.NewStream(rec, httptest.NewRequestWithContext(ctx, "GET", "/", nil), sse.StreamConfig{Heartbeat: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		expect := func(when, want string) {
			t.Helper()
			synctest.Wait()
			if got := rec.body(); got != want {
				t.Fatalf("%s: body %q, want %q", when, got, want)
			}
		}
		time.Sleep(15*time.Second - time.Nanosecond)
		expect("before the first beat", "")
		time.Sleep(time.Nanosecond)
		expect("at 15s", ":\n")
		time.Sleep(5 * time.Second)
		if err := s.Send(sse.Event{Data: "x"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		expect("at 30s, 10s after an event", ":\ndata: x\n\n")
		time.Sleep(5 * time.Second)
		expect("at 35s", ":\ndata: x\n\n:\n")
		cancel()
		time.Sleep(time.Minute)
		expect("after the request ended", ":\ndata: x\n\n:\n")
		if err := s.Send(sse.Event{Data: "y"}); !errors.Is(err, sse.ErrStreamClosed) {
			t.Fatalf("Send after the request ended: %v", err)
		}
	})
}

func TestStreamWriteDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newSyncRecorder()
		s, err := sse.NewStream(rec, httptest.NewRequest("GET", "/", nil), sse.StreamConfig{WriteTimeout: 3 * time.Second, Heartbeat: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		time.Sleep(time.Hour)
		start := time.Now()
		if err := s.Send(sse.Event{Data: "x"}); err != nil {
			t.Fatal(err)
		}
		if rec.body() != "data: x\n\n" {
			t.Fatalf("body %q: the negative heartbeat sent something", rec.body())
		}
		if n := len(rec.deadlines); n != 2 || !rec.deadlines[1].Equal(start.Add(3*time.Second)) {
			t.Fatalf("deadlines %v, want one per write, the last at %v", rec.deadlines, start.Add(3*time.Second))
		}
	})
}

func TestStreamWriteError(t *testing.T) {
	t.Parallel()
	rec := newSyncRecorder()
	s, err := sse.NewStream(rec, httptest.NewRequest("GET", "/", nil), sse.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(sse.Event{ID: "a\nb"}); !errors.Is(err, sse.ErrInvalidID) {
		t.Fatalf("invalid event: %v", err)
	}
	gone := errors.New("client gone")
	rec.mu.Lock()
	rec.fail = gone
	rec.mu.Unlock()
	for range 2 {
		if err := s.Send(sse.Event{Data: "x"}); err != gone {
			t.Fatalf("got %v, want the write error", err)
		}
	}
	if err := s.Comment(""); err != gone {
		t.Fatalf("Comment: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("Close is not idempotent")
	}
}

func TestSetHeaders(t *testing.T) {
	t.Parallel()
	for _, major := range []int{1, 2, 3} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor = major
		sse.SetHeaders(rec, r)
		var b bytes.Buffer
		_ = rec.Header().Write(&b)
		if (rec.Header().Get("Connection") != "") != (major == 1) {
			t.Errorf("HTTP/%d: %s", major, b.String())
		}
	}
}
