package boltstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/boltstore"
)

// BenchmarkReplayAfterRestart is the catch-up of a subscriber that resumes
// with Last-Event-ID from a hub that restarted, so that the events it
// replays are the ones the store decoded from its file, not the ones the
// hub published. One op is one resume of 1,000 events over loopback HTTP,
// from the request to the stream's end; ns/event divides it.
//
//	go test -run '^$' -bench ReplayAfterRestart -benchmem -count 6 ./store/boltstore
//
// The events are in the store's tail in memory, read by every resume: a
// store that hands them out without their encoding (hub.Event.Prepare) has
// each resume encode each event again.
func BenchmarkReplayAfterRestart(b *testing.B) {
	const history, replay = 2_000, 1_000
	const topic = "https://example.com/books/1"
	const payload = `{"@id":"https://example.com/books/1","title":"The Left Hand of Darkness","author":"Ursula K. Le Guin","year":1969}`
	path := filepath.Join(b.TempDir(), "history.db")
	l, err := boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var from string
	for i := range history {
		ev := &hub.Event{Update: hub.Update{Topics: []string{topic}, Data: payload, ID: "urn:uuid:" + pad(i), End: i == history-1}}
		if err := l.Append(ctx, ev); err != nil {
			b.Fatal(err)
		}
		if i == history-replay-1 {
			from = ev.ID
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}

	l, err = boltstore.Open(boltstore.Config{Path: path}) // the restart
	if err != nil {
		b.Fatal(err)
	}
	h, err := hub.New(hub.Config{Log: l, BatchInterval: -1, Heartbeat: -1})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(func() {
		_ = h.Close()
		srv.Close()
		_ = l.Close()
	})
	u := srv.URL + hub.Path + "?" + url.Values{"topic": {topic}}.Encode()
	client := srv.Client()
	buf := make([]byte, 32<<10)

	resume := func() {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Last-Event-ID", from)
		req.Close = true // the hub closes the stream after the last event, which ends its topic
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("resume: status %d", resp.StatusCode)
		}
		got := 0
		var prev byte
		for {
			n, err := resp.Body.Read(buf)
			got += countEvents(buf[:n], &prev)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if got != replay {
			b.Fatalf("resume: got %d events, want %d", got, replay)
		}
	}
	resume() // warm up

	b.ReportAllocs()
	for b.Loop() {
		resume()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/replay, "ns/event")
}

// pad returns i in 8 digits, so that the benchmark's IDs have one length.
func pad(i int) string {
	b := []byte("00000000")
	for j := len(b) - 1; i > 0; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return string(b)
}

// countEvents counts the ends of events ("\n\n") in p; prev carries the
// last byte of the previous read, as an event may straddle two reads.
func countEvents(p []byte, prev *byte) int {
	n := bytes.Count(p, []byte("\n\n"))
	if len(p) > 0 && *prev == '\n' && p[0] == '\n' {
		n++
	}
	if len(p) > 0 {
		*prev = p[len(p)-1]
	}
	return n
}
