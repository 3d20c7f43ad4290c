package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/sse"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/pebblestore"
)

// childEnv, when set, makes the test binary run herald with the arguments
// it holds (one per line) instead of the tests: the crash test's server.
const childEnv = "HERALD_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, strings.Split(args, "\n"), os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const crashKey = "the publisher key of the crash test"

// child is a herald serve in a process of its own.
type child struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer // what it wrote there so far
}

func startChild(t *testing.T, store, dir string) *child {
	t.Helper()
	return runChild(t, nil, "serve", "-store", store, "-addr", "127.0.0.1:0", "-data-dir", dir,
		"-publisher-jwt-key", crashKey, "-anonymous", "-log-level", "error")
}

// runChild runs herald with args in a process of its own, through the
// command wrap if there is one (the program and its arguments follow it),
// and returns once it listens.
func runChild(t *testing.T, wrap []string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := slices.Concat(wrap, []string{exe, "-test.run=^$"})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, "\n"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	at := regexp.MustCompile(`the hub is at (http://[0-9.:]+)/`)
	lines := bufio.NewScanner(stderr)
	found := make(chan string, 1)
	written := &syncBuffer{}
	go func() {
		for lines.Scan() {
			_, _ = written.Write(append(lines.Bytes(), '\n'))
			if m := at.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case base, ok := <-found:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("the child exited: %v\n%s", cmd.ProcessState, written)
		}
		return &child{cmd: cmd, base: base, stderr: written}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child did not start")
	}
	return nil
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill() // SIGKILL: no shutdown of any kind
	_ = c.cmd.Wait()
}

func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(os.Interrupt)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("the child's graceful stop: %v", err)
	}
}

// Publishers publish without pause while the server is killed with SIGKILL
// at random moments, over and over. After each restart, every publication
// the server acknowledged is in the history, in the order each publisher
// made them, exactly once, at contiguous positions. Both stores on disk.
func TestKillWhilePublishing(t *testing.T) {
	for _, store := range []string{"pebble", "bolt"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			killWhilePublishing(t, store)
		})
	}
}

func killWhilePublishing(t *testing.T, store string) {
	dir := t.TempDir()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(crashKey))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const publishers, rounds = 6, 12
	acked := make([][]string, publishers) // each publisher's acknowledged IDs, in order
	client := &http.Client{Timeout: 5 * time.Second}
	for round := range rounds {
		c := startChild(t, store, dir)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for p := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%02d-p%d-%06d", round, p, i)
					form := url.Values{"topic": {fmt.Sprint("t/", p)}, "data": {id}, "id": {id}}
					req, _ := http.NewRequest(http.MethodPost, c.base+hub.Path, strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						return // killed
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						return // killed mid-answer
					}
					if string(body) != id {
						t.Errorf("acknowledged %q for %q", body, id)
						return
					}
					acked[p] = append(acked[p], id)
				}
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		c.kill()
		close(stop)
		wg.Wait()
	}

	var l hub.Log
	if store == "pebble" {
		l, err = pebblestore.Open(pebblestore.Config{Dir: filepath.Join(dir, "history")})
	} else {
		l, err = boltstore.Open(boltstore.Config{Path: filepath.Join(dir, "history.db")})
	}
	if err != nil {
		t.Fatal(err)
	}
	first, next, _ := l.Bounds(context.Background())
	evs, err := l.Read(context.Background(), first, int(next-first))
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	at := make(map[string]uint64, len(evs))
	for i, ev := range evs {
		if ev.Pos != first+uint64(i) {
			t.Fatalf("a gap before position %d", ev.Pos)
		}
		if _, dup := at[ev.ID]; dup {
			t.Fatalf("%s is in the history twice", ev.ID)
		}
		at[ev.ID] = ev.Pos
	}
	total := 0
	for p, ids := range acked {
		var last uint64
		for _, id := range ids {
			pos, ok := at[id]
			if !ok {
				t.Fatalf("publisher %d: %s was acknowledged, and is not in the history", p, id)
			}
			if pos <= last {
				t.Fatalf("publisher %d: %s is at %d, before the publication made before it", p, id, pos)
			}
			last = pos
		}
		total += len(ids)
	}
	t.Logf("%d rounds, %d acknowledged publications, %d events in the history", rounds, total, len(evs))
	if total == 0 {
		t.Fatal("nothing was acknowledged")
	}

	// Resume across the restart: from an acknowledged event, a subscriber
	// gets exactly the history that follows it.
	c := startChild(t, store, dir)
	defer c.stop(t)
	from := evs[len(evs)/2]
	resp, err := http.Get(c.base + hub.Path + "?topic=*&lastEventID=" + url.QueryEscape(from.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Last-Event-ID"); got != from.ID {
		t.Fatalf("Last-Event-ID %q, want %q", got, from.ID)
	}
	d := sse.NewDecoder(resp.Body)
	for _, want := range evs[len(evs)/2+1:] {
		var ev sse.Event
		if err := d.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != want.ID {
			t.Fatalf("resumed: got %s, want %s", ev.ID, want.ID)
		}
	}
}
