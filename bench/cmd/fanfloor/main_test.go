package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/sse"
)

// The floor delivers every event of a subscriber's topics once, in order,
// and a subscription with Last-Event-ID gets the events after it, then
// the next ones live, none repeated.
func TestFloorResumes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveOn(ln, 2)
	addr := ln.Addr().String()

	publish := func(topic, data string) string {
		t.Helper()
		resp, err := http.PostForm("http://"+addr+"/.well-known/mercure", url.Values{"topic": {topic}, "data": {data}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var id strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&id)
		return id.String()
	}
	subscribe := func(topic, lastEventID string) *sse.Decoder {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /.well-known/mercure?topic=" + url.QueryEscape(topic) + " HTTP/1.1\r\nHost: x\r\n"
		if lastEventID != "" {
			req += "Last-Event-ID: " + lastEventID + "\r\n"
		}
		if _, err := c.Write([]byte(req + "\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribing: %v, %v", resp, err)
		}
		return sse.NewDecoder(resp.Body)
	}
	expect := func(d *sse.Decoder, want ...string) {
		t.Helper()
		for _, w := range want {
			var ev sse.Event
			if err := d.Decode(&ev); err != nil {
				t.Fatalf("want %s: %v", w, err)
			}
			if ev.Data != w {
				t.Fatalf("got %q (id %s), want %q", ev.Data, ev.ID, w)
			}
		}
	}

	a := subscribe("a", "")
	var ids []string
	for i := range 5 {
		ids = append(ids, publish("a", fmt.Sprint("a", i)))
		publish("b", fmt.Sprint("b", i))
	}
	expect(a, "a0", "a1", "a2", "a3", "a4")
	// Resuming after a1: a2 to a4, then a5 live, once.
	resumed := subscribe("a", ids[1])
	publish("a", "a5")
	expect(resumed, "a2", "a3", "a4", "a5")
	expect(a, "a5")
	publish("a", "a6")
	expect(resumed, "a6")
	// Resuming after the last: nothing until the next.
	last := subscribe("a", publish("a", "a7"))
	publish("a", "a8")
	expect(last, "a8")
}
