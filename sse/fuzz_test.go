package sse_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/herald-sse/herald/sse"
)

// refDecode is the standard's event stream interpretation written as
// plainly as possible, to test the streaming decoder against: it decodes
// the whole stream to text first, strips one BOM, splits it into lines,
// and runs the field algorithm on each line. It knows nothing of reads,
// buffers or limits.
func refDecode(input []byte) outcome {
	var o outcome
	text := strings.TrimPrefix(refUTF8(input), "\uFEFF")
	var data, typ, idBuf string
	var blockRetry time.Duration
	for {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			break // an unterminated last line is not a line
		}
		line := text[:i]
		if strings.HasPrefix(text[i:], "\r\n") {
			text = text[i+2:]
		} else {
			text = text[i+1:]
		}
		if line == "" {
			o.LastID = idBuf
			if data != "" {
				o.Events = append(o.Events, sse.Event{
					ID: idBuf, Type: typ, Data: strings.TrimSuffix(data, "\n"), Retry: blockRetry,
				})
			}
			data, typ, blockRetry = "", "", 0
			continue
		}
		if line[0] == ':' {
			o.Comments = append(o.Comments, strings.TrimPrefix(line[1:], " "))
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				r := refRetry(value)
				o.Retry, o.RetrySet, blockRetry = r, true, r
			}
		}
	}
	return o
}

// refRetry converts a string of digits, in milliseconds, to a Duration,
// saturating at the largest one.
func refRetry(digits string) time.Duration {
	ms, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// refUTF8 decodes b as UTF-8, replacing each maximal subpart of an invalid
// sequence (Unicode 15, section 3.9, the practice the WHATWG decoder
// follows) by one U+FFFD.
func refUTF8(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
			b = b[maximalSubpart(b):]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// maximalSubpart returns the length of the longest prefix of b that begins
// a well-formed sequence, at least 1.
func maximalSubpart(b []byte) int {
	// Unicode table 3-7: the range of each byte after each lead byte.
	type rng struct{ lo, hi byte }
	var want []rng
	cont := rng{0x80, 0xBF}
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		want = []rng{cont}
	case c == 0xE0:
		want = []rng{{0xA0, 0xBF}, cont}
	case c == 0xED:
		want = []rng{{0x80, 0x9F}, cont}
	case c >= 0xE1 && c <= 0xEF:
		want = []rng{cont, cont}
	case c == 0xF0:
		want = []rng{{0x90, 0xBF}, cont, cont}
	case c == 0xF4:
		want = []rng{{0x80, 0x8F}, cont, cont}
	case c >= 0xF1 && c <= 0xF3:
		want = []rng{cont, cont, cont}
	}
	n := 1
	for _, r := range want {
		if n >= len(b) || b[n] < r.lo || b[n] > r.hi {
			break
		}
		n++
	}
	return n
}

func TestReferenceAgreesWithCorpus(t *testing.T) {
	t.Parallel()
	for _, tc := range corpus {
		body := strings.Join(tc.chunks, "")
		if tc.chunks == nil {
			if len(tc.conns) != 1 {
				continue // reconnection cases are not the reference's business
			}
			body = tc.conns[0]
		}
		t.Run(tc.name, func(t *testing.T) {
			checkOutcome(t, refDecode([]byte(body)), tc.want)
		})
	}
}

// FuzzDecode checks that the decoder never panics, agrees with refDecode,
// and gives the same outcome however the stream is split into reads, with
// the default limit and with a tiny one.
func FuzzDecode(f *testing.F) {
	for i, tc := range corpus {
		for _, body := range tc.conns {
			f.Add([]byte(body), uint64(i))
		}
		f.Add([]byte(strings.Join(tc.chunks, "")), uint64(i))
	}
	f.Fuzz(func(t *testing.T, input []byte, seed uint64) {
		want := refDecode(input)
		whole := decodeConns(0, []string{string(input)})
		if !whole.equal(want) {
			t.Fatalf("whole input %q:\ngot:\n%v\nwant:\n%v", input, whole, want)
		}
		chunks := splitRandom(string(input), seed)
		if split := decodeConns(0, chunks); !split.equal(want) {
			t.Fatalf("input %q in chunks %q:\ngot:\n%v\nwant:\n%v", input, chunks, split, want)
		}

		const small = 24
		a := decodeConns(small, []string{string(input)})
		b := decodeConns(small, chunks)
		if !a.equal(b) {
			t.Fatalf("limit %d, input %q in chunks %q:\nwhole:\n%v\nsplit:\n%v", small, input, chunks, a, b)
		}
		if a.Err == "" {
			if !a.equal(want) {
				t.Fatalf("limit %d changed the outcome of %q:\ngot:\n%v\nwant:\n%v", small, input, a, want)
			}
		} else if !strings.Contains(a.Err, sse.ErrEventTooLarge.Error()) {
			t.Fatalf("unexpected error %q", a.Err)
		}
	})
}

// alphabet holds the pieces random texts are made of: the bytes that
// matter to the format, and multi-byte characters a split can cut.
var alphabet = []string{
	"a", "Z", "0", " ", "  ", ":", "\t", "data", "id", "event", "retry", "é", "€", "😀", "\uFEFF",
	"\x00", "\r", "\n", "\r\n", "\n\r",
}

func randomText(rng *rand.Rand, lineBreaks bool) string {
	var sb strings.Builder
	for range rng.IntN(12) {
		p := alphabet[rng.IntN(len(alphabet))]
		if !lineBreaks && !sse.ValidField(p) {
			continue
		}
		sb.WriteString(p)
	}
	return sb.String()
}

var lineBreak = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// TestRoundTrip encodes random events and comments and decodes them split
// at random: every event comes back, with its data's line breaks made LF
// and its ID inherited when it has none.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 14))
	for round := range 2000 {
		var stream []byte
		var want outcome
		lastID := ""
		for range 1 + rng.IntN(8) {
			if rng.IntN(5) == 0 {
				c := randomText(rng, true)
				stream = sse.AppendComment(stream, c)
				for _, line := range strings.Split(lineBreak.Replace(c), "\n") {
					want.Comments = append(want.Comments, line)
				}
				continue
			}
			e := sse.Event{ID: randomText(rng, false), Type: randomText(rng, false), Data: randomText(rng, true)}
			if rng.IntN(3) == 0 {
				e.Retry = time.Duration(rng.Int64N(int64(5 * time.Second)))
				want.Retry, want.RetrySet = e.Retry.Truncate(time.Millisecond), true
			}
			var err error
			if stream, err = e.AppendText(stream); err != nil {
				t.Fatalf("round %d: AppendText(%+v): %v", round, e, err)
			}
			if e.ID != "" {
				lastID = e.ID
			}
			want.Events = append(want.Events, sse.Event{
				ID: lastID, Type: e.Type, Data: lineBreak.Replace(e.Data), Retry: e.Retry.Truncate(time.Millisecond),
			})
		}
		want.LastID = lastID
		got := decodeConns(0, splitRandom(string(stream), rng.Uint64()))
		if !got.equal(want) {
			t.Fatalf("round %d, stream %q:\ngot:\n%v\nwant:\n%v", round, stream, got, want)
		}
	}
}

// FuzzRoundTrip encodes one event of any content: an invalid one is
// refused, a valid one decodes to itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add("1", "update", "line 1\nline 2", int64(1500))
	f.Add("", "", "", int64(0))
	f.Add("a\nb", "t", "x", int64(0))
	f.Add("id", "t\x00", "\r\n\r", int64(-1))
	f.Fuzz(func(t *testing.T, id, typ, data string, retryMs int64) {
		e := sse.Event{ID: id, Type: typ, Data: data, Retry: time.Duration(retryMs) * time.Millisecond}
		b, err := e.AppendText(nil)
		switch {
		case !sse.ValidField(id):
			if !errors.Is(err, sse.ErrInvalidID) || len(b) != 0 {
				t.Fatalf("invalid id %q: got %q, %v", id, b, err)
			}
			return
		case !sse.ValidField(typ):
			if !errors.Is(err, sse.ErrInvalidType) || len(b) != 0 {
				t.Fatalf("invalid type %q: got %q, %v", typ, b, err)
			}
			return
		case e.Retry < 0:
			if !errors.Is(err, sse.ErrInvalidRetry) || len(b) != 0 {
				t.Fatalf("negative retry %v: got %q, %v", e.Retry, b, err)
			}
			return
		case err != nil:
			t.Fatalf("valid event %+v refused: %v", e, err)
		}
		if !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(data) {
			return // a decoder replaces invalid bytes, so they do not come back
		}
		got := decodeConns(0, []string{string(b)})
		want := sse.Event{ID: id, Type: typ, Data: lineBreak.Replace(data), Retry: e.Retry.Truncate(time.Millisecond)}
		if len(got.Events) != 1 || got.Events[0] != want {
			t.Fatalf("encoded %q, decoded %v, want %+v", b, got, want)
		}
	})
}
