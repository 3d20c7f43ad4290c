// Package clitest runs "herald serve" in process for tests: the daemon's
// own tests, the web page's and the browser tests share it, so that they
// start, wait for and stop the daemon the same way.
package clitest

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/internal/cli"
)

// Herald is a "herald serve" run by a test.
type Herald struct {
	Addr   string  // the address it listens on, host:port
	Base   string  // http://Addr
	Stderr *Buffer // what it wrote to stderr so far

	stop func() int
}

// Serve runs "herald serve -addr 127.0.0.1:0 -data-dir <a temporary
// directory>" followed by args, with env as its whole environment (nil for
// none), until Stop or the end of the test, and waits until it listens.
// It fails the test if the command exits or does not listen within 30 s.
// When the test fails, the command's stderr is logged.
func Serve(t testing.TB, env map[string]string, args ...string) *Herald {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Herald{Stderr: &Buffer{}}
	addr, code := make(chan string, 1), make(chan int, 1)
	args = append([]string{"serve", "-addr", "127.0.0.1:0", "-data-dir", t.TempDir()}, args...)
	go func() {
		code <- cli.Run(ctx, args, cli.Env{
			Stdout:    io.Discard,
			Stderr:    h.Stderr,
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			Listening: func(a string) { addr <- a },
		})
	}()
	select {
	case h.Addr = <-addr:
		h.Base = "http://" + h.Addr
	case c := <-code:
		cancel()
		t.Fatalf("herald serve exited with %d: %s", c, h.Stderr)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("herald serve did not listen within 30 s: %s", h.Stderr)
	}
	var once sync.Once
	var exit int
	h.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case exit = <-code:
			case <-time.After(30 * time.Second):
				t.Errorf("herald serve did not stop within 30 s: %s", h.Stderr)
			}
		})
		return exit
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("herald serve's stderr:\n%s", h.Stderr)
		}
	})
	return h
}

// Stop stops the command as SIGTERM does, waits for it, and returns its
// exit code. Later calls return the same code.
func (h *Herald) Stop() int { return h.stop() }

// Buffer is a bytes.Buffer safe to read while a command writes to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
