package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// The Mercure layer against a real herald hub on loopback.

const secret = "the client tests' secret, long enough for HS256"

func mint(publish, subscribe []string) string {
	claims := map[string]any{}
	if publish != nil {
		claims["publish"] = publish
	}
	if subscribe != nil {
		claims["subscribe"] = subscribe
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claims}).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

// newHub serves a herald hub that takes tokens signed with secret.
func newHub(t testing.TB) string {
	t.Helper()
	key, err := hub.NewKey("HS256", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{PublisherKey: key, SubscriberKey: key, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv.URL + "/.well-known/mercure"
}

func nextEvent(t *testing.T, s *client.Stream) sse.Event {
	t.Helper()
	ev, err := s.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// subscribed waits until the hub has s's subscription: it publishes a
// marker on topic until one arrives, and returns once it publishes no more.
func subscribed(t *testing.T, pub *client.Mercure, s *client.Stream, topic string) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, _ = pub.Publish(context.Background(), client.Update{Topics: []string{topic}, Data: "ready"})
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	ev, err := s.Next()
	close(stop)
	<-done
	if err != nil || ev.Data != "ready" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
}

func TestMercure(t *testing.T) {
	t.Parallel()
	url := newHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := &client.Mercure{URL: url, Token: mint([]string{"*"}, nil)}

	anon := &client.Mercure{URL: url}
	s, err := anon.Subscribe(ctx, []string{"https://example.com/books/{id}"}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	subscribed(t, pub, s, "https://example.com/books/0")

	id, err := pub.Publish(ctx, client.Update{
		Topics: []string{"https://example.com/books/1", "https://example.com/other"},
		Data:   "line 1\nline 2", ID: "urn:uuid:1", Type: "book", Retry: 1500 * time.Millisecond,
	})
	if err != nil || id != "urn:uuid:1" {
		t.Fatalf("Publish: %q, %v", id, err)
	}
	// A private update is not for an anonymous subscriber.
	if _, err := pub.Publish(ctx, client.Update{Topics: []string{"https://example.com/books/2"}, Data: "secret", Private: true}); err != nil {
		t.Fatal(err)
	}
	last, err := pub.Publish(ctx, client.Update{Topics: []string{"https://example.com/books/3"}, Data: "public"})
	if err != nil || last == "" {
		t.Fatalf("Publish: %q, %v", last, err)
	}
	var got []sse.Event
	for len(got) < 2 {
		ev := nextEvent(t, s)
		if ev.Data == "ready" {
			continue
		}
		got = append(got, ev)
	}
	if got[0].ID != "urn:uuid:1" || got[0].Type != "book" || got[0].Data != "line 1\nline 2" {
		t.Errorf("first update %+v", got[0])
	}
	if got[1].ID != last || got[1].Data != "public" {
		t.Errorf("second update %+v (want the public one, %s)", got[1], last)
	}

	// A subscriber allowed the private topic resumes after the first
	// update and gets both that follow.
	priv := &client.Mercure{URL: url, Token: mint(nil, []string{"https://example.com/books/{id}"})}
	r, err := priv.Subscribe(ctx, []string{"https://example.com/books/{id}"}, client.Options{LastEventID: "urn:uuid:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ev := nextEvent(t, r); ev.Data != "secret" {
		t.Errorf("resumed with %+v, want the private update", ev)
	}
	if ev := nextEvent(t, r); ev.ID != last {
		t.Errorf("resumed with %+v, want %s", ev, last)
	}
}

func TestMercureEnd(t *testing.T) {
	t.Parallel()
	url := newHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := &client.Mercure{URL: url, Token: mint([]string{"*"}, nil)}
	first, err := pub.Publish(ctx, client.Update{Topics: []string{"/trips/7"}, Data: "arrived"})
	if err != nil {
		t.Fatal(err)
	}
	end, err := pub.Publish(ctx, client.Update{Topics: []string{"/trips/7"}, Data: "the end", End: true})
	if err != nil {
		t.Fatal(err)
	}
	// Resuming before the end: the updates, the final one included, then
	// the end of the stream, for good.
	s, err := (&client.Mercure{URL: url, Client: &client.Client{Retry: 10 * time.Millisecond}}).Subscribe(ctx, []string{"/trips/7"}, client.Options{LastEventID: "earliest"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ev := nextEvent(t, s); ev.ID != first {
		t.Fatalf("got %+v", ev)
	}
	if ev := nextEvent(t, s); ev.ID != end || ev.Data != "the end" {
		t.Fatalf("got %+v", ev)
	}
	var err2 error
	for _, err2 = s.Next(); err2 != nil && isDrop(err2); _, err2 = s.Next() {
	}
	if !errors.Is(err2, client.ErrNoContent) {
		t.Fatalf("the stream ended with %v, want ErrNoContent", err2)
	}
}

func isDrop(err error) bool {
	var d *client.DropError
	return errors.As(err, &d)
}

func TestMercureErrors(t *testing.T) {
	t.Parallel()
	url := newHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A subscriber token cannot publish: the hub's reason comes back.
	_, err := (&client.Mercure{URL: url, Token: mint(nil, []string{"*"})}).Publish(ctx, client.Update{Topics: []string{"/a"}, Data: "x"})
	var he *client.HubError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || he.Code == "" || he.Message == "" {
		t.Fatalf("publish with a subscriber token: %#v", err)
	}
	// No token at all.
	_, err = (&client.Mercure{URL: url}).Publish(ctx, client.Update{Topics: []string{"/a"}, Data: "x"})
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || he.Code != "missing_token" {
		t.Fatalf("publish without a token: %#v", err)
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), he.Message) {
		t.Fatalf("the error does not say what the hub said: %v", err)
	}

	// A subscription with a bad token ends at once, with the hub's reason.
	s, err := (&client.Mercure{URL: url, Token: "not.a.token"}).Subscribe(ctx, []string{"/a"}, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Next()
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || he.Code != "invalid_token" {
		t.Fatalf("subscribe with a bad token: %#v", err)
	}

	for _, bad := range []string{"", "localhost:3000/.well-known/mercure", "ftp://example.com/", "http://[::1"} {
		m := &client.Mercure{URL: bad}
		if _, err := m.Subscribe(ctx, []string{"/a"}, client.Options{}); err == nil {
			t.Errorf("Subscribe accepted the URL %q", bad)
		}
		if _, err := m.Publish(ctx, client.Update{Topics: []string{"/a"}}); err == nil {
			t.Errorf("Publish accepted the URL %q", bad)
		}
	}
	m := &client.Mercure{URL: url}
	if _, err := m.Subscribe(ctx, nil, client.Options{}); err == nil {
		t.Error("Subscribe to no topic")
	}
	if _, err := m.Publish(ctx, client.Update{Data: "x"}); err == nil {
		t.Error("Publish to no topic")
	}
}
