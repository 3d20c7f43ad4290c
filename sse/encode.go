package sse

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// AppendText appends the stream form of e to b and returns the extended
// buffer: the id, event and retry fields when set, one data line for each
// line of Data, and the blank line that dispatches the event. It implements
// encoding.TextAppender.
//
// AppendText allocates nothing when b has room. It refuses an invalid event
// (see Validate) and then returns b unchanged.
func (e Event) AppendText(b []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return b, err
	}
	if e.ID != "" {
		b = append(b, "id: "...)
		b = append(b, e.ID...)
		b = append(b, '\n')
	}
	if e.Type != "" {
		b = append(b, "event: "...)
		b = append(b, e.Type...)
		b = append(b, '\n')
	}
	if e.Retry > 0 {
		b = appendRetry(b, e.Retry)
	}
	b = appendLines(b, "data", e.Data)
	return append(b, '\n'), nil
}

// MarshalText returns the stream form of e, as AppendText writes it. It
// implements encoding.TextMarshaler.
func (e Event) MarshalText() ([]byte, error) {
	return e.AppendText(nil)
}

// AppendComment appends text as a comment to b. Clients ignore comments;
// servers send them to keep idle connections open. A text spanning several
// lines becomes several comment lines, and an empty text is a bare colon.
func AppendComment(b []byte, text string) []byte {
	if text == "" {
		return append(b, ":\n"...)
	}
	return appendLines(b, "", text)
}

// AppendRetry appends a retry field to b, asking the client to wait d before
// reconnecting. A negative d is written as zero.
func AppendRetry(b []byte, d time.Duration) []byte {
	return appendRetry(b, max(d, 0))
}

func appendRetry(b []byte, d time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	return append(b, '\n')
}

// appendLines appends one "name: line" field per line of s, breaking lines
// at CR, LF and CRLF as a decoder will. An empty line is written without
// the space, which a decoder would strip anyway.
func appendLines(b []byte, name, s string) []byte {
	for {
		i, next := lineEnd(s)
		b = append(b, name...)
		b = append(b, ':')
		if i > 0 {
			b = append(b, ' ')
			b = append(b, s[:i]...)
		}
		b = append(b, '\n')
		if next < 0 {
			return b
		}
		s = s[next:]
	}
}

// lineEnd returns the length of the first line of s and the index at which
// the next line starts, or len(s) and -1 when s is a single line.
func lineEnd(s string) (end, next int) {
	i := strings.IndexByte(s, '\n')
	limit := i
	if i < 0 {
		limit = len(s)
	}
	if j := strings.IndexByte(s[:limit], '\r'); j >= 0 {
		if j+1 < len(s) && s[j+1] == '\n' {
			return j, j + 2
		}
		return j, j + 1
	}
	if i < 0 {
		return len(s), -1
	}
	return i, i + 1
}

// Encoder writes events to an io.Writer. Each call makes exactly one Write,
// so events written to a network connection go out whole. It encodes into a
// buffer it keeps, as large as the largest event so far, so it allocates
// nothing once warm. It is not safe for concurrent use.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder that writes to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w}
}

// Encode writes e in one Write. It refuses an invalid event (see
// Event.Validate) and then writes nothing.
func (enc *Encoder) Encode(e Event) error {
	b, err := e.AppendText(enc.buf[:0])
	if err != nil {
		return err
	}
	return enc.write(b)
}

// Comment writes text as a comment, as AppendComment forms it.
func (enc *Encoder) Comment(text string) error {
	return enc.write(AppendComment(enc.buf[:0], text))
}

// Retry writes a retry field on its own, asking the client to wait d before
// its next reconnection.
func (enc *Encoder) Retry(d time.Duration) error {
	return enc.write(AppendRetry(enc.buf[:0], d))
}

func (enc *Encoder) write(b []byte) error {
	enc.buf = b
	_, err := enc.w.Write(b)
	return err
}
