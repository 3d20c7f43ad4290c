package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/sse"
)

// What the client offers beyond a browser's EventSource.

func TestBackoff(t *testing.T) {
	t.Parallel()
	c := client.Client{Retry: 100 * time.Millisecond, Jitter: -1, Backoff: 2, MaxRetry: 500 * time.Millisecond}
	run(t, "grows while attempts fail, up to the cap, and an event resets it", c, nil, client.Options{}, func(h *harness) {
		want := []time.Duration{100, 200, 400, 500, 500}
		for _, w := range want {
			h.accept().ok().end() // a connection that delivers nothing
			if d := h.dropped(); d != w*time.Millisecond {
				h.t.Fatalf("delay %v, want %v", d, w*time.Millisecond)
			}
		}
		conn := h.accept().ok().send("data: at last\n\n")
		h.event("", "at last", "")
		conn.end()
		if d := h.dropped(); d != 100*time.Millisecond {
			h.t.Fatalf("delay %v after an event, want the initial 100ms", d)
		}
	})
	run(t, "starts from the server's retry", c, nil, client.Options{}, func(h *harness) {
		conn := h.accept().ok().send("retry: 50\ndata: x\n\n")
		h.event("", "x", "")
		conn.end()
		for _, w := range []time.Duration{50, 50, 100, 200} {
			if d := h.dropped(); d != w*time.Millisecond {
				h.t.Fatalf("delay %v, want %v", d, w*time.Millisecond)
			}
			h.accept().ok().end()
		}
	})
}

func TestJitter(t *testing.T) {
	t.Parallel()
	c := client.Client{Retry: time.Second, Jitter: 0.5}
	run(t, "shortens the delay by up to the fraction", c, nil, client.Options{}, func(h *harness) {
		seen := map[time.Duration]bool{}
		for range 20 {
			h.accept().ok().end()
			start := time.Now()
			d := h.dropped()
			if d < 500*time.Millisecond || d > time.Second {
				h.t.Fatalf("delay %v outside [500ms, 1s]", d)
			}
			seen[d] = true
			h.accept()
			if waited := time.Since(start); waited != d {
				h.t.Fatalf("waited %v, announced %v", waited, d)
			}
			h.stream.Restart()
		}
		if len(seen) < 10 {
			h.t.Fatalf("%d distinct delays in 20: not random", len(seen))
		}
	})
}

func TestReadTimeout(t *testing.T) {
	t.Parallel()
	c := client.Client{Retry: -1, Jitter: -1, ReadTimeout: time.Second}
	run(t, "comments keep a connection alive", c, nil, client.Options{}, func(h *harness) {
		conn := h.accept().ok()
		for range 5 {
			time.Sleep(900 * time.Millisecond)
			conn.send(":\n")
			h.comment("")
		}
		h.quiet(900 * time.Millisecond)
		h.dropped() // at one second of silence
		h.accept().ok()
	})
}

func TestLongLine(t *testing.T) {
	t.Parallel()
	half := bigString(5 << 20)
	c := client.Client{Retry: -1, Jitter: -1, MaxEventSize: 8 << 20}
	run(t, "an event larger than MaxEventSize drops the connection", c, nil, client.Options{}, func(h *harness) {
		h.accept().ok().send("data: "+half, half+"\n\n")
		if d := h.dropped(); d != 0 {
			h.t.Fatalf("delay %v", d)
		}
		h.accept().ok().send("data: small\n\n")
		h.event("", "small", "")
	})
}

// A real server on loopback: the stream ends with its context, and
// leaving a loop over Events closes the connection.
func TestContextAndBreak(t *testing.T) {
	t.Parallel()
	gone := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := sse.NewStream(w, r, sse.StreamConfig{})
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.Send(sse.Event{Data: "hello"})
		<-r.Context().Done()
		gone <- struct{}{}
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)

	ctx, cancel := context.WithCancel(context.Background())
	s := new(client.Client).Connect(ctx, req, client.Options{})
	if ev, err := s.Next(); err != nil || ev.Data != "hello" {
		t.Fatalf("%+v %v", ev, err)
	}
	cancel()
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived the context")
	}

	s = new(client.Client).Connect(context.Background(), req, client.Options{})
	for ev, err := range s.Events() {
		if err != nil || ev.Data != "hello" {
			t.Fatalf("%+v %v", ev, err)
		}
		break
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived the loop")
	}
	if _, err := s.Next(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after the loop: %v", err)
	}

	// Close from another goroutine interrupts a Next that waits.
	s = new(client.Client).Connect(context.Background(), req, client.Options{})
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, func() { s.Close() })
	if _, err := s.Next(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next interrupted by Close: %v", err)
	}
}

// A refused connection is a drop, retried; each attempt is one error.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	s := (&client.Client{Retry: time.Millisecond}).Connect(context.Background(), req, client.Options{})
	defer s.Close()
	for range 3 {
		_, err := s.Next()
		var d *client.DropError
		if !errors.As(err, &d) {
			t.Fatalf("got %v, want a drop", err)
		}
	}
}
