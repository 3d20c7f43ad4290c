package sse_test

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/herald-sse/herald/sse"
)

func TestDecodeLimits(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		input   string
		events  int  // events decoded before the end or the error
		tooLong bool // whether the error is ErrEventTooLarge
	}{
		{"line at the limit", "data:" + long(11) + "\n\n", 1, false},
		{"line at the limit, CRLF", "data:" + long(11) + "\r\n\r\n", 1, false},
		{"line past the limit", "data:" + long(12) + "\n\n", 0, true},
		{"unterminated line past the limit", "data:" + long(40), 0, true},
		{"comment past the limit", ":" + long(16) + "\ndata:x\n\n", 0, true},
		{"unknown field past the limit", "foo:" + long(13) + "\n\n", 0, true},
		{"data at the limit", "data:" + long(7) + "\ndata:" + long(8) + "\n\n", 1, false},
		{"data past the limit", "data:" + long(8) + "\ndata:" + long(8) + "\n\n", 0, true},
		{"limit per event", "data:" + long(10) + "\n\ndata:" + long(10) + "\n\n", 2, false},
		{"error after events", "data:a\n\n" + "data:" + long(20) + "\n\n", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, sp := range splits {
				d := sse.NewDecoder(&chunkReader{chunks: sp.split(tc.input)})
				d.MaxEventSize = 16
				n, err := 0, error(nil)
				for {
					var e sse.Event
					if err = d.Decode(&e); err != nil {
						break
					}
					n++
				}
				if n != tc.events || errors.Is(err, sse.ErrEventTooLarge) != tc.tooLong {
					t.Errorf("%s: %d events and %v, want %d events (too large: %v)", sp.name, n, err, tc.events, tc.tooLong)
				}
				if tc.tooLong {
					var e sse.Event
					if again := d.Decode(&e); again != err {
						t.Errorf("%s: error not kept: %v, then %v", sp.name, err, again)
					}
				}
			}
		})
	}
}

// The sse-contract-tests suite sends a 10 MiB line in two chunks.
func TestDecodeLargeLine(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", 10<<20)
	d := sse.NewDecoder(&chunkReader{chunks: []string{"data: " + big[:5<<20], big[5<<20:] + "\n\n"}})
	d.MaxEventSize = 16 << 20
	var e sse.Event
	if err := d.Decode(&e); err != nil || e.Data != big {
		t.Fatalf("got %d bytes, %v", len(e.Data), err)
	}
}

func TestDecodeReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: 1\n\ndata: 2"), iotest.ErrReader(boom))
	d := sse.NewDecoder(r)
	var e sse.Event
	if err := d.Decode(&e); err != nil || e.Data != "1" {
		t.Fatalf("first event: %+v, %v", e, err)
	}
	for range 2 {
		if err := d.Decode(&e); err != boom {
			t.Fatalf("got %v, want the reader's error", err)
		}
	}
}

// An event whose last byte arrives with the reader's EOF is still decoded.
func TestDecodeDataWithEOF(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(iotest.DataErrReader(strings.NewReader("data: 1\n\ndata: 2\n\n")))
	var got []string
	for e, err := range d.Events() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Data)
	}
	if strings.Join(got, ",") != "1,2" {
		t.Fatalf("got %q", got)
	}
}

func TestDecodeNoProgress(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(zeroReader{})
	var e sse.Event
	if err := d.Decode(&e); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// A line ending in CR is processed at once: a live stream must not wait for
// the next byte to learn whether an LF follows.
func TestDecodeCRIsProcessedAtOnce(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	writes := make(chan string, 4)
	go func() {
		for s := range writes {
			if _, err := pw.Write([]byte(s)); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(writes) })

	d := sse.NewDecoder(pr)
	var e sse.Event
	writes <- "data: x\r\r"
	if err := d.Decode(&e); err != nil || e.Data != "x" {
		t.Fatalf("got %+v, %v", e, err)
	}
	// The LF completes the CRLF that dispatched x; it is no blank line.
	writes <- "\ndata: y\n"
	writes <- "\n"
	if err := d.Decode(&e); err != nil || e.Data != "y" {
		t.Fatalf("got %+v, %v", e, err)
	}
}

func TestDecodeUTF8(t *testing.T) {
	t.Parallel()
	const r = "\uFFFD"
	tests := []struct{ in, want string }{
		{"ok\xE2\x80\xA6", "ok…"},
		{"\xE2\x80A", r + "A"},              // a truncated sequence is one replacement
		{"\xFF\xFE", r + r},                 // bytes that never start a sequence
		{"\xF0\x9F\x98", r},                 // a truncated 4-byte sequence
		{"\xED\xA0\x80", r + r + r},         // a surrogate
		{"\xC0\xAF", r + r},                 // an overlong form
		{"\xF4\x90\x80\x80", r + r + r + r}, // past U+10FFFF
		{"a\xE2\x82", "a" + r},              // truncated at the end of the line
	}
	for _, tc := range tests {
		var comments []string
		d := sse.NewDecoder(strings.NewReader("id: " + tc.in + "\nevent: " + tc.in + "\n:" + tc.in + "\ndata: " + tc.in + "\ndata: " + tc.in + "\n\n"))
		d.OnComment = func(text string) { comments = append(comments, text) }
		var e sse.Event
		if err := d.Decode(&e); err != nil {
			t.Fatal(err)
		}
		want := sse.Event{ID: tc.want, Type: tc.want, Data: tc.want + "\n" + tc.want}
		if e != want || len(comments) != 1 || comments[0] != tc.want {
			t.Errorf("%q: got %+v and comments %q, want %q", tc.in, e, comments, tc.want)
		}
	}
}

func TestDecodeRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		set  bool
	}{
		{"retry: 0\n", 0, true},
		{"retry: 1500\n", 1500 * time.Millisecond, true},
		{"retry: 99999999999999999999999\n", math.MaxInt64, true},
		{"retry: -1\n", 0, false},
		{"retry: 1.5\n", 0, false},
		{"retry: \n", 0, false},
		{"retry:  5\n", 0, false}, // a second space is not a digit
		{"Retry: 5\n", 0, false},
	}
	for _, tc := range tests {
		d := sse.NewDecoder(strings.NewReader(tc.in))
		var e sse.Event
		if err := d.Decode(&e); err != io.EOF {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got, set := d.Retry(); got != tc.want || set != tc.set {
			t.Errorf("%q: got %v, %v; want %v, %v", tc.in, got, set, tc.want, tc.set)
		}
	}
}

// A block without data dispatches no event but still sets the last event
// ID, which the client then sends back.
func TestDecodeIDOnlyBlock(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(strings.NewReader("id: 7\n\nid: 8\n"))
	var e sse.Event
	if err := d.Decode(&e); err != io.EOF {
		t.Fatal(err)
	}
	if got := d.LastEventID(); got != "7" {
		t.Fatalf("LastEventID = %q, want 7", got)
	}
}

func TestDecodeReset(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(strings.NewReader("\xEF\xBB\xBFid: 1\nretry: 10\ndata: a\n\ndata: unfinished"))
	var e sse.Event
	if err := d.Decode(&e); err != nil {
		t.Fatal(err)
	}
	d.Reset(strings.NewReader("\xEF\xBB\xBFdata: b\n\n"))
	if _, set := d.Retry(); set || d.LastEventID() != "" {
		t.Fatal("Reset kept the retry or the last event ID")
	}
	d.SetLastEventID("1")
	if err := d.Decode(&e); err != nil || e != (sse.Event{ID: "1", Data: "b"}) {
		t.Fatalf("after Reset: %+v, %v", e, err)
	}
}

func TestDecodeEventsStopsEarly(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(strings.NewReader("data: 1\n\ndata: 2\n\ndata: 3\n\n"))
	for e, err := range d.Events() {
		if err != nil || e.Data != "1" {
			t.Fatalf("got %+v, %v", e, err)
		}
		break
	}
	var e sse.Event
	if err := d.Decode(&e); err != nil || e.Data != "2" {
		t.Fatalf("after break: %+v, %v", e, err)
	}
}

func TestDecodeEventsYieldsError(t *testing.T) {
	t.Parallel()
	d := sse.NewDecoder(strings.NewReader("data: " + strings.Repeat("x", 64) + "\n\n"))
	d.MaxEventSize = 32
	n := 0
	for _, err := range d.Events() {
		n++
		if !errors.Is(err, sse.ErrEventTooLarge) {
			t.Fatalf("got %v", err)
		}
	}
	if n != 1 {
		t.Fatalf("yielded %d values, want the error once", n)
	}
}

// Decoding allocates only the strings of each event: none for a type or an
// ID that repeats, and one copy of the data.
func TestDecodeAllocations(t *testing.T) {
	block := "id: 42\nevent: price\ndata: {\"symbol\":\"HRLD\",\"bid\":101.25,\"ask\":101.5}\n\n"
	r := &repeatReader{block: block}
	d := sse.NewDecoder(r)
	var e sse.Event
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(&e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%.2f allocations per event, want at most 1 (the data)", allocs)
	}
}

// repeatReader serves block over and over.
type repeatReader struct {
	block string
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	return n, nil
}
