// Package sse reads and writes the text/event-stream format of Server-Sent
// Events, as the WHATWG HTML standard defines it (section 9.2, "Server-sent
// events").
//
// Start with [Event], the unit of the stream. To write events, append them to
// a buffer of your own with [Event.AppendText] (no allocation), or hand them
// to an [Encoder] that writes each one to an io.Writer in a single Write. To
// read them, wrap the stream in a [Decoder] and call [Decoder.Decode] or range
// over [Decoder.Events]. To serve a stream from an HTTP handler of your own,
// call [NewStream]: it sets the response headers, flushes, sends heartbeats
// and bounds each write with a deadline.
//
// The package imports only the standard library.
//
// # Decoding
//
// The decoder follows the standard's "event stream interpretation" to the
// letter: one leading byte order mark is stripped, lines end at CR, LF or
// CRLF (a CR that ends one read and an LF that starts the next are one line
// end, and a line ending in CR is processed at once, without waiting for the
// next byte), field names are case-sensitive, one space after the colon is
// removed, an id holding NUL is ignored, retry is taken only when it is all
// ASCII digits, and a block without data dispatches no event. The stream is
// read as UTF-8 whatever the Content-Type says; invalid bytes become U+FFFD
// as the standard's UTF-8 decoder makes them. An unterminated last block is
// discarded at the end of the stream.
//
// # Limits
//
// A stream comes from a server that may be hostile. The decoder holds at
// most one event in memory, and an event (any line, and the data of one
// event) is bounded by [Decoder.MaxEventSize], by default
// [DefaultMaxEventSize]. Past it, Decode returns an error wrapping
// [ErrEventTooLarge] and the stream must be abandoned.
//
// # Concurrency
//
// An Event is a plain value. A Decoder and an Encoder are for one goroutine
// at a time. A [Stream] is safe for concurrent use.
package sse
