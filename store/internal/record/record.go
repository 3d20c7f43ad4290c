// Package record is the binary form in which herald's stores keep an
// event, checksummed.
package record

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// The record of an event, as the stores keep it:
//
//	version    1 byte, recordVersion
//	time       varint, Unix nanoseconds
//	flags      1 byte: 1 private, 2 end
//	retry      uvarint, milliseconds
//	id, type   uvarint length, bytes
//	topics     uvarint count, then each as uvarint length, bytes
//	data       uvarint length, bytes
//	checksum   4 bytes, CRC-32C of all the above, big-endian
//
// The checksum catches a record damaged on disk, which a store that checks
// only its own structures (bbolt checks its meta pages) would hand over.
const recordVersion = 1

const (
	flagPrivate = 1 << iota
	flagEnd
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	ErrCorrupt = errors.New("corrupt record")
)

// Append appends the record of ev to b.
func Append(b []byte, ev *hub.Event) []byte {
	start := len(b)
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, ev.Time.UnixNano())
	var flags byte
	if ev.Private {
		flags |= flagPrivate
	}
	if ev.End {
		flags |= flagEnd
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(ev.Retry.Milliseconds()))
	b = appendString(b, ev.ID)
	b = appendString(b, ev.Type)
	b = binary.AppendUvarint(b, uint64(len(ev.Topics)))
	for _, t := range ev.Topics {
		b = appendString(b, t)
	}
	b = appendString(b, ev.Data)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode decodes the record of the event at pos. A record whose ID, type
// or retry could not be sent to subscribers (hub.Event.Prepare would
// panic) is corrupt, whatever its checksum says.
func Decode(pos uint64, rec []byte) (*hub.Event, error) {
	if len(rec) < 5 {
		return nil, ErrCorrupt
	}
	body, sum := rec[:len(rec)-4], binary.BigEndian.Uint32(rec[len(rec)-4:])
	if crc32.Checksum(body, castagnoli) != sum || body[0] != recordVersion {
		return nil, ErrCorrupt
	}
	d := decoder{b: body[1:]}
	ev := &hub.Event{Pos: pos}
	ev.Time = time.Unix(0, d.varint())
	flags := d.byte()
	ev.Private, ev.End = flags&flagPrivate != 0, flags&flagEnd != 0
	ev.Retry = time.Duration(d.uvarint()) * time.Millisecond
	ev.ID = d.string()
	ev.Type = d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, ErrCorrupt
	}
	ev.Topics = make([]string, n)
	for i := range ev.Topics {
		ev.Topics[i] = d.string()
	}
	ev.Data = d.string()
	if d.bad || len(d.b) != 0 {
		return nil, ErrCorrupt
	}
	if (sse.Event{ID: ev.ID, Type: ev.Type, Retry: ev.Retry}).Validate() != nil {
		return nil, ErrCorrupt
	}
	return ev, nil
}

// Head decodes only the time and the ID of a record, for trimming.
func Head(rec []byte) (t time.Time, id string, err error) {
	if len(rec) < 5 || rec[0] != recordVersion {
		return time.Time{}, "", ErrCorrupt
	}
	d := decoder{b: rec[1 : len(rec)-4]}
	t = time.Unix(0, d.varint())
	d.byte()
	d.uvarint()
	id = d.string()
	if d.bad {
		return time.Time{}, "", ErrCorrupt
	}
	return t, id, nil
}

// decoder reads a record's fields; bad records set bad rather than panic.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
