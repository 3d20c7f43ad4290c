package web_test

import (
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/internal/cli"
)

// syncBuffer is a buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// herald is a "herald serve" run by a test.
type herald struct {
	base   string // http://127.0.0.1:port
	token  string // the development setup's token, which may publish and subscribe anywhere
	stderr *syncBuffer
}

// serve runs "herald serve" with an in-memory history and the arguments,
// until the test ends. Without a key among args, it runs in development
// mode, and the token it prints is kept.
func serve(t *testing.T, args ...string) *herald {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &herald{stderr: &syncBuffer{}}
	addr := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- cli.Run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0", "-store", "memory"}, args...), cli.Env{
			Stdout:    io.Discard,
			Stderr:    h.stderr,
			LookupEnv: func(string) (string, bool) { return "", false },
			Listening: func(a string) { addr <- a },
		})
	}()
	select {
	case a := <-addr:
		h.base = "http://" + a
	case c := <-code:
		t.Fatalf("herald serve exited with %d: %s", c, h.stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("herald serve did not start within 30 s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(30 * time.Second):
			t.Error("herald serve did not stop within 30 s")
		}
	})
	if m := regexp.MustCompile(`(?m)^    (ey[\w-]+\.[\w-]+\.[\w-]+)$`).FindStringSubmatch(h.stderr.String()); m != nil {
		h.token = m[1]
	}
	return h
}
