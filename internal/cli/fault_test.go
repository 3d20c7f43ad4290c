package cli_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/internal/tmpfs"
	"github.com/herald-sse/herald/sse"
	"github.com/herald-sse/herald/store/pebblestore"
)

// While serve opens its history it is alive but not ready, and refuses
// the hub's requests for a moment; the history is opened after the
// address is taken, so a taken port fails before the history is touched.
func TestServeStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan string, 1)
	code := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		code <- cli.Run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir, "-publisher-jwt-key", crashKey}, cli.Env{
			Stdout: io.Discard,
			Stderr: stderr,
			BeforeOpen: func(addr string) {
				base := "http://" + addr
				if c, body := get(t, base+"/healthz"); c != http.StatusOK {
					t.Errorf("/healthz while starting: %d %s", c, body)
				}
				if c, body := get(t, base+"/readyz"); c != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
					t.Errorf("/readyz while starting: %d %s", c, body)
				}
				resp, err := http.Post(base+hub.Path, "application/x-www-form-urlencoded", strings.NewReader("topic=a&data=b"))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"unavailable"`) {
					t.Errorf("a publication while starting: %d %s, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
				}
				if _, err := os.Stat(filepath.Join(dir, "history")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the history is there before it is opened: %v", err)
				}
			},
			Listening: func(addr string) { listening <- addr },
		})
	}()
	var base string
	select {
	case a := <-listening:
		base = "http://" + a
	case c := <-code:
		t.Fatalf("serve exited with %d: %s", c, stderr)
	}
	if c, body := get(t, base+"/readyz"); c != http.StatusOK {
		t.Fatalf("/readyz once started: %d %s", c, body)
	}
	cancel()
	if c := <-code; c != cli.ExitOK {
		t.Fatalf("exit %d: %s", c, stderr)
	}

	// A taken port: serve fails before it opens the history.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	other := t.TempDir()
	c, _, errOut := run(t, "serve", "-addr", taken.Addr().String(), "-data-dir", other, "-publisher-jwt-key", crashKey)
	if c == cli.ExitOK {
		t.Fatal("serve started on a taken port")
	}
	if _, err := os.Stat(filepath.Join(other, "history")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the history was opened for a taken port (%v): %s", err, errOut)
	}
}

// A second serve on a data directory in use says so, for each store.
func TestServeInUse(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"pebble", "bolt"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, _, _ = serve(t, nil, "-data-dir", dir, "-store", store)
			c, _, errOut := run(t, "serve", "-addr", "127.0.0.1:0", "-data-dir", dir, "-store", store)
			if c == cli.ExitOK || !strings.Contains(errOut, "in use by another herald process") || strings.Contains(errOut, "move it away") {
				t.Fatalf("exit %d: %s", c, errOut)
			}
		})
	}
}

// stream is a subscription whose comments and events a goroutine reads.
type stream struct {
	comments chan struct{}
	events   chan string // the IDs
}

func subscribeTo(t *testing.T, base, topic string) *stream {
	t.Helper()
	resp, err := http.Get(base + hub.Path + "?topic=" + url.QueryEscape(topic))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &stream{comments: make(chan struct{}, 1000), events: make(chan string, 1000)}
	go func() {
		defer close(s.events)
		d := sse.NewDecoder(resp.Body)
		d.OnComment = func(string) {
			select {
			case s.comments <- struct{}{}:
			default:
			}
		}
		for ev, err := range d.Events() {
			if err != nil {
				return
			}
			s.events <- ev.ID
		}
	}()
	return s
}

// A full disk under the default store (Pebble, on a small tmpfs): the
// publication that meets it, and each one after, is refused with 503
// history_unavailable at once; /readyz is 503 and says why, /healthz 200;
// a subscriber keeps its stream and its heartbeats. Once there is room the
// hub takes publications again and delivers them, with no restart. A
// SIGTERM during the fault completes. Every acknowledged event is in the
// history afterwards, in order.
func TestDiskFullServe(t *testing.T) {
	t.Parallel()
	dir := tmpfs.Mount(t, 32<<20)
	c := runChild(t, nil, "serve", "-addr", "127.0.0.1:0", "-data-dir", dir, "-publisher-jwt-key", crashKey,
		"-anonymous", "-heartbeat", "100ms", "-log-level", "error", "-shutdown-timeout", "10s")
	t.Cleanup(c.kill) // if the test fails before it stops
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(crashKey))
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribeTo(t, c.base, "t")
	var acked []string
	payload := strings.Repeat("x", 8<<10)
	post := func(id string) (int, string) {
		t.Helper()
		code, body := publish(t, c.base, tok, url.Values{"topic": {"t"}, "id": {id}, "data": {payload}})
		if code == http.StatusOK {
			acked = append(acked, id)
		}
		return code, body
	}
	fill := func() string {
		t.Helper()
		ballast := tmpfs.Fill(t, dir)
		code, body := http.StatusOK, ""
		for i := 0; code == http.StatusOK; i++ {
			if i == 1000 {
				t.Fatal("1,000 publications on a full disk succeeded")
			}
			code, body = post(fmt.Sprintf("b%d-%d", len(acked), i))
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"history_unavailable"`) {
			t.Fatalf("a publication on a full disk: %d %s", code, body)
		}
		if code, body := post("b-next"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"history_unavailable"`) {
			t.Fatalf("a publication after a failed one: %d %s", code, body)
		}
		return ballast
	}
	received := func(id string) {
		t.Helper()
		for got := range sub.events {
			if got == id {
				return
			}
		}
		t.Fatalf("the subscriber's stream ended before %s", id)
	}

	for i := range 5 {
		if code, body := post(fmt.Sprint("a", i)); code != http.StatusOK {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	ballast := fill()
	if code, body := get(t, c.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Fatalf("/readyz on a full disk: %d %s", code, body)
	}
	if code, _ := get(t, c.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz on a full disk: %d", code)
	}
	for len(sub.comments) > 0 {
		<-sub.comments
	}
	<-sub.comments // a heartbeat during the fault

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for {
		code, _ := get(t, c.base+"/readyz")
		if code == http.StatusOK {
			break
		}
		time.Sleep(20 * time.Millisecond) // the store retries within 10 s; a hang fails by the test's timeout
	}
	for i := range 3 {
		if code, body := post(fmt.Sprint("c", i)); code != http.StatusOK {
			t.Fatalf("a publication once there is room: %d %s", code, body)
		}
	}
	received("c2")

	ballast = fill()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM on a full disk: %v\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stderr.String(), "cannot store events") {
		t.Errorf("the fault is not in the log:\n%s", c.stderr)
	}

	// Opening it on the full disk fails, where Pebble's replay of its
	// log would retry without end.
	if l, err := pebblestore.Open(pebblestore.Config{Dir: filepath.Join(dir, "history")}); err == nil {
		l.Close()
		t.Error("opened the history on a full disk")
	} else if !strings.Contains(err.Error(), "no room") {
		t.Errorf("opening the history on a full disk: %v", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	l, err := pebblestore.Open(pebblestore.Config{Dir: filepath.Join(dir, "history")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	evs, err := l.Read(context.Background(), 1, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, e := range evs {
		switch {
		case i < len(acked) && e.ID == acked[i]:
			i++
		case !strings.HasPrefix(e.ID, "b"):
			t.Fatalf("an event never published: %s", e.ID)
		}
	}
	if i != len(acked) {
		t.Fatalf("%d of the %d acknowledged events, in order, in a history of %d", i, len(acked), len(evs))
	}
}
