package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/herald-sse/herald/hub"
)

func TestEndOfStream(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	before := th.publish(t, "trip/1", "on the way")
	only := th.subscribe(t, q("topic", "trip/1"), nil)
	both := th.subscribe(t, q("topic", "trip/1", "topic", "trip/2"), nil)
	templated := th.subscribe(t, q("topic", "trip/{n}"), nil)

	endID := th.publish(t, "trip/1", "arrived", "end", "on", "type", "end")

	// A subscriber to nothing but the ended topic gets the final event,
	// then its stream ends.
	if evs := only.ended(t); len(evs) != 1 || evs[0].Data != "arrived" || evs[0].Type != "end" {
		t.Fatalf("only trip/1 got %+v", evs)
	}
	// The others get it and stay.
	both.expect(t, "arrived")
	templated.expect(t, "arrived")
	th.publish(t, "trip/2", "still here")
	both.expect(t, "still here")
	templated.expect(t, "still here")

	// Coming back: 204, which stops an EventSource for good.
	for name, c := range map[string]struct {
		query  string
		header http.Header
		status int
	}{
		"new subscription":              {q("topic", "trip/1"), nil, 204},
		"resumed after the end":         {q("topic", "trip/1"), header("Last-Event-ID", endID), 204},
		"resumed before the end":        {q("topic", "trip/1"), header("Last-Event-ID", before), 200},
		"with a topic still open":       {q("topic", "trip/1", "topic", "trip/2"), nil, 200},
		"with a template":               {q("topic", "trip/{n}"), nil, 200},
		"twice the ended topic":         {q("topic", "trip/1", "topic", "trip/1"), nil, 204},
		"resumed from earliest history": {q("topic", "trip/1", "lastEventID", "earliest"), nil, 200},
	} {
		s, status := th.open(t, c.query, c.header)
		if status != c.status {
			t.Errorf("%s: status %d, want %d", name, status, c.status)
		}
		if s == nil {
			continue
		}
		if name == "resumed before the end" || name == "resumed from earliest history" {
			// It missed the final event: it gets it, then the end.
			evs := s.ended(t)
			if len(evs) == 0 || evs[len(evs)-1].ID != endID {
				t.Errorf("%s: got %+v, want the final event last", name, evs)
			}
		}
		s.close()
	}

	// A later update reopens the topic.
	th.publish(t, "trip/1", "a new trip")
	s := th.subscribe(t, q("topic", "trip/1"), nil)
	th.publish(t, "trip/1", "live again")
	s.expect(t, "live again")
}

func TestEndFromGo(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	s := th.subscribe(t, q("topic", "score/final"), nil)
	if _, err := th.Publish(context.Background(), hub.Update{Topics: []string{"score/final"}, Data: "3-1", End: true}); err != nil {
		t.Fatal(err)
	}
	if evs := s.ended(t); len(evs) != 1 || evs[0].Data != "3-1" {
		t.Fatalf("got %+v", evs)
	}
	if _, status := th.open(t, q("topic", "score/final"), nil); status != http.StatusNoContent {
		t.Fatalf("status %d", status)
	}
}

// A hub restarted on the same history still knows which topics ended.
func TestEndSurvivesRestart(t *testing.T) {
	t.Parallel()
	log := hub.NewMemoryLog(hub.MemoryLogConfig{})
	first := newHub(t, hub.Config{Log: log})
	if _, err := first.Publish(context.Background(), hub.Update{Topics: []string{"done"}, Data: "bye", End: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Publish(context.Background(), hub.Update{Topics: []string{"reopened"}, End: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Publish(context.Background(), hub.Update{Topics: []string{"reopened"}, Data: "again"}); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := newHub(t, hub.Config{Log: log})
	th := serveHub(t, second, httptest.NewUnstartedServer(second), false)
	if _, status := th.open(t, q("topic", "done"), nil); status != http.StatusNoContent {
		t.Fatalf("an ended topic after a restart: %d", status)
	}
	if s, status := th.open(t, q("topic", "reopened"), nil); status != http.StatusOK {
		t.Fatalf("a reopened topic after a restart: %d", status)
	} else {
		s.close()
	}
}

// Once a publisher has its answer, the end is in force: a subscription
// that follows is refused with 204, however little later.
func TestEndIsInForceOnceAcknowledged(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	for i := range 200 {
		topic := fmt.Sprintf("order/%d", i)
		th.publish(t, topic, "delivered", "end", "on")
		if s, status := th.open(t, q("topic", topic), nil); status != http.StatusNoContent {
			if s != nil {
				s.close()
			}
			t.Fatalf("subscription %d right after the end: status %d", i, status)
		}
	}
}

// A subscription that arrives while its topic ends is refused, or ends
// with the topic: it never stays open on an ended topic.
func TestEndRacesSubscription(t *testing.T) {
	t.Parallel()
	th := newTestHub(t, hub.Config{})
	for i := range 100 {
		topic := fmt.Sprintf("race/%d", i)
		th.publish(t, topic, "opening")
		opened := make(chan *stream, 1)
		go func() {
			s, status := th.open(t, q("topic", topic), nil)
			if status != http.StatusOK && status != http.StatusNoContent {
				t.Errorf("status %d", status)
			}
			opened <- s
		}()
		th.publish(t, topic, "closing", "end", "on")
		if s := <-opened; s != nil {
			// It got the final event or not, depending on the race, and
			// then the end.
			if evs := s.ended(t); len(evs) > 1 {
				t.Fatalf("round %d: got %+v", i, evs)
			}
		}
	}
}
