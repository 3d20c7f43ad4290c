//go:build unix

package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/sse"
)

// The flood test's bounds: a hub whose process may open floodFiles files
// gets floodConns connections, more than it can hold.
const (
	floodFiles = 128
	floodConns = 200
	// floodWait bounds every wait of the flood test for something that
	// should happen; only a hung hub reaches it.
	floodWait = 30 * time.Second
)

// A hub whose process may open 128 files is flooded with 200 connections,
// subscribers and publishers that keep theirs open. It stays up; its
// subscriber keeps getting events, through its publisher's connection;
// and once the flood's connections close, new subscribers are served
// again. With the default max-connections, the connections past it are
// answered 503; with no limit, accept fails with EMFILE and they wait.
func TestFlood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		refuses bool // past the limit, 503; else connections wait
	}{
		{"default max-connections", nil, true},
		{"no max-connections", []string{"-max-connections", "0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { flood(t, tc.args, tc.refuses) })
	}
}

func flood(t *testing.T, extra []string, refuses bool) {
	// sh's ulimit sets both limits: Go raises the soft limit to the hard
	// one when the process starts.
	limit := []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, floodFiles)}
	c := runChild(t, limit, append([]string{"serve", "-store", "memory", "-addr", "127.0.0.1:0",
		"-publisher-jwt-key", crashKey, "-anonymous", "-log-level", "warn",
		// Heartbeats are how the hub finds out that a subscriber left.
		"-heartbeat", "200ms"}, extra...)...)
	defer c.stop(t)
	addr := strings.TrimPrefix(c.base, "http://")
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(crashKey))
	if err != nil {
		t.Fatal(err)
	}

	// Before the flood: a subscriber, and a publisher that keeps its
	// connection.
	sub := dialFlood(t, addr, subscription("news"))
	if a := sub.answer(); a.status != http.StatusOK {
		t.Fatalf("subscribing before the flood: %d", a.status)
	}
	events := sub.events()
	pub := dialFlood(t, addr, "")
	publish := func(data string) {
		t.Helper()
		pub.send(t, publication(tok, "news", data))
		if a := pub.answer(); a.status != http.StatusOK {
			t.Fatalf("publishing %q: %d", data, a.status)
		}
		select {
		case ev := <-events:
			if ev.Data != data {
				t.Fatalf("the subscriber got %q, want %q", ev.Data, data)
			}
		case <-time.After(floodWait):
			t.Fatalf("the subscriber did not get %q", data)
		}
	}
	publish("before")

	// The flood: two subscribers for each publisher.
	conns := make([]*floodConn, floodConns)
	for i := range conns {
		req := subscription("flood")
		if i%3 == 2 {
			req = publication(tok, "flood", "x")
		}
		conns[i] = dialFlood(t, addr, req)
	}
	var ok, refused int
	if refuses {
		// Every connection gets its answer: served until the limit,
		// refused past it.
		for _, fc := range conns {
			switch a := fc.answer(); a.status {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable:
				if a.code != "too_many_connections" {
					t.Fatalf("a refusal with the error %q", a.code)
				}
				refused++
				fc.close() // as the answer's Connection: close asks
			default:
				t.Fatalf("a flood connection got %d (%s)", a.status, a.code)
			}
		}
		if refused == 0 || ok >= floodFiles {
			t.Fatalf("%d connections served, %d refused, of %d", ok, refused, floodConns)
		}
	} else {
		// Accept runs out of descriptors.
		eventually(t, "accept failing with EMFILE", func() bool {
			s := c.stderr.String()
			return strings.Contains(s, "accepting a connection failed") && strings.Contains(s, "too many open files")
		})
	}

	// During the flood: events still reach the subscriber, and a new
	// subscriber is refused or waits.
	publish("during")
	late := dialFlood(t, addr, subscription("news"))
	if refuses {
		if a := late.answer(); a.status != http.StatusServiceUnavailable {
			t.Fatalf("a new subscriber during the flood: %d", a.status)
		}
	}

	// The flood ends: new subscribers are served again, the one that
	// waited among them.
	for _, fc := range conns {
		fc.close()
	}
	if !refuses {
		if a := late.answer(); a.status != http.StatusOK {
			t.Fatalf("the subscriber that waited: %d", a.status)
		}
	}
	eventually(t, "a new subscriber served", func() bool {
		fresh := dialFlood(t, addr, subscription("news"))
		a := fresh.answer()
		if a.status != http.StatusOK {
			fresh.close()
			return false
		}
		late = fresh
		return true
	})
	lateEvents := late.events()
	publish("after")
	select {
	case ev := <-lateEvents:
		if ev.Data != "after" {
			t.Fatalf("the new subscriber got %q", ev.Data)
		}
	case <-time.After(floodWait):
		t.Fatal("the new subscriber got nothing")
	}
	t.Logf("flood: %d connections served, %d refused; the hub's log:\n%s", ok, refused, c.stderr)
}

// floodConn is a raw connection to the hub.
type floodConn struct {
	c      net.Conn
	br     *bufio.Reader
	stream io.Reader // the body of a subscription's answer
	once   sync.Once
}

// floodAnswer is a response's status and, for an error, its code.
type floodAnswer struct {
	status int
	code   string
}

// dialFlood connects to addr and sends req, if any.
func dialFlood(t *testing.T, addr, req string) *floodConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, floodWait)
	if err != nil {
		t.Fatal(err)
	}
	fc := &floodConn{c: c, br: bufio.NewReader(c)}
	t.Cleanup(fc.close)
	fc.send(t, req)
	return fc
}

func (fc *floodConn) send(t *testing.T, req string) {
	t.Helper()
	if _, err := io.WriteString(fc.c, req); err != nil {
		t.Fatal(err)
	}
}

// answer reads the next response's head, and the body but a stream's; a
// connection closed or silent for floodWait gives status 0.
func (fc *floodConn) answer() floodAnswer {
	_ = fc.c.SetReadDeadline(time.Now().Add(floodWait))
	defer func() { _ = fc.c.SetReadDeadline(time.Time{}) }()
	resp, err := http.ReadResponse(fc.br, nil)
	if err != nil {
		return floodAnswer{}
	}
	a := floodAnswer{status: resp.StatusCode}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		fc.stream = resp.Body
		return a
	}
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil {
		a.code = e.Error
	}
	return a
}

// events decodes the stream of a subscription answered 200.
func (fc *floodConn) events() <-chan sse.Event {
	ch := make(chan sse.Event, 16)
	go func() {
		defer close(ch)
		for ev, err := range sse.NewDecoder(fc.stream).Events() {
			if err != nil {
				return
			}
			ch <- ev
		}
	}()
	return ch
}

func (fc *floodConn) close() { fc.once.Do(func() { _ = fc.c.Close() }) }

func subscription(topic string) string {
	return "GET /.well-known/mercure?topic=" + topic + " HTTP/1.1\r\nHost: hub\r\n\r\n"
}

func publication(tok, topic, data string) string {
	body := "topic=" + topic + "&data=" + data
	return fmt.Sprintf("POST /.well-known/mercure HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body)
}

// eventually polls cond until it holds, failing the test after floodWait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(floodWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
