package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-sse/herald/sse"
)

// floor is a fanfloor server on loopback, and its client.
type floor struct {
	t    *testing.T
	addr string
}

func newFloor(t *testing.T, s *server) *floor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go s.serve(ln)
	return &floor{t: t, addr: ln.Addr().String()}
}

// publish publishes data to topic and returns the event's ID.
func (f *floor) publish(topic, data string) string {
	f.t.Helper()
	resp, err := http.PostForm("http://"+f.addr+"/.well-known/mercure", url.Values{"topic": {topic}, "data": {data}})
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var id strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&id)
	return id.String()
}

// subscribe subscribes to topic, after lastEventID if not empty, and
// returns the stream once its head is read. The connection's deadline
// only ends a test that hangs.
func (f *floor) subscribe(topic, lastEventID string) *sse.Decoder {
	f.t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	req := "GET /.well-known/mercure?topic=" + url.QueryEscape(topic) + " HTTP/1.1\r\nHost: x\r\n"
	if lastEventID != "" {
		req += "Last-Event-ID: " + lastEventID + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		f.t.Fatalf("subscribing: %v, %v", resp, err)
	}
	return sse.NewDecoder(resp.Body)
}

// expect reads the next events of d and wants their data to be want.
func (f *floor) expect(d *sse.Decoder, want ...string) {
	f.t.Helper()
	for _, w := range want {
		var ev sse.Event
		if err := d.Decode(&ev); err != nil {
			f.t.Fatalf("want %s: %v", w, err)
		}
		if ev.Data != w {
			f.t.Fatalf("got %q (id %s), want %q", ev.Data, ev.ID, w)
		}
	}
}

// The floor delivers every event of a subscriber's topics once, in order,
// and a subscription with Last-Event-ID gets the events after it, then
// the next ones live, none repeated.
func TestFloorResumes(t *testing.T) {
	t.Parallel()
	f := newFloor(t, newServer(2))
	a := f.subscribe("a", "")
	var ids []string
	for i := range 5 {
		ids = append(ids, f.publish("a", fmt.Sprint("a", i)))
		f.publish("b", fmt.Sprint("b", i))
	}
	f.expect(a, "a0", "a1", "a2", "a3", "a4")
	// Resuming after a1: a2 to a4, then a5 live, once.
	resumed := f.subscribe("a", ids[1])
	f.publish("a", "a5")
	f.expect(resumed, "a2", "a3", "a4", "a5")
	f.expect(a, "a5")
	f.publish("a", "a6")
	f.expect(resumed, "a6")
	// Resuming after the last: nothing until the next.
	last := f.subscribe("a", f.publish("a", "a7"))
	f.publish("a", "a8")
	f.expect(last, "a8")
}

// A subscriber that has its stream's head gets every event published
// after it, however late the server's goroutine of the subscription runs
// once it has written the head: here it stalls there until an event
// published after the head has been written to the other subscribers.
func TestFloorSubscribedWithTheHead(t *testing.T) {
	t.Parallel()
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprintf("resume=%v", resume), func(t *testing.T) {
			t.Parallel()
			s := newServer(1) // one worker: the witness's events are the stalled one's
			stall, release := make(chan struct{}), make(chan struct{})
			var subscriptions atomic.Int32
			s.headWritten = func() {
				if subscriptions.Add(1) == 2 {
					close(stall)
					<-release
				}
			}
			f := newFloor(t, s)
			witness := f.subscribe("a", "")
			last := f.publish("a", "before")
			f.expect(witness, "before")
			after := ""
			if resume {
				after = last
			}
			stalled := f.subscribe("a", after)
			<-stall
			f.publish("a", "x")
			f.expect(witness, "x") // the worker is past x
			close(release)
			f.publish("a", "y")
			f.expect(stalled, "x", "y")
		})
	}
}
