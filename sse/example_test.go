package sse_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/herald-sse/herald/sse"
)

func ExampleEncoder() {
	enc := sse.NewEncoder(os.Stdout)
	_ = enc.Comment("prices for HRLD")
	_ = enc.Encode(sse.Event{ID: "41", Type: "price", Data: `{"bid":101.25}`})
	_ = enc.Encode(sse.Event{ID: "42", Data: "two\nlines", Retry: 5 * time.Second})
	// Output:
	// : prices for HRLD
	// id: 41
	// event: price
	// data: {"bid":101.25}
	//
	// id: 42
	// retry: 5000
	// data: two
	// data: lines
	//
}

func ExampleEvent_AppendText() {
	// Append to a buffer you keep: no allocation once it is large enough.
	buf := make([]byte, 0, 512)
	for i := range 2 {
		var err error
		buf, err = sse.Event{ID: fmt.Sprint(i), Data: "tick"}.AppendText(buf)
		if err != nil {
			panic(err)
		}
	}
	fmt.Printf("%q\n", buf)

	_, err := sse.Event{ID: "no\nnewlines"}.AppendText(buf)
	fmt.Println(err)
	// Output:
	// "id: 0\ndata: tick\n\nid: 1\ndata: tick\n\n"
	// sse: event id holds CR, LF or NUL
}

func ExampleDecoder() {
	stream := "\uFEFF: hello\r\n" +
		"id: 1\r\nevent: greeting\r\ndata: hi\r\n\r\n" +
		"data: no id here,\ndata: so the last one stays\n\n" +
		"retry: 2500\n" +
		"data: never finished"
	d := sse.NewDecoder(strings.NewReader(stream))
	d.OnComment = func(text string) { fmt.Printf("comment %q\n", text) }
	for e, err := range d.Events() {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("type=%q id=%q data=%q\n", e.Type, e.ID, e.Data)
	}
	retry, _ := d.Retry()
	fmt.Println("resume with Last-Event-ID", d.LastEventID(), "after", retry)
	// Output:
	// comment "hello"
	// type="greeting" id="1" data="hi"
	// type="" id="1" data="no id here,\nso the last one stays"
	// resume with Last-Event-ID 1 after 2.5s
}

func ExampleNewStream() {
	ticks := func(w http.ResponseWriter, r *http.Request) {
		s, err := sse.NewStream(w, r, sse.StreamConfig{Heartbeat: 20 * time.Second})
		if err != nil {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		defer s.Close()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.Context().Done():
				return
			case now := <-t.C:
				if s.Send(sse.Event{ID: fmt.Sprint(i), Data: now.Format(time.RFC3339)}) != nil {
					return // the client has gone
				}
			}
		}
	}
	http.HandleFunc("/ticks", ticks)
}
