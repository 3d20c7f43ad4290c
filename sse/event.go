package sse

import (
	"errors"
	"strings"
	"time"
)

// Errors returned when an event cannot be written as a valid stream. The
// encoder refuses such an event whole rather than write a stream that a
// client would read differently.
var (
	// ErrInvalidID is returned for an ID holding CR, LF or NUL. A line break
	// would end the id line early and let the rest be read as other fields;
	// an ID holding NUL is ignored by every conforming client.
	ErrInvalidID = errors.New("sse: event id holds CR, LF or NUL")
	// ErrInvalidType is returned for a type holding CR, LF or NUL.
	ErrInvalidType = errors.New("sse: event type holds CR, LF or NUL")
	// ErrInvalidRetry is returned for a negative retry delay.
	ErrInvalidRetry = errors.New("sse: negative retry delay")
)

// Event is one event of a stream.
//
// When encoding, empty fields are left out, except Data: an event always
// carries at least one data line, since a client dispatches nothing without
// one. When decoding, ID is the last event ID in force when the event was
// dispatched (what a browser calls MessageEvent.lastEventId), which an event
// inherits from earlier ones when it carries no id field of its own.
type Event struct {
	// ID is the event's ID, which a client sends back in the Last-Event-ID
	// header when it reconnects. It must not hold CR, LF or NUL.
	ID string
	// Type is the event type. Empty means the default type, "message".
	// It must not hold CR, LF or NUL.
	Type string
	// Data is the payload. It may span several lines: CR, LF and CRLF all
	// break lines, and all three decode as LF.
	Data string
	// Retry, when positive, asks the client to wait this long before
	// reconnecting. It travels in whole milliseconds, so a delay under a
	// millisecond is sent as zero. Zero means no retry field. A decoded
	// event carries the retry field of its own block, if any; the
	// stream's current value is Decoder.Retry.
	Retry time.Duration
}

// Validate reports whether e can be encoded: it returns ErrInvalidID,
// ErrInvalidType or ErrInvalidRetry, or nil. Data can hold any bytes.
func (e Event) Validate() error {
	if !ValidField(e.ID) {
		return ErrInvalidID
	}
	if !ValidField(e.Type) {
		return ErrInvalidType
	}
	if e.Retry < 0 {
		return ErrInvalidRetry
	}
	return nil
}

// ValidField reports whether s can be written as the value of a single-line
// field such as id or event: that is, whether it holds no CR, LF or NUL.
func ValidField(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}
