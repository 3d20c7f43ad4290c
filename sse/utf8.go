package sse

import (
	"encoding/binary"
	"unicode/utf8"
)

// validUTF8 reports whether b is valid UTF-8. It is utf8.Valid with a
// quicker start on the short ASCII strings that make most of a stream.
func validUTF8(b []byte) bool {
	const hiBits = 0x8080808080808080
	n := len(b)
	switch {
	case n > 256:
		return utf8.Valid(b) // long runs of ASCII are its fast path
	case n >= 8:
		var acc uint64
		for i := 0; i+8 <= n; i += 8 {
			acc |= binary.LittleEndian.Uint64(b[i:])
		}
		acc |= binary.LittleEndian.Uint64(b[n-8:]) // the tail, overlapping
		if acc&hiBits == 0 {
			return true
		}
	default:
		ascii := true
		for _, c := range b {
			ascii = ascii && c < utf8.RuneSelf
		}
		if ascii {
			return true
		}
	}
	return utf8.Valid(b)
}

// replaceInvalid decodes b as the WHATWG Encoding standard's UTF-8 decoder
// does, which is what a browser applies to an event stream: each maximal
// invalid subsequence becomes one U+FFFD. (Go's own decoding differs: it
// replaces every byte of a truncated sequence.)
func replaceInvalid(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	var need, seen int
	var lower, upper byte = 0x80, 0xBF
	start := 0 // where the sequence being decoded began
	for i := 0; i < len(b); i++ {
		c := b[i]
		if need == 0 {
			switch {
			case c < 0x80:
				out = append(out, c)
			case c >= 0xC2 && c <= 0xDF:
				need = 1
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				} else if c == 0xED {
					upper = 0x9F
				}
				need = 2
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				} else if c == 0xF4 {
					upper = 0x8F
				}
				need = 3
			default:
				out = utf8.AppendRune(out, utf8.RuneError)
			}
			start = i
			continue
		}
		if c < lower || c > upper {
			need, seen, lower, upper = 0, 0, 0x80, 0xBF
			out = utf8.AppendRune(out, utf8.RuneError)
			i-- // the byte starts afresh
			continue
		}
		lower, upper = 0x80, 0xBF
		seen++
		if seen == need {
			out = append(out, b[start:i+1]...)
			need, seen = 0, 0
		}
	}
	if need != 0 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return out
}
