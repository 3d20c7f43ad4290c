package sse_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/herald-sse/herald/sse"
)

func TestAppendText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   sse.Event
		want string
	}{
		{"data only", sse.Event{Data: "hello"}, "data: hello\n\n"},
		{"empty", sse.Event{}, "data:\n\n"},
		{"all fields", sse.Event{ID: "1", Type: "t", Data: "a\nb", Retry: 1500 * time.Millisecond},
			"id: 1\nevent: t\nretry: 1500\ndata: a\ndata: b\n\n"},
		{"CR, LF and CRLF", sse.Event{Data: "a\r\nb\rc\nd"}, "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"trailing line break", sse.Event{Data: "a\n"}, "data: a\ndata:\n\n"},
		{"line breaks only", sse.Event{Data: "\r\n\n"}, "data:\ndata:\ndata:\n\n"},
		{"leading space kept", sse.Event{ID: " i", Type: " t", Data: " d"}, "id:  i\nevent:  t\ndata:  d\n\n"},
		{"NUL in data", sse.Event{Data: "a\x00b"}, "data: a\x00b\n\n"},
		{"field names in data", sse.Event{Data: "id: 2\n\ndata: x"}, "data: id: 2\ndata:\ndata: data: x\n\n"},
		{"sub-millisecond retry", sse.Event{Data: "x", Retry: time.Microsecond}, "retry: 0\ndata: x\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.ev.AppendText([]byte("prefix|"))
			if err != nil || string(got) != "prefix|"+tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, "prefix|"+tc.want)
			}
			m, err := tc.ev.MarshalText()
			if err != nil || string(m) != tc.want {
				t.Fatalf("MarshalText: %q, %v", m, err)
			}
		})
	}
}

func TestAppendTextRefusesInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ev   sse.Event
		want error
	}{
		{sse.Event{ID: "a\nb"}, sse.ErrInvalidID},
		{sse.Event{ID: "a\rb"}, sse.ErrInvalidID},
		{sse.Event{ID: "a\x00b"}, sse.ErrInvalidID},
		{sse.Event{Type: "a\nb"}, sse.ErrInvalidType},
		{sse.Event{Type: "a\rb"}, sse.ErrInvalidType},
		{sse.Event{Type: "\x00"}, sse.ErrInvalidType},
		{sse.Event{Retry: -time.Second}, sse.ErrInvalidRetry},
	}
	for _, tc := range tests {
		got, err := tc.ev.AppendText([]byte("kept"))
		if !errors.Is(err, tc.want) || string(got) != "kept" {
			t.Errorf("%+v: got %q, %v; want the buffer unchanged and %v", tc.ev, got, err, tc.want)
		}
		var w bytes.Buffer
		if err := sse.NewEncoder(&w).Encode(tc.ev); !errors.Is(err, tc.want) || w.Len() != 0 {
			t.Errorf("%+v: Encode wrote %q, %v", tc.ev, w.Bytes(), err)
		}
	}
}

func TestAppendComment(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ":\n"},
		{"ping", ": ping\n"},
		{"a\nb\r\nc", ": a\n: b\n: c\n"},
	}
	for _, tc := range tests {
		if got := sse.AppendComment(nil, tc.in); string(got) != tc.want {
			t.Errorf("AppendComment(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := sse.AppendRetry(nil, -time.Second); string(got) != "retry: 0\n" {
		t.Errorf("AppendRetry(-1s) = %q", got)
	}
}

// countingWriter records each Write.
type countingWriter struct{ writes []string }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestEncoderWritesOnce(t *testing.T) {
	t.Parallel()
	var w countingWriter
	enc := sse.NewEncoder(&w)
	if err := enc.Encode(sse.Event{ID: "1", Data: "a\nb"}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Comment("hi"); err != nil {
		t.Fatal(err)
	}
	if err := enc.Retry(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"id: 1\ndata: a\ndata: b\n\n", ": hi\n", "retry: 2000\n"}
	if len(w.writes) != len(want) {
		t.Fatalf("writes %q, want %q", w.writes, want)
	}
	for i := range want {
		if w.writes[i] != want[i] {
			t.Fatalf("writes %q, want %q", w.writes, want)
		}
	}
}

func TestEncodeAllocations(t *testing.T) {
	e := sse.Event{ID: "urn:uuid:0190a0d2-8c39-7d3e-9b1a-4f6e2c8d5a10", Type: "update", Data: "line 1\nline 2\r\nline 3", Retry: time.Second}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf, _ = e.AppendText(buf[:0]) }); n != 0 {
		t.Errorf("AppendText: %v allocations, want 0", n)
	}
	enc := sse.NewEncoder(&discard{})
	_ = enc.Encode(e) // sizes the encoder's buffer
	if n := testing.AllocsPerRun(100, func() { _ = enc.Encode(e) }); n != 0 {
		t.Errorf("Encode: %v allocations, want 0", n)
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }
