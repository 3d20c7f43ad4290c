package hub

import (
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
)

// sink is where a subscriber's bytes go. One runner at a time uses it,
// except abort, which any goroutine may call.
type sink interface {
	// start writes the response's head and a first comment. The
	// subscriber's runner calls it first, once.
	start() error
	// send writes bufs whole, in order. A sink that writes without
	// blocking returns false when the connection would have blocked;
	// finish then writes the rest, waiting as long as the dispatch
	// timeout allows.
	send(bufs [][]byte) (sent bool, err error)
	finish() error
	// nonblocking reports whether send returns without waiting.
	nonblocking() bool
	// close writes final, if any, ends the response and releases the
	// connection. It is idempotent.
	close(final []byte)
	// abort cuts the connection at once, failing any write in progress
	// and discarding what is still queued for the client.
	abort()
}

// connSink writes the chunked body of an HTTP/1.1 response to a hijacked
// connection: no goroutine and no buffer is tied to an idle subscriber.
// On Linux, writes to a TCP connection are first tried without blocking,
// from the pool worker, with one writev for everything pending.
type connSink struct {
	conn    net.Conn
	raw     rawConn // nil: writes may block, so they run on a goroutine
	timeout time.Duration
	head    []byte // the response's head, until start writes it

	hdr     [20]byte    // the chunk size line
	iov     [][]byte    // the write vector: size line, buffers, CRLF
	rest    net.Buffers // what a nonblocking send left
	aborted atomic.Bool
	once    sync.Once
}

var (
	crlf       = []byte("\r\n")
	lastChunk  = []byte("0\r\n\r\n")
	errAborted = errors.New("hub: connection cut")
)

func newConnSink(conn net.Conn, timeout time.Duration) *connSink {
	boundUnsent(conn)
	return &connSink{conn: conn, raw: nonblockingConn(conn), timeout: timeout}
}

func (c *connSink) nonblocking() bool { return c.raw != nil }

func (c *connSink) start() error {
	head := c.head
	c.head = nil
	return c.writeBlocking([][]byte{head})
}

// frame makes bufs one chunk of the chunked body.
func (c *connSink) frame(bufs [][]byte) [][]byte {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	size := strconv.AppendInt(c.hdr[:0], int64(n), 16)
	size = append(size, '\r', '\n')
	c.iov = append(append(append(c.iov[:0], size), bufs...), crlf)
	return c.iov
}

func (c *connSink) send(bufs [][]byte) (bool, error) {
	iov := c.frame(bufs)
	if c.raw == nil {
		return true, c.writeBlocking(iov)
	}
	n, err := c.raw.tryWritev(iov)
	if err != nil {
		return false, err
	}
	for len(iov) > 0 && n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	if len(iov) == 0 {
		return true, nil
	}
	iov[0] = iov[0][n:]
	c.rest = iov
	return false, nil
}

func (c *connSink) finish() error {
	rest := c.rest
	c.rest = nil
	return c.writeBlocking(rest)
}

// writeBlocking writes bufs, waiting at most the dispatch timeout.
func (c *connSink) writeBlocking(bufs net.Buffers) error {
	if c.aborted.Load() {
		return errAborted
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	_, err := bufs.WriteTo(c.conn)
	if err == nil {
		// A deadline left in place would fail the next nonblocking try.
		err = c.conn.SetWriteDeadline(time.Time{})
	}
	return err
}

func (c *connSink) close(final []byte) {
	c.once.Do(func() {
		if !c.aborted.Load() {
			bufs := [][]byte{lastChunk}
			if len(final) > 0 {
				bufs = append(c.frame([][]byte{final}), lastChunk)
			}
			_ = c.writeBlocking(bufs) // a client gone by now needs nothing more
		}
		c.closeConn()
	})
}

// abort resets the connection (SO_LINGER 0) as it closes it: the kernel
// then drops at once what it still holds for the client, which a plain
// close would leave queued behind a FIN, on an orphaned socket, for as
// long as a client that reads nothing keeps its window shut.
func (c *connSink) abort() {
	if !c.aborted.Swap(true) {
		if tc, ok := baseConn(c.conn).(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.closeConn()
	}
}

// closeConn closes the connection, through the raw writer when there is
// one, which must see no more writes once it is closed.
func (c *connSink) closeConn() {
	if c.raw != nil {
		_ = c.raw.closeWith(c.conn.Close)
		return
	}
	_ = c.conn.Close()
}

// baseConn returns the connection under the layers put over it: TLS, and
// Serve's wrapper that counts connections.
func baseConn(conn net.Conn) net.Conn {
	for {
		switch c := conn.(type) {
		case *tls.Conn:
			conn = c.NetConn()
		case *servedConn:
			conn = c.Conn
		default:
			return conn
		}
	}
}

// handlerSink writes through the http.ResponseWriter of a handler that
// stays in ServeHTTP: for HTTP/2 streams, which cannot be hijacked, and for
// writers that refuse to be.
type handlerSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func newHandlerSink(w http.ResponseWriter, timeout time.Duration) *handlerSink {
	return &handlerSink{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (s *handlerSink) nonblocking() bool { return false }

// start sends the head, with a first comment: the handler has set the
// headers.
func (s *handlerSink) start() error {
	_, err := s.send([][]byte{heartbeat})
	return err
}

func (s *handlerSink) send(bufs [][]byte) (bool, error) {
	// Without write deadlines a stuck client holds the handler until the
	// connection dies; the hub still works.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	for _, b := range bufs {
		if _, err := s.w.Write(b); err != nil {
			return false, err
		}
	}
	if err := s.rc.Flush(); err != nil {
		return false, err
	}
	// The deadline bounds this write only. An HTTP/2 stream's deadline is
	// a timer that resets the stream when it fires, written to or not: left
	// in place, it would cut an idle subscriber a dispatch timeout after
	// its last write, long before the next heartbeat.
	_ = s.rc.SetWriteDeadline(time.Time{})
	return true, nil
}

func (s *handlerSink) finish() error { return nil }

func (s *handlerSink) close(final []byte) {
	if len(final) > 0 {
		_, _ = s.send([][]byte{final})
	}
}

// abort does nothing: a handler's response cannot be cut from outside, and
// a write in progress ends at its deadline, the dispatch timeout.
func (s *handlerSink) abort() {}

// retryHint returns a retry field with a random delay of 1 to 5 seconds.
func retryHint() []byte {
	return sse.AppendRetry(nil, time.Second+rand.N(4*time.Second))
}
