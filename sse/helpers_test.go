package sse_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/herald-sse/herald/sse"
)

// chunkReader returns its chunks one per Read, splitting a chunk only when
// the caller's buffer is too small for it.
type chunkReader struct {
	chunks []string
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// splitEvery cuts s into chunks of n bytes.
func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// splitRandom cuts s into chunks of random sizes drawn from seed, mostly
// small, sometimes empty (a Read returning 0, nil).
func splitRandom(s string, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	var out []string
	for len(s) > 0 {
		n := rng.IntN(8)
		if rng.IntN(4) == 0 {
			n = rng.IntN(len(s) + 1)
		}
		n = min(n, len(s))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// splits are the ways each corpus input is fed to the decoder.
var splits = []struct {
	name  string
	split func(string) []string
}{
	{"whole", func(s string) []string { return []string{s} }},
	{"1-byte", func(s string) []string { return splitEvery(s, 1) }},
	{"2-byte", func(s string) []string { return splitEvery(s, 2) }},
}

// outcome is everything observable from decoding one or more connections.
type outcome struct {
	Events   []sse.Event
	Comments []string
	LastID   string
	Retry    time.Duration
	RetrySet bool
	Err      string
}

func (o outcome) String() string {
	var b strings.Builder
	for _, ev := range o.Events {
		fmt.Fprintf(&b, "event(type=%q data=%q id=%q retry=%v)\n", ev.Type, ev.Data, ev.ID, ev.Retry)
	}
	fmt.Fprintf(&b, "comments=%q lastID=%q retry=%v/%v err=%q", o.Comments, o.LastID, o.Retry, o.RetrySet, o.Err)
	return b.String()
}

func (o outcome) equal(p outcome) bool {
	return slices.Equal(o.Events, p.Events) && slices.Equal(o.Comments, p.Comments) &&
		o.LastID == p.LastID && o.Retry == p.Retry && o.RetrySet == p.RetrySet && o.Err == p.Err
}

// decodeConns decodes each connection's chunks in turn with one decoder, as
// a client would: after each connection it resets the decoder and seeds it
// with the last event ID the previous connection left.
func decodeConns(maxSize int, conns ...[]string) outcome {
	var o outcome
	d := sse.NewDecoder(nil)
	d.MaxEventSize = maxSize
	d.OnComment = func(text string) { o.Comments = append(o.Comments, text) }
	for i, chunks := range conns {
		last := d.LastEventID()
		d.Reset(&chunkReader{chunks: slices.Clone(chunks)})
		if i > 0 {
			d.SetLastEventID(last)
		}
		for {
			var ev sse.Event
			err := d.Decode(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				o.Err = err.Error()
				break
			}
			o.Events = append(o.Events, ev)
		}
		if r, ok := d.Retry(); ok {
			o.Retry, o.RetrySet = r, ok
		}
		if o.Err != "" {
			break
		}
	}
	o.LastID = d.LastEventID()
	return o
}
