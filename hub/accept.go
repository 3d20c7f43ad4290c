package hub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/herald-sse/herald/internal/fdlimit"
)

// Bounds of Serve's accepting.
const (
	// MaxRejections bounds the connections Serve refuses at once, past
	// MaxConnections: each holds a file descriptor and a goroutine for at
	// most rejectTimeout and rejectLinger. Past it Serve stops accepting
	// until one is done
	// (or a connection it holds closes), and new connections wait in the
	// kernel's backlog: a flood cannot make the refusals themselves take
	// the process's descriptors.
	MaxRejections = 64

	// ReservedDescriptors is the fewest file descriptors that
	// DefaultMaxConnections leaves beside the connections it allows: for
	// the connections being refused (MaxRejections), and 32 for the
	// history store's files, the listeners and the process's own.
	ReservedDescriptors = MaxRejections + 32

	// defaultConnectionShare is the percentage of the process's limit on
	// open files that DefaultMaxConnections gives to connections. The
	// rest is for the connections being refused (MaxRejections), the
	// history store's files and the process's own: a hub that ran out of
	// them could no longer write its history.
	defaultConnectionShare = 90
	// fallbackMaxConnections is DefaultMaxConnections where the process
	// has no limit on open files to size it by (outside Unix).
	fallbackMaxConnections = 10_000

	// rejectTimeout bounds the refusal of one connection up to its
	// answer: the TLS handshake, the request's head, the answer. A client
	// that sends nothing holds a rejection no longer.
	rejectTimeout = 2 * time.Second
	// rejectLinger and rejectDrainSize bound the wait for the client to
	// close after the answer, and what is read and dropped meanwhile.
	// Closing a socket with unread bytes resets the connection, and a
	// reset can make the client lose the answer; net/http lingers as
	// long.
	rejectLinger    = 500 * time.Millisecond
	rejectDrainSize = 64 << 10
	// minRetryAfter and maxRetryAfter bound the Retry-After of a refusal,
	// in seconds; it is drawn between them so that refused clients do not
	// all come back at once.
	minRetryAfter, maxRetryAfter = 1, 5

	// minAcceptDelay and maxAcceptDelay bound the pause after a failed
	// accept, which doubles from the one to the other while accept keeps
	// failing. A pause keeps a hub out of descriptors from spinning on
	// accept; a short one has it serve again soon after descriptors free
	// up (a connection Serve holds closing ends the pause at once).
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = 100 * time.Millisecond
	// acceptLogInterval is the least time between two log lines about
	// failed accepts: a hub out of descriptors fails hundreds of times a
	// minute, and its log must not grow as fast.
	acceptLogInterval = time.Second
)

// DefaultMaxConnections returns what a Config's MaxConnections of zero
// means: 90 % of the process's limit on open files (RLIMIT_NOFILE's soft
// limit, which the Go runtime raises to the hard limit at start), read
// now, and at least ReservedDescriptors fewer than the limit, or 10,000
// where the process has no such limit. The rest of the descriptors are
// left for the connections being refused, the history store and the
// process's own files.
func DefaultMaxConnections() int {
	if n, ok := fdlimit.Current(); ok {
		return max(1, min(n*defaultConnectionShare/100, n-ReservedDescriptors))
	}
	return fallbackMaxConnections
}

// accept accepts connections until ln is closed. It retries every error
// of Accept, after a pause, but those that can never clear (acceptFatal),
// which it returns.
func (s *plainServer) accept() error {
	var delay time.Duration
	for {
		if !s.room() {
			return http.ErrServerClosed
		}
		c, err := s.ln.Accept()
		if err != nil {
			if s.isClosing() {
				return http.ErrServerClosed
			}
			if acceptFatal(err) {
				return err
			}
			// Out of descriptors, or of memory, or a connection that
			// failed on the way: none of it is the hub's end.
			s.h.stats.acceptErrors.Add(1)
			s.failures.failed(err)
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			s.pause(delay)
			continue
		}
		delay = 0
		s.h.stats.accepted.Add(1)
		s.failures.accepted()
		if s.full() {
			s.failures.rejected(c.RemoteAddr(), s.limit)
			s.h.stats.refused[refusedOther][codeIndex(codeTooManyConns)].Add(1)
			s.reject(c)
			continue
		}
		if !s.take(c) {
			return http.ErrServerClosed
		}
	}
}

// acceptFatal reports whether an error of Accept can never clear: the
// listener is closed, or (on Unix) its descriptor is not a listening
// socket. Any other error may, and is retried: a limit reached (EMFILE,
// ENFILE), memory short (ENOBUFS, ENOMEM), a connection that failed before
// it was accepted (ECONNABORTED, EPROTO), a firewall's refusal (EPERM), an
// error of a listener that wraps another one.
func acceptFatal(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOTSOCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EFAULT)
}

// full reports whether Serve holds as many connections as it may.
func (s *plainServer) full() bool {
	return s.limit >= 0 && s.open.Load() >= int64(s.limit)
}

// room waits until Serve can take a new connection: to serve it, or to
// refuse it. It reports false when Serve is shutting down.
func (s *plainServer) room() bool {
	for s.full() && s.rejecting.Load() >= MaxRejections {
		select {
		case <-s.freed:
		case <-s.done:
			return false
		}
	}
	return true
}

// pause waits d, or less if a connection Serve held closes or Serve shuts
// down.
func (s *plainServer) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.freed:
	case <-s.done:
	}
}

// freeOne records that a connection Serve held, or one it refused, is
// closed, and wakes the accept loop if it waits.
func (s *plainServer) freeOne() {
	select {
	case s.freed <- struct{}{}:
	default: // it has a wake-up already
	}
}

// take counts a new connection and serves it: through the hub's own
// answers to plain publications if it is a TCP connection, else (or on
// TLS) by srv. It reports false when Serve is shutting down.
func (s *plainServer) take(c net.Conn) bool {
	if _, ok := c.(*tls.Conn); ok {
		// From a listener that does TLS itself: srv must have the
		// *tls.Conn to serve HTTP/2 and set Request.TLS, and cannot
		// have it wrapped, so it goes uncounted.
		s.handOver(c)
		return true
	}
	s.open.Add(1)
	s.h.stats.conns.Add(1)
	sc := &servedConn{Conn: c, s: s}
	if _, ok := c.(*net.TCPConn); !ok || s.rejectTLS != nil {
		s.handOver(sc)
		return true
	}
	pc := &plainConn{s: s, c: sc}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = sc.Close()
		return false
	}
	s.conns[pc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go pc.serve()
	return true
}

// refusal is a connection being refused, for shutdown to cut short.
type refusal struct{ c net.Conn }

// reject refuses a connection past the limit, on a goroutine of its own.
func (s *plainServer) reject(c net.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	r := &refusal{c}
	s.rejecting.Add(1)
	s.rejects[r] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			_ = c.Close()
			s.mu.Lock()
			delete(s.rejects, r)
			s.mu.Unlock()
			s.rejecting.Add(-1)
			s.freeOne()
			s.wg.Done()
		}()
		s.refuse(c)
	}()
}

// refuse answers the first request on c with 503 too_many_connections,
// completing the TLS handshake first if Serve speaks TLS, within
// rejectTimeout, then lingers while the client closes. The request's head
// is read first (as much of it as a pooled reader holds), so that the
// answer answers a request, and the rest while the client closes.
func (s *plainServer) refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(rejectTimeout))
	rw := c
	if s.rejectTLS != nil {
		tc := tls.Server(c, s.rejectTLS)
		if tc.Handshake() != nil {
			return
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			return // HTTP/2, from a GetConfigForClient that offers it
		}
		rw = tc
	}
	br := plainReaders.Get().(*bufio.Reader)
	br.Reset(rw)
	defer func() {
		br.Reset(nil)
		plainReaders.Put(br)
	}()
	head, ok := readHead(br)
	if !ok {
		return
	}
	if _, err := rw.Write(s.refusalAnswer(bytes.HasPrefix(head, []byte("HEAD ")))); err != nil {
		return
	}
	if tc, ok := rw.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if s.isClosing() {
		return // shutdown cut the connection's deadline short
	}
	_ = c.SetReadDeadline(time.Now().Add(rejectLinger))
	_, _ = io.CopyN(io.Discard, rw, rejectDrainSize) // until the client closes
}

// readHead reads a request's head into br, up to its end or as much as br
// holds, and returns what it read; it reports false if the connection
// ended or timed out first.
func readHead(br *bufio.Reader) ([]byte, bool) {
	for {
		b, _ := br.Peek(br.Buffered())
		if bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n")) || len(b) == br.Size() {
			return b, true
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, false
		}
	}
}

// refusalAnswer returns the answer to a connection past the limit, with no body
// if it answers a HEAD request.
func (s *plainServer) refusalAnswer(head bool) []byte {
	a := &answer{header: http.Header{}}
	a.header.Set("Connection", "close")
	a.header.Set("Retry-After", strconv.Itoa(minRetryAfter+rand.IntN(maxRetryAfter-minRetryAfter+1)))
	writeError(a, &Error{Status: http.StatusServiceUnavailable, Code: codeTooManyConns,
		Message: fmt.Sprintf("the hub holds its maximum of %d connections; retry later", s.limit)})
	b := a.appendTo(nil)
	if head {
		b = b[:len(b)-a.body.Len()]
	}
	return b
}

// acceptLog logs the failures of Accept at most once per
// acceptLogInterval, each line with the number of failures since the line
// before, and the connections refused past the limit likewise. Only the
// accept loop uses it.
type acceptLog struct {
	logger   *slog.Logger
	last     time.Time // when the last line about failures was written
	failures int       // failures since then

	lastRefusal time.Time // when the last line about refusals was written
	refusals    int       // refusals not yet logged
}

// rejected logs a connection refused past the limit of limit connections,
// with those refused since the last line, once acceptLogInterval has
// passed since it: a flood of connections must not flood the log too.
func (l *acceptLog) rejected(remote net.Addr, limit int) {
	l.refusals++
	now := time.Now()
	if now.Sub(l.lastRefusal) < acceptLogInterval || !l.logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	l.logger.Info("hub: connection refused: the hub holds its maximum of connections",
		"status", http.StatusServiceUnavailable, "error", codeTooManyConns, "remote", remote.String(),
		"refused", l.refusals, "max_connections", limit)
	l.lastRefusal, l.refusals = now, 0
}

func (l *acceptLog) failed(err error) {
	l.failures++
	now := time.Now()
	if now.Sub(l.last) < acceptLogInterval {
		return
	}
	l.logger.Warn("hub: accepting a connection failed; retrying", "error", err, "failures", l.failures)
	l.last, l.failures = now, 0
}

// accepted logs that accept works again, with the failures not yet
// logged, once acceptLogInterval has passed since the last line.
func (l *acceptLog) accepted() {
	if l.failures == 0 {
		return
	}
	now := time.Now()
	if now.Sub(l.last) < acceptLogInterval {
		return
	}
	l.logger.Info("hub: accepting connections again", "failures", l.failures)
	l.last, l.failures = now, 0
}
