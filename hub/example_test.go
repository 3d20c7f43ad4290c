package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/herald-sse/herald/hub"
)

// Embed a hub in a program of your own, and publish from Go.
func Example() {
	key, err := hub.NewKey("HS256", []byte(os.Getenv("PUBLISHER_KEY")+"a secret at least this long"))
	if err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(hub.Config{
		PublisherKey: key,                                                 // HTTP publishers need a token
		Log:          hub.NewMemoryLog(hub.MemoryLogConfig{Size: 50_000}), // replay the last 50,000 events
		Heartbeat:    15 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.Handle(hub.Path, h)
	mux.Handle(hub.Path+"/", h)
	go func() { log.Fatal(http.ListenAndServe("localhost:8080", mux)) }()

	id, err := h.Publish(context.Background(), hub.Update{
		Topics: []string{"https://example.com/orders/42"},
		Data:   `{"status":"shipped"}`,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published", id)
}

// End a topic's stream: its subscribers get this last event and are
// disconnected; a client that comes back is answered 204 No Content, which
// stops a browser's EventSource.
func ExampleUpdate_end() {
	h, _ := hub.New(hub.Config{})
	defer h.Close()
	_, err := h.Publish(context.Background(), hub.Update{
		Topics: []string{"https://example.com/trips/7"},
		Type:   "arrived",
		Data:   `{"at":"12:04"}`,
		End:    true,
	})
	fmt.Println(err)
	// Output: <nil>
}

// Serve a hub on a listener of your own: plain publications from backends
// are answered without net/http, everything else by the server.
func ExampleHub_Serve() {
	key, err := hub.NewKey("HS256", []byte(os.Getenv("PUBLISHER_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(hub.Config{PublisherKey: key})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(hub.Path, h)
	mux.Handle(hub.Path+"/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", "localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := h.Serve(srv, ln); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	// On the way out: the server first, then the hub.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = h.Shutdown(ctx)
}

// Read a hub's counters, here for a health line; a metrics endpoint would
// export them.
func ExampleHub_Stats() {
	h, err := hub.New(hub.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	st := h.Stats()
	fmt.Printf("%d subscribers, %d dropped for not keeping up\n", st.Subscribers, st.SlowDropped)
	// Output: 0 subscribers, 0 dropped for not keeping up
}
