package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"time"
	"unicode/utf8"
)

// DefaultMaxEventSize is the bound a Decoder applies when MaxEventSize is
// zero: 8 MiB, far above any event a hub sends, far below what would let a
// hostile server exhaust a client's memory.
const DefaultMaxEventSize = 8 << 20

// ErrEventTooLarge is wrapped by the error Decode returns when a line or the
// data of one event passes the decoder's MaxEventSize.
var ErrEventTooLarge = errors.New("sse: event too large")

// none marks the absence of a line end in the read buffer.
const none = math.MaxInt

const (
	// minReadSize is the read buffer a Decoder starts with. Most events are
	// small and most streams idle, so a decoder starts small; it grows
	// while a line does not fit or while reads keep filling it.
	minReadSize = 4 << 10
	// maxReadAhead bounds the growth driven by full reads alone.
	maxReadAhead = 64 << 10
)

// Decoder reads events from a text/event-stream. It holds the parse state
// the standard gives an EventSource: the last event ID and the reconnection
// time carry across events. It is not safe for concurrent use.
//
// Set the exported fields before the first call to Decode.
type Decoder struct {
	// MaxEventSize bounds the length of a line and the size of the data of
	// one event, in bytes. Zero means DefaultMaxEventSize.
	MaxEventSize int
	// OnComment, if set, is called with the text of each comment line as it
	// is read (what follows the colon, less one leading space), in stream
	// order with the events. Comments are otherwise ignored.
	OnComment func(text string)

	r   io.Reader
	err error // the reader's error, returned once buf is drained

	// buf[start:end] holds the bytes read and not yet parsed.
	buf        []byte
	start, end int
	// lf and cr index in buf the first LF and the first CR of
	// buf[start:end], or are none. Each is searched for again only once the
	// parser passes it, so each byte is searched once for each, however
	// the stream's lines end.
	lf, cr int
	begun  bool // the leading BOM has been looked for
	skipLF bool // the last line ended with a CR: skip one LF

	// The parse state of the standard.
	data     []byte // the data buffer, each line followed by LF
	line1    []byte // the event's only data line, while held is set
	held     bool   // line1 still lies in buf, not yet copied to data
	nlines   int    // data lines in the event so far
	typ      string // the event type buffer
	lastType string // the last type decoded, reused to spare an allocation
	idBuf    string // the last event ID buffer, unless idSet
	idNew    []byte // a new last event ID buffer, not yet a string
	idSet    bool   // idNew holds the last event ID buffer
	lastID   string // the last event ID string, set at each dispatch
	retry    time.Duration
	retrySet bool
	evRetry  time.Duration // the retry field of the current block
}

// NewDecoder returns a Decoder that reads from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r, lf: none, cr: none}
}

// Reset discards all state, including the last event ID and the retry
// delay, and makes d read a new stream from r. It keeps the buffers.
func (d *Decoder) Reset(r io.Reader) {
	*d = Decoder{
		MaxEventSize: d.MaxEventSize,
		OnComment:    d.OnComment,
		r:            r,
		buf:          d.buf,
		lf:           none,
		cr:           none,
		data:         d.data[:0],
		idNew:        d.idNew[:0],
		lastType:     d.lastType,
	}
}

// LastEventID returns the last event ID string: the ID in force at the most
// recent blank line, which is what a client sends in Last-Event-ID when it
// reconnects. An id field of a block that never ended is not included.
func (d *Decoder) LastEventID() string { return d.lastID }

// SetLastEventID sets the last event ID that the next events inherit, as a
// client does when it resumes a stream on a new connection.
func (d *Decoder) SetLastEventID(id string) {
	d.lastID = id
	d.idBuf, d.idSet = id, false
}

// Retry returns the reconnection time the stream last set with a valid retry
// field, and whether it set one at all.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.retrySet }

// Decode reads the next event into ev. At the end of the stream it returns
// io.EOF, having discarded any unfinished event; on a read error it returns
// that error. Errors are final: later calls return the same error.
func (d *Decoder) Decode(ev *Event) error {
	for {
		line, err := d.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			if d.dispatch(ev) {
				return nil
			}
			continue
		}
		if err := d.field(line); err != nil {
			return d.fail(err)
		}
	}
}

// Events returns an iterator over the events of the stream. It ends
// quietly at the end of the stream; any other error is yielded once, with
// a zero Event, as the last value.
func (d *Decoder) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			var ev Event
			err := d.Decode(&ev)
			if err == io.EOF {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

func (d *Decoder) fail(err error) error {
	d.err = err
	d.start, d.end, d.lf, d.cr = 0, 0, none, none
	return err
}

func (d *Decoder) maxSize() int {
	if d.MaxEventSize > 0 {
		return d.MaxEventSize
	}
	return DefaultMaxEventSize
}

// maxShared bounds the event data and ID that dispatch makes into one
// string: the ID is kept as the last event ID, so it must not pin large
// data in memory.
const maxShared = 1 << 10

// dispatch ends a block. It reports whether it produced an event in ev.
func (d *Decoder) dispatch(ev *Event) bool {
	typ, retry := d.typ, d.evRetry
	d.typ, d.evRetry = "", 0
	if d.nlines == 0 {
		d.lastID = d.takeID()
		return false
	}
	data := d.line1
	if !d.held {
		data = d.data[:len(d.data)-1]
	}
	if !d.shareID(ev, data) {
		d.takeID()
		ev.Data = decodeUTF8(data)
	}
	d.line1, d.held, d.data, d.nlines = nil, false, d.data[:0], 0
	d.lastID = d.idBuf
	ev.ID, ev.Type, ev.Retry = d.lastID, typ, retry
	return true
}

// shareID handles the common event, a new ID with small data: it makes both
// into one string, one allocation, and reports whether it could.
func (d *Decoder) shareID(ev *Event, data []byte) bool {
	n := len(d.idNew)
	if !d.idSet || n+len(data) > maxShared {
		return false
	}
	both := append(d.idNew, data...)
	d.idNew = both[:n]
	// Valid UTF-8, cut where a character starts, gives two valid halves.
	if !validUTF8(both) || len(data) > 0 && !utf8.RuneStart(data[0]) {
		return false
	}
	s := string(both)
	d.idBuf, d.idSet = s[:n], false
	ev.Data = s[n:]
	return true
}

// takeID makes a new last event ID buffer a string, and returns it.
func (d *Decoder) takeID() string {
	if d.idSet {
		d.idBuf, d.idSet = decodeUTF8(d.idNew), false
	}
	return d.idBuf
}

// field processes one non-empty line.
func (d *Decoder) field(line []byte) error {
	// The common fields, spelled out, spare a search for the colon.
	switch line[0] {
	case ':':
		if d.OnComment != nil {
			d.OnComment(decodeUTF8(trimSpace(line[1:])))
		}
		return nil
	case 'd':
		if len(line) > 4 && line[4] == ':' && string(line[1:4]) == "ata" {
			return d.appendData(trimSpace(line[5:]))
		}
	case 'i':
		if len(line) > 2 && line[2] == ':' && line[1] == 'd' {
			d.setID(trimSpace(line[3:]))
			return nil
		}
	case 'e':
		if len(line) > 5 && line[5] == ':' && string(line[1:5]) == "vent" {
			d.setType(trimSpace(line[6:]))
			return nil
		}
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], trimSpace(line[i+1:])
	}
	switch string(name) {
	case "data":
		return d.appendData(value)
	case "event":
		d.setType(value)
	case "id":
		d.setID(value)
	case "retry":
		if ms, ok := parseDigits(value); ok {
			d.retry, d.retrySet = ms, true
			d.evRetry = ms
		}
	}
	return nil
}

func (d *Decoder) setType(value []byte) {
	if string(value) != d.lastType {
		d.lastType = decodeUTF8(value)
	}
	d.typ = d.lastType
}

// setID sets the last event ID buffer. The value is copied now and made a
// string at dispatch, in one allocation with the event's data.
func (d *Decoder) setID(value []byte) {
	if bytes.IndexByte(value, 0) < 0 {
		d.idNew, d.idSet = append(d.idNew[:0], value...), true
	}
}

func (d *Decoder) appendData(value []byte) error {
	size := len(d.data) + len(value)
	if d.held {
		size += len(d.line1) + 1
	}
	if size > d.maxSize() {
		return fmt.Errorf("%w: data passes %d bytes", ErrEventTooLarge, d.maxSize())
	}
	d.nlines++
	if d.nlines == 1 {
		// The common event has one data line: keep it where it lies in
		// buf and copy it only once, into the Data string. spill copies
		// it out first if buf must move.
		d.line1, d.held = value, true
		return nil
	}
	d.spill()
	d.data = append(d.data, value...)
	d.data = append(d.data, '\n')
	return nil
}

// spill moves a data line that still lies in buf into the data buffer.
func (d *Decoder) spill() {
	if d.held {
		d.data = append(d.data, d.line1...)
		d.data = append(d.data, '\n')
		d.line1, d.held = nil, false
	}
}

// readLine returns the next line, without its end. The line lies in buf and
// is valid until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	for {
		if d.skipLF && d.start < d.end {
			d.skipLF = false
			if d.buf[d.start] == '\n' {
				d.start++
				d.lf = d.find('\n')
			}
		}
		if !d.begun && !d.stripBOM() {
			if err := d.fill(); err != nil {
				return nil, err
			}
			continue
		}
		i := min(d.lf, d.cr)
		if i == none {
			if err := d.fill(); err != nil {
				return nil, err
			}
			continue
		}
		line := d.buf[d.start:i]
		d.start = i + 1
		if i == d.lf {
			d.lf = d.find('\n')
			return line, nil
		}
		d.cr = d.find('\r')
		switch {
		case d.start == d.end:
			d.skipLF = true // the LF of a CRLF may come in the next read
		case d.buf[d.start] == '\n':
			d.start++
			d.lf = d.find('\n')
		}
		return line, nil
	}
}

// find returns the index in buf of the first c in buf[start:end], or none.
func (d *Decoder) find(c byte) int {
	if d.start < d.end && d.buf[d.start] == c {
		return d.start // the blank line that ends each event
	}
	if i := bytes.IndexByte(d.buf[d.start:d.end], c); i >= 0 {
		return d.start + i
	}
	return none
}

// stripBOM skips one byte order mark at the start of the stream. It reports
// false when it needs more bytes to tell.
func (d *Decoder) stripBOM() bool {
	const bom = "\xEF\xBB\xBF"
	rest := d.buf[d.start:d.end]
	n := min(len(rest), len(bom))
	if string(rest[:n]) != bom[:n] {
		d.begun = true
		return true
	}
	if n < len(bom) {
		if d.err != nil {
			d.begun = true // a stream too short for a BOM
			return true
		}
		return false
	}
	d.start += len(bom)
	d.begun = true
	return true
}

// fill reads more of the stream into buf, making room first. It returns the
// reader's error once nothing more can be read.
func (d *Decoder) fill() error {
	if d.err != nil {
		return d.err
	}
	if d.end == len(d.buf) {
		d.makeRoom()
		if d.end == len(d.buf) {
			return d.fail(fmt.Errorf("%w: line passes %d bytes", ErrEventTooLarge, d.maxSize()))
		}
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		if n < 0 || n > len(d.buf)-d.end {
			return d.fail(errors.New("sse: reader returned an invalid count"))
		}
		full := d.end+n == len(d.buf)
		d.scanned(d.end, d.end+n)
		d.end += n
		if err != nil {
			d.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			if full && len(d.buf) < maxReadAhead {
				d.grow(2 * len(d.buf)) // the stream is busy: read more at once
			}
			return nil
		}
	}
	return d.fail(io.ErrNoProgress)
}

// makeRoom frees the space at the end of buf: it moves the unparsed bytes
// to the front, or grows buf when they fill it.
func (d *Decoder) makeRoom() {
	if d.start == 0 {
		d.grow(max(2*len(d.buf), minReadSize))
		return
	}
	d.spill()
	n := copy(d.buf, d.buf[d.start:d.end])
	d.shift(d.start)
	d.start, d.end = 0, n
}

// grow reallocates buf to hold size bytes, bounded by what one line and
// its end may take. A data line kept in the old buf stays valid there.
func (d *Decoder) grow(size int) {
	size = min(size, d.maxSize()+1)
	if size <= len(d.buf) {
		return
	}
	buf := make([]byte, size)
	n := copy(buf, d.buf[d.start:d.end])
	d.shift(d.start)
	d.buf, d.start, d.end = buf, 0, n
}

// scanned notes the line ends among the bytes just read into buf[from:to].
func (d *Decoder) scanned(from, to int) {
	if d.lf == none {
		if i := bytes.IndexByte(d.buf[from:to], '\n'); i >= 0 {
			d.lf = from + i
		}
	}
	if d.cr == none {
		if i := bytes.IndexByte(d.buf[from:to], '\r'); i >= 0 {
			d.cr = from + i
		}
	}
}

// shift moves the line end indexes along with the bytes moved n places
// left.
func (d *Decoder) shift(n int) {
	if d.lf != none {
		d.lf -= n
	}
	if d.cr != none {
		d.cr -= n
	}
}

// trimSpace removes one leading space.
func trimSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

// parseDigits parses a retry value: ASCII digits only, at least one, in
// milliseconds. A value too large for a Duration is taken as the largest.
func parseDigits(b []byte) (time.Duration, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const limit = math.MaxInt64 / int64(time.Millisecond)
	var ms int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= limit {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > limit {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// decodeUTF8 returns b as a string, each invalid sequence replaced by
// U+FFFD as the standard's UTF-8 decoder does.
func decodeUTF8(b []byte) string {
	if validUTF8(b) {
		return string(b)
	}
	return string(replaceInvalid(b))
}
