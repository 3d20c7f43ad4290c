package hub_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// Streams are counted by transport, their events and bytes as written, and
// their closes by reason.
func TestStatsByTransport(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		http2     bool
		wrap      func(h *hub.Hub) http.Handler
		transport string
		closed    string // the reason a client's leaving is counted under
	}{
		{"hijacked", false, func(h *hub.Hub) http.Handler { return h }, hub.TransportHTTP1, "client_closed"},
		{"http2", true, func(h *hub.Hub) http.Handler { return h }, hub.TransportHTTP2, "client_gone"},
		{"not hijackable", false, func(h *hub.Hub) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(flushOnly{w}, r) })
		}, hub.TransportOther, "client_gone"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, hub.Config{Heartbeat: -1})
			th := serveHub(t, h, httptest.NewUnstartedServer(c.wrap(h)), c.http2)
			s := th.subscribe(t, q("topic", "a"), nil)
			waitFor(t, "the stream", func() bool { return h.Stats().Streams[c.transport] == 1 })
			wire := 0
			for i := range 3 {
				id, err := h.Publish(t.Context(), hub.Update{Topics: []string{"a"}, Data: fmt.Sprint(i)})
				if err != nil {
					t.Fatal(err)
				}
				s.expect(t, fmt.Sprint(i))
				b, _ := sse.Event{ID: id, Data: fmt.Sprint(i)}.AppendText(nil)
				wire += len(b)
			}
			st := h.Stats()
			if st.StreamsOpened[c.transport] != 1 || len(st.StreamsOpened) != 1 || st.Published != 3 ||
				st.Delivered != 3 || st.WrittenBytes != uint64(wire) || st.AppendLatency.Count != 3 {
				t.Fatalf("stats %+v; want 1 %s stream, 3 published and delivered, %d bytes", st, c.transport, wire)
			}
			s.close()
			waitFor(t, "the close", func() bool { return h.Stats().StreamsClosed[c.closed] == 1 })
			if st := h.Stats(); st.Streams[c.transport] != 0 || len(st.StreamsClosed) != 1 {
				t.Fatalf("after the close: %+v", st)
			}
		})
	}
}

// failingLog is a memory log whose appends fail while fail is set.
type failingLog struct {
	*hub.MemoryLog
	fail atomic.Bool
}

var errDiskOnFire = errors.New("the disk is on fire")

func (l *failingLog) Append(ctx context.Context, evs ...*hub.Event) error {
	if l.fail.Load() {
		return errDiskOnFire
	}
	return l.MemoryLog.Append(ctx, evs...)
}

// A failed append counts as a store error, and its refusal by its code; a
// duplicate ID is the publisher's mistake, not the store's.
func TestStatsStoreErrors(t *testing.T) {
	t.Parallel()
	lg := &failingLog{MemoryLog: hub.NewMemoryLog(hub.MemoryLogConfig{})}
	th := newTestHub(t, hub.Config{Log: lg})
	if _, err := th.Publish(t.Context(), hub.Update{Topics: []string{"a"}, ID: "one"}); err != nil {
		t.Fatal(err)
	}
	if status, _ := th.post(t, url.Values{"topic": {"a"}, "id": {"one"}}, publisherToken(t)); status != http.StatusConflict {
		t.Fatalf("a duplicate ID: %d", status)
	}
	lg.fail.Store(true)
	if _, err := th.Publish(t.Context(), hub.Update{Topics: []string{"a"}}); !errors.Is(err, errDiskOnFire) {
		t.Fatalf("Publish: %v", err)
	}
	if status, _ := th.post(t, url.Values{"topic": {"a"}}, publisherToken(t)); status != http.StatusInternalServerError {
		t.Fatalf("publish over HTTP: %d", status)
	}
	st := th.Stats()
	want := map[hub.Refusal]uint64{
		{Request: "publish", Code: "duplicate_id"}:   1,
		{Request: "publish", Code: "internal_error"}: 1,
	}
	if st.StoreErrors["append"] != 2 || len(st.StoreErrors) != 1 || st.Published != 1 || st.AppendLatency.Count != 4 ||
		fmt.Sprint(st.Refused) != fmt.Sprint(want) || st.Retained != 1 || st.Commits != nil {
		t.Fatalf("stats %+v", st)
	}
}
