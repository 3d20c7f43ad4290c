package record_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/record"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	in := &hub.Event{Pos: 7, Time: time.Unix(1_700_000_000, 123), Update: hub.Update{
		Topics: []string{"a", "", "https://example.com/{x}"}, Data: "line\nline\x00\xff", Private: true,
		ID: "id-1", Type: "t", Retry: 2500 * time.Millisecond, End: true,
	}}
	rec := record.Append(nil, in)
	out, err := record.Decode(7, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Topics, in.Topics) || out.Data != in.Data || out.Private != in.Private || out.ID != in.ID ||
		out.Type != in.Type || out.Retry != in.Retry || out.End != in.End || !out.Time.Equal(in.Time) || out.Pos != 7 {
		t.Fatalf("got %+v, want %+v", out, in)
	}
	tm, id, err := record.Head(rec)
	if err != nil || id != "id-1" || !tm.Equal(in.Time) {
		t.Fatalf("Head: %v %q %v", tm, id, err)
	}
	for i := range rec {
		bad := slices.Clone(rec)
		bad[i] ^= 0x40
		if _, err := record.Decode(7, bad); !errors.Is(err, record.ErrCorrupt) {
			t.Fatalf("a flipped bit at %d went unnoticed", i)
		}
	}
}

// A record that its checksum holds whole but whose fields no subscriber
// could be sent (an ID with a line break) is corrupt, not an event that
// would make the hub panic when it encodes it.
func TestUnsendableFields(t *testing.T) {
	t.Parallel()
	for _, u := range []hub.Update{
		{ID: "a\nb", Topics: []string{"t"}},
		{ID: "a", Type: "x\ry", Topics: []string{"t"}},
		{ID: "a", Type: "x\x00", Topics: []string{"t"}},
	} {
		rec := record.Append(nil, &hub.Event{Update: u})
		if _, err := record.Decode(1, rec); !errors.Is(err, record.ErrCorrupt) {
			t.Errorf("Decode of %+v: %v, want ErrCorrupt", u, err)
		}
	}
	ok, err := record.Decode(1, record.Append(nil, &hub.Event{Update: hub.Update{ID: "a", Type: "x", Topics: []string{"t"}}}))
	if err != nil || ok.ID != "a" {
		t.Fatalf("Decode of a sendable event: %+v, %v", ok, err)
	}
}

// FuzzDecode: whatever a damaged file holds, decoding it never panics.
func FuzzDecode(f *testing.F) {
	f.Add(record.Append(nil, &hub.Event{Update: hub.Update{ID: "x", Topics: []string{"t"}, Data: "d"}}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = record.Decode(1, b)
		_, _, _ = record.Head(b)
	})
}
