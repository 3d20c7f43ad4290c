package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/herald-sse/herald/client"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/sse"
)

// A server that sends two events per connection and then hangs up: the
// stream reconnects, resumes with Last-Event-ID, and ends when the server
// answers 204.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		if n >= 4 {
			w.WriteHeader(http.StatusNoContent) // no more: do not come back
			return
		}
		s, err := sse.NewStream(w, r, sse.StreamConfig{Retry: 10 * time.Millisecond})
		if err != nil {
			return
		}
		defer s.Close()
		for i := n + 1; i <= n+2; i++ {
			_ = s.Send(sse.Event{ID: strconv.Itoa(i), Type: "tick", Data: "tick " + strconv.Itoa(i)})
		}
	}))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	stream := new(client.Client).Connect(context.Background(), req, client.Options{})
	for ev, err := range stream.Events() {
		var drop *client.DropError
		switch {
		case errors.As(err, &drop):
			fmt.Println("dropped; reconnecting after", stream.LastEventID())
		case err != nil:
			fmt.Println("ended:", err)
		default:
			fmt.Println(ev.Type, ev.Data)
		}
	}
	// Output:
	// tick tick 1
	// tick tick 2
	// dropped; reconnecting after 2
	// tick tick 3
	// tick tick 4
	// dropped; reconnecting after 4
	// ended: client: the server ended the stream (204 No Content)
}

// Subscribing to a Mercure hub and publishing to it. The hub here is
// herald's, in the same process; any Mercure hub will do.
func ExampleMercure() {
	key, _ := hub.NewKey("HS256", []byte(secret))
	h, _ := hub.New(hub.Config{PublisherKey: key, SubscriberKey: key})
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	hubURL := srv.URL + "/.well-known/mercure"
	ctx := context.Background()

	// A publisher token allows publishing to any topic. `herald token
	// --publish '*'` mints one.
	publisher := &client.Mercure{URL: hubURL, Token: publisherToken}
	first, err := publisher.Publish(ctx, client.Update{Topics: []string{"/orders/42"}, Data: `{"status":"paid"}`})
	if err != nil {
		log.Fatal(err)
	}
	_, _ = publisher.Publish(ctx, client.Update{Topics: []string{"/orders/42"}, Data: `{"status":"shipped"}`, Type: "status"})

	// A subscriber that saw the first update resumes after it.
	subscriber := &client.Mercure{URL: hubURL, Token: subscriberToken}
	stream, err := subscriber.Subscribe(ctx, []string{"/orders/{id}"}, client.Options{LastEventID: first})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	ev, err := stream.Next()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.Data)
	// Output: status {"status":"shipped"}
}

// Tokens signed with secret, for the examples.
var (
	publisherToken  = mint([]string{"*"}, nil)
	subscriberToken = mint(nil, []string{"/orders/{id}"})
)
