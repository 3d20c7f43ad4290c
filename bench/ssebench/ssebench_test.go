// Package ssebench compares herald's sse package with the SSE parsers and
// encoders of github.com/tmaxmax/go-sse and github.com/launchdarkly/eventsource
// on the same inputs, in the same run.
//
// Benchmark names carry shape= and impl= keys, so that
//
//	benchstat -col /impl results.txt
//
// prints the implementations side by side (bench/sse.sh does this). One
// benchmark operation is one event, so ns/op is the time per event and
// allocs/op the allocations per event.
package ssebench

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	herald "github.com/herald-sse/herald/sse"
	ld "github.com/launchdarkly/eventsource"
	gosse "github.com/tmaxmax/go-sse"
)

// A shape is a kind of event. Each cycles through distinctIDs events that
// differ in their IDs, as a live stream's do, so that no parser gets to
// reuse an ID string.
type shape struct {
	name   string
	typ    string
	data   string
	events []herald.Event
	stream string // the events' encoded form, concatenated
}

const distinctIDs = 64

func newShape(name, typ, data string) *shape {
	s := &shape{name: name, typ: typ, data: data}
	var b []byte
	for i := range distinctIDs {
		e := herald.Event{ID: fmt.Sprintf("urn:uuid:0192f0c4-7a1e-7b3c-8d2e-%012x", i), Type: typ, Data: data}
		s.events = append(s.events, e)
		b, _ = e.AppendText(b)
	}
	s.stream = string(b)
	return s
}

// eventBytes is the average encoded size of one event.
func (s *shape) eventBytes() int64 { return int64(len(s.stream) / len(s.events)) }

var shapes = []*shape{
	// A notification or a price update: about 100 bytes on the wire.
	newShape("small", "update", `{"symbol":"HRLD","bid":101.25,"ask":101.5}`),
	// A document pushed whole: one 64 KiB data line.
	newShape("large", "", strings.Repeat("0123456789abcdef", 4096)),
	// Pretty-printed JSON: 100 lines of 40 bytes.
	newShape("manyline", "doc", strings.TrimSuffix(strings.Repeat(`  "field": "a value of forty bytes...",`+"\n", 100), "\n")),
}

// repeatReader serves s over and over, as a stream that never ends.
type repeatReader struct {
	s   string
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

var sinkData, sinkID string

func BenchmarkDecode(b *testing.B) {
	for _, s := range shapes {
		b.Run("shape="+s.name+"/impl=herald", func(b *testing.B) {
			d := herald.NewDecoder(&repeatReader{s: s.stream})
			var e herald.Event
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(&e); err != nil {
					b.Fatal(err)
				}
				sinkData, sinkID = e.Data, e.ID
			}
			check(b, e.Data, s.data)
		})
		b.Run("shape="+s.name+"/impl=go-sse", func(b *testing.B) {
			r := &repeatReader{s: s.stream}
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			n := 0
			var last string
			for e, err := range gosse.Read(r, &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
				if err != nil {
					b.Fatal(err)
				}
				sinkData, sinkID, last = e.Data, e.LastEventID, e.Data
				if n++; n == b.N {
					break
				}
			}
			check(b, last, s.data)
		})
		b.Run("shape="+s.name+"/impl=launchdarkly", func(b *testing.B) {
			d := ld.NewDecoder(&repeatReader{s: s.stream})
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			var last string
			for b.Loop() {
				e, err := d.Decode()
				if err != nil {
					b.Fatal(err)
				}
				sinkData, sinkID, last = e.Data(), e.Id(), e.Data()
			}
			check(b, last, s.data)
		})
	}
}

func check(b *testing.B, got, want string) {
	if got != want {
		b.Fatalf("decoded %d bytes of data, want %d", len(got), len(want))
	}
}

// ldEvent adapts an event to launchdarkly's Event interface.
type ldEvent struct{ id, typ, data string }

func (e ldEvent) Id() string    { return e.id } //nolint:revive // the interface's name
func (e ldEvent) Event() string { return e.typ }
func (e ldEvent) Data() string  { return e.data }

// BenchmarkEncode writes each event to a reused buffer, as a server writes
// to a buffered connection. Each implementation starts from the event's
// fields, so building its own message value is part of the cost.
func BenchmarkEncode(b *testing.B) {
	for _, s := range shapes {
		b.Run("shape="+s.name+"/impl=herald", func(b *testing.B) {
			var buf bytes.Buffer
			enc := herald.NewEncoder(&buf)
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				buf.Reset()
				if err := enc.Encode(s.events[i%distinctIDs]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("shape="+s.name+"/impl=go-sse", func(b *testing.B) {
			var buf bytes.Buffer
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				buf.Reset()
				e := s.events[i%distinctIDs]
				m := gosse.Message{ID: gosse.ID(e.ID)}
				if e.Type != "" {
					m.Type = gosse.Type(e.Type)
				}
				m.AppendData(e.Data)
				if _, err := m.WriteTo(&buf); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("shape="+s.name+"/impl=launchdarkly", func(b *testing.B) {
			var buf bytes.Buffer
			enc := ld.NewEncoder(&buf, false)
			b.SetBytes(s.eventBytes())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				buf.Reset()
				e := s.events[i%distinctIDs]
				if err := enc.Encode(ldEvent{e.ID, e.Type, e.Data}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestSameEvents checks that the three decoders read the benchmark streams
// alike, so that the benchmarks compare like with like.
func TestSameEvents(t *testing.T) {
	for _, s := range shapes {
		d := herald.NewDecoder(strings.NewReader(s.stream))
		var got []herald.Event
		for e, err := range d.Events() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		i := 0
		for e, err := range gosse.Read(strings.NewReader(s.stream), &gosse.ReadConfig{MaxEventSize: 1 << 20}) {
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(got) || e.Data != got[i].Data || e.LastEventID != got[i].ID || e.Type != got[i].Type {
				t.Fatalf("%s: go-sse event %d differs", s.name, i)
			}
			i++
		}
		ldd := ld.NewDecoder(strings.NewReader(s.stream))
		for i := range got {
			e, err := ldd.Decode()
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if e == nil || e.Data() != got[i].Data || e.Id() != got[i].ID || e.Event() != got[i].Type {
				t.Fatalf("%s: launchdarkly event %d differs", s.name, i)
			}
		}
		if len(got) != distinctIDs || i != distinctIDs {
			t.Fatalf("%s: decoded %d and %d events, want %d", s.name, len(got), i, distinctIDs)
		}
	}
}
