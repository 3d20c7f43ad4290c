// Command fanfloor is the floor under fan-out on this machine: a server
// that speaks just enough of the Mercure protocol for "herald bench fanout"
// and whose only work per delivery is one write system call. No hub that
// writes each event to each subscriber as it comes can spend less CPU per
// delivery, or deliver the last copy of an event sooner, than this server
// does under the same load.
//
//	go run ./cmd/fanfloor -addr 127.0.0.1:8383 &
//	herald bench fanout -url http://127.0.0.1:8383/.well-known/mercure -pid PID \
//		-subscribers 1000 -events 1500 -rate 100
//
// cmd/compare runs it as the hub "floor" (go run ./cmd/compare -suite
// fanout -hubs herald,nchan,floor).
//
// A subscription (GET with one or more topic parameters) gets a chunked
// event stream; a publication (POST of a form with topic and data) gets an
// ID, and its event, encoded and framed once, goes to every subscriber of
// its topics with one write(2) each, from a pool of workers that each own
// a share of the subscribers (as nchan's workers and herald's pool do). A
// subscriber whose socket does not take a whole event at once is cut.
// Events are kept in memory, all of them, so that a subscription with
// Last-Event-ID gets the events after it in the same write as the response
// head, and then the rest live, none missed or repeated: the reconnection
// storm can run it too. There is no heartbeat and no authorization: it is a
// measuring stick, not a hub.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8383", "the address to listen on")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "the writing workers, each owning a share of the subscribers")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("fanfloor: listening on %s, %d workers", ln.Addr(), max(*workers, 1))
	log.Fatal(serveOn(ln, *workers))
}

// serveOn serves on ln until it fails.
func serveOn(ln net.Listener, workers int) error { return newServer(workers).serve(ln) }

// newServer returns a server with its workers running.
func newServer(workers int) *server {
	s := &server{}
	for range max(workers, 1) {
		w := &worker{subs: map[string][]sub{}, events: make(chan event, 1024)}
		s.workers = append(s.workers, w)
		go w.run()
	}
	return s
}

// serve serves on ln until it fails.
func (s *server) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.serveConn(c.(*net.TCPConn))
	}
}

type server struct {
	workers []*worker
	next    atomic.Uint64 // the next worker to own a subscriber

	order   sync.Mutex // held by a publication, to hand events to the workers in order
	mu      sync.Mutex
	history []event // every event: history[i] has the ID urn:fanfloor:i+1

	// headWritten, if not nil, is called by a subscription once its
	// stream's head is written: a test's hook.
	headWritten func()
}

// event is one framed event for the subscribers of its topics.
type event struct {
	seq    int // its place in the history, from 1
	topics []string
	chunk  []byte
}

// sub is a subscriber: its socket, and the last event it has, which the
// worker writes no event up to.
type sub struct {
	fd    int
	after int
}

// worker writes events to its subscribers' sockets, on a thread of its own.
type worker struct {
	mu     sync.Mutex
	subs   map[string][]sub // by topic
	sent   int              // the last event written to the subscribers
	events chan event
}

func (w *worker) run() {
	runtime.LockOSThread()
	for ev := range w.events {
		w.mu.Lock()
		w.sent = ev.seq
		subs := w.subs[ev.topics[0]]
		if len(ev.topics) > 1 {
			subs = w.union(ev.topics)
		}
		for _, sb := range subs {
			if ev.seq <= sb.after {
				continue
			}
			// The socket is nonblocking (the Go runtime's); a write
			// that does not take the whole chunk cuts the subscriber.
			n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(sb.fd), uintptr(unsafe.Pointer(&ev.chunk[0])), uintptr(len(ev.chunk)))
			if errno != 0 || int(n) != len(ev.chunk) {
				_ = syscall.Shutdown(sb.fd, syscall.SHUT_RDWR) // its reader sees the end and removes it
			}
		}
		w.mu.Unlock()
	}
}

// union returns the subscribers of any of topics, each once.
func (w *worker) union(topics []string) []sub {
	var subs []sub
	for _, t := range topics {
		for _, sb := range w.subs[t] {
			if !slices.Contains(subs, sb) {
				subs = append(subs, sb)
			}
		}
	}
	return subs
}

// add makes fd a subscriber of topics, after writing it the stream's head
// and the events of its topics from the one after the event after (0:
// none) up to the last the worker has written to its subscribers: the
// worker writes it the next ones, from the one after both. Head, catch-up
// and registration are one step for the worker, which writes no event in
// between.
func (w *worker) add(s *server, topics []string, fd int, after int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []byte(streamHead)
	if after > 0 {
		s.mu.Lock()
		for _, ev := range s.history[min(after, w.sent):w.sent] {
			if slices.ContainsFunc(ev.topics, func(t string) bool { return slices.Contains(topics, t) }) {
				out = append(out, ev.chunk...)
			}
		}
		s.mu.Unlock()
	}
	for len(out) > 0 {
		n, err := syscall.Write(fd, out)
		if err != nil {
			return err // EAGAIN among them: a catch-up larger than the socket takes is not for this measure
		}
		out = out[n:]
	}
	for _, t := range topics {
		w.subs[t] = append(w.subs[t], sub{fd, max(after, w.sent)})
	}
	return nil
}

// remove takes fd out before its connection is closed, so that no write
// goes to a descriptor number that another connection reuses.
func (w *worker) remove(topics []string, fd int) {
	w.mu.Lock()
	for _, t := range topics {
		w.subs[t] = slices.DeleteFunc(w.subs[t], func(x sub) bool { return x.fd == fd })
	}
	w.mu.Unlock()
}

const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"

// serveConn reads the requests of one connection: publications until a
// subscription, which keeps the connection until the client closes it.
func (s *server) serveConn(c *net.TCPConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		method, target, length, lastEventID, err := readHead(br)
		if err != nil {
			return
		}
		switch method {
		case "GET":
			u, err := url.ParseRequestURI(target)
			if err != nil || len(u.Query()["topic"]) == 0 {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return
			}
			s.subscribe(c, br, u.Query()["topic"], lastEventID)
			return
		case "POST":
			if length < 0 || length > 1<<20 {
				return
			}
			body := make([]byte, length)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
			form, err := url.ParseQuery(string(body))
			if err != nil || len(form["topic"]) == 0 {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			id := s.publish(form["topic"], form.Get("data"))
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(id), id); err != nil {
				return
			}
		default:
			return
		}
	}
}

// publish keeps an event and hands it to the workers, in order; it
// returns the event's ID.
func (s *server) publish(topics []string, data string) string {
	s.order.Lock()
	defer s.order.Unlock()
	s.mu.Lock()
	ev := event{seq: len(s.history) + 1, topics: topics}
	id := "urn:fanfloor:" + strconv.Itoa(ev.seq)
	ev.chunk = frame(id, data)
	s.history = append(s.history, ev)
	s.mu.Unlock()
	// Not under mu, which a worker's add may wait for while its worker
	// waits for it.
	for _, w := range s.workers {
		w.events <- ev
	}
	return id
}

func (s *server) subscribe(c *net.TCPConn, br *bufio.Reader, topics []string, lastEventID string) {
	after := 0
	if lastEventID != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(lastEventID, "urn:fanfloor:"))
		if err != nil || n < 0 {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		after = n
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	// The worker writes the head with the catch-up and registers the
	// subscriber before it writes another event: a client that has the
	// head misses nothing published after it.
	w := s.workers[s.next.Add(1)%uint64(len(s.workers))]
	if err := w.add(s, topics, fd, after); err != nil {
		return
	}
	if s.headWritten != nil {
		s.headWritten()
	}
	_, _ = io.Copy(io.Discard, br) // until the client goes
	w.remove(topics, fd)
}

// frame returns the event as one chunk of a chunked body.
func frame(id, data string) []byte {
	var ev bytes.Buffer
	ev.WriteString("id: " + id + "\n")
	for line := range strings.Lines(data) {
		ev.WriteString("data: " + strings.TrimSuffix(line, "\n") + "\n")
	}
	if data == "" {
		ev.WriteString("data: \n")
	}
	ev.WriteString("\n")
	return fmt.Appendf(nil, "%x\r\n%s\r\n", ev.Len(), ev.Bytes())
}

// readHead reads a request line and headers, returning the method, the
// target, the Content-Length (-1 if none) and the Last-Event-ID.
func readHead(br *bufio.Reader) (method, target string, length int, lastEventID string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", 0, "", err
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", "", 0, "", fmt.Errorf("bad request line %q", line)
	}
	length = -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return "", "", 0, "", err
		}
		if len(bytes.TrimSpace(h)) == 0 {
			return f[0], f[1], length, lastEventID, nil
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		switch {
		case !ok:
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return "", "", 0, "", err
			}
		case bytes.EqualFold(name, []byte("Last-Event-ID")):
			lastEventID = string(bytes.TrimSpace(value))
		}
	}
}
