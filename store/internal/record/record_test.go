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

// FuzzDecode: whatever a damaged file holds, decoding it never panics.
func FuzzDecode(f *testing.F) {
	f.Add(record.Append(nil, &hub.Event{Update: hub.Update{ID: "x", Topics: []string{"t"}, Data: "d"}}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = record.Decode(1, b)
		_, _, _ = record.Head(b)
	})
}
