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
// subscriber whose socket does not take a whole event at once is cut. There
// is no history, no heartbeat, no authorization: it is a measuring stick,
// not a hub.
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
	s := &server{}
	for range max(*workers, 1) {
		w := &worker{subs: map[string][]int{}, events: make(chan event, 1024)}
		s.workers = append(s.workers, w)
		go w.run()
	}
	log.Printf("fanfloor: listening on %s, %d workers", ln.Addr(), len(s.workers))
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go s.serve(c.(*net.TCPConn))
	}
}

type server struct {
	workers []*worker
	next    atomic.Uint64 // the next worker to own a subscriber
	ids     atomic.Uint64
}

// event is one framed event for the subscribers of a topic.
type event struct {
	topic string
	chunk []byte
}

// worker writes events to its subscribers' sockets, on a thread of its own.
type worker struct {
	mu     sync.Mutex
	subs   map[string][]int // topic → socket descriptors
	events chan event
}

func (w *worker) run() {
	runtime.LockOSThread()
	for ev := range w.events {
		w.mu.Lock()
		for _, fd := range w.subs[ev.topic] {
			// The socket is nonblocking (the Go runtime's); a write
			// that does not take the whole chunk cuts the subscriber.
			n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&ev.chunk[0])), uintptr(len(ev.chunk)))
			if errno != 0 || int(n) != len(ev.chunk) {
				_ = syscall.Shutdown(fd, syscall.SHUT_RDWR) // its reader sees the end and removes it
			}
		}
		w.mu.Unlock()
	}
}

func (w *worker) add(topics []string, fd int) {
	w.mu.Lock()
	for _, t := range topics {
		w.subs[t] = append(w.subs[t], fd)
	}
	w.mu.Unlock()
}

// remove takes fd out before its connection is closed, so that no write
// goes to a descriptor number that another connection reuses.
func (w *worker) remove(topics []string, fd int) {
	w.mu.Lock()
	for _, t := range topics {
		w.subs[t] = slices.DeleteFunc(w.subs[t], func(x int) bool { return x == fd })
	}
	w.mu.Unlock()
}

const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"

// serve reads the requests of one connection: publications until a
// subscription, which keeps the connection until the client closes it.
func (s *server) serve(c *net.TCPConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		method, target, length, err := readHead(br)
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
			s.subscribe(c, br, u.Query()["topic"])
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
			id := "urn:fanfloor:" + strconv.FormatUint(s.ids.Add(1), 10)
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(id), id); err != nil {
				return
			}
			chunk := frame(id, form.Get("data"))
			for _, t := range form["topic"] {
				for _, w := range s.workers {
					w.events <- event{t, chunk}
				}
			}
		default:
			return
		}
	}
}

func (s *server) subscribe(c *net.TCPConn, br *bufio.Reader, topics []string) {
	if _, err := io.WriteString(c, streamHead); err != nil {
		return
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	w := s.workers[s.next.Add(1)%uint64(len(s.workers))]
	w.add(topics, fd)
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
// target and the Content-Length (-1 if none).
func readHead(br *bufio.Reader) (method, target string, length int, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", 0, err
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", "", 0, fmt.Errorf("bad request line %q", line)
	}
	length = -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return "", "", 0, err
		}
		if len(bytes.TrimSpace(h)) == 0 {
			return f[0], f[1], length, nil
		}
		if name, value, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return "", "", 0, err
			}
		}
	}
}
