package hub

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Serve accepts connections on ln and serves them with srv, as srv.Serve
// does, with two differences: it bounds the connections it holds, and on
// an HTTP/1.1 connection the hub answers plain publications itself,
// without net/http, at about half the CPU time (BENCHMARKS.md has the
// figures).
//
// A plain publication is a POST to Path with a Host, a Bearer token in its
// Authorization header, a Content-Length, the form content type and
// nothing that asks for more: no Cookie, Origin, Expect,
// Transfer-Encoding, Upgrade or TE, and no Connection but keep-alive; its
// request line, headers and body fit in 4 KiB. Backends publishing with a
// token send nothing else. The hub answers it with the bytes srv would
// write, having checked it with the handler's own code (checkPublication).
// The first request that is not plain, or that the hub refuses (a bad
// token, form or topic), and everything after it on that connection, go
// to srv as they came: srv.Handler must serve the hub at
// Path, and every other request gets net/http's full handling. srv's
// ConnState and ConnContext hooks see only those connections, in a wrapper
// whose NetConn method returns the connection ln accepted (within a
// *tls.Conn when Serve speaks TLS).
//
// Every connection Serve accepts counts against the hub's MaxConnections
// until it is closed, whoever closes it: the hub, srv, or the hub again
// for a subscription taken from srv. Past the limit a new connection is
// accepted, its first request's head read, and it is answered 503 with
// the error too_many_connections, Retry-After and Connection: close; at
// most MaxRejections at a time, past which Serve stops accepting until one
// is done or a connection closes. The connections open are untouched.
//
// When srv.TLSConfig holds a certificate (Certificates, GetCertificate or
// GetConfigForClient), Serve speaks TLS on every connection, as
// srv.ServeTLS would, HTTP/2 included: srv serves them all (there are no
// plain publications over TLS) and a refusal completes the handshake
// first (HTTP/1.1 only). On a listener of TLS connections (tls.NewListener)
// instead, srv serves them all too, but they go uncounted: srv needs them
// unwrapped.
//
// Serve never ends for an error that may clear: when Accept fails (out of
// file descriptors, say), it waits 5 ms, doubling to 100 ms while it keeps
// failing, or less when a connection it holds closes, and tries again,
// logging the failures at most once a second. It returns only when ln is
// closed, or for an error that can never clear: a descriptor that is not a
// listening socket (EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP, EFAULT).
//
// srv.Shutdown stops Serve too: it closes ln and the connections that wait
// for a request, and lets the publications in progress finish; then Serve
// returns http.ErrServerClosed. As in net/http, srv.ReadHeaderTimeout (or
// else srv.ReadTimeout) bounds the wait for a connection's first request
// and for the rest of a request, srv.IdleTimeout (or else
// srv.ReadTimeout) the wait for the next one.
func (h *Hub) Serve(srv *http.Server, ln net.Listener) error {
	limit := h.cfg.MaxConnections
	if limit == 0 {
		limit = DefaultMaxConnections()
	}
	s := &plainServer{
		h:        h,
		ln:       ln,
		queue:    newConnQueue(ln.Addr()),
		limit:    limit,
		conns:    make(map[*plainConn]struct{}),
		rejects:  make(map[*refusal]struct{}),
		freed:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		idle:     cmp.Or(srv.IdleTimeout, srv.ReadTimeout),
		partial:  cmp.Or(srv.ReadHeaderTimeout, srv.ReadTimeout),
		failures: acceptLog{logger: h.logger},
	}
	if c := srv.TLSConfig; c != nil && (len(c.Certificates) > 0 || c.GetCertificate != nil || c.GetConfigForClient != nil) {
		// Taken before srv.ServeTLS adds to srv.TLSConfig's NextProtos.
		s.rejectTLS = c.Clone()
		s.rejectTLS.NextProtos = []string{"http/1.1"}
	}
	srv.RegisterOnShutdown(s.shutdown)
	served := make(chan error, 1)
	go func() {
		var err error
		if s.rejectTLS != nil {
			// The certificate is in srv.TLSConfig; ServeTLS offers
			// HTTP/2 unless srv says otherwise, and sets it up.
			err = srv.ServeTLS(s.queue, "", "")
		} else {
			err = srv.Serve(s.queue)
		}
		s.shutdown() // srv.Close, which runs no shutdown hook
		served <- err
	}()
	err := s.accept()
	s.shutdown()
	_ = s.queue.Close()
	serr := <-served
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) && serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// plainServer is the state of one Serve.
type plainServer struct {
	h       *Hub
	ln      net.Listener
	queue   *connQueue    // the connections handed over to srv
	idle    time.Duration // the longest wait for a request, if positive
	partial time.Duration // the longest wait for the rest of one, if positive
	wg      sync.WaitGroup

	// rejectTLS, if Serve speaks TLS, is srv's configuration with
	// HTTP/1.1 alone, for refusals.
	rejectTLS *tls.Config
	limit     int           // the most connections held at once; negative: no limit
	open      atomic.Int64  // the connections held (servedConn)
	rejecting atomic.Int32  // the connections being refused
	freed     chan struct{} // a wake-up for the accept loop: one of them closed
	done      chan struct{} // closed by shutdown
	failures  acceptLog     // the accept loop's

	mu      sync.Mutex
	closing bool
	conns   map[*plainConn]struct{}
	rejects map[*refusal]struct{}
}

// isClosing reports whether shutdown has begun.
func (s *plainServer) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// shutdown stops accepting, closes the connections that wait for a
// request and cuts short the wait for the rest of one; a publication being
// answered is finished. It runs when srv shuts down, and when Serve ends.
func (s *plainServer) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.closing = true
	close(s.done)
	_ = s.ln.Close()
	for r := range s.rejects {
		_ = r.c.SetDeadline(time.Now())
	}
	for pc := range s.conns {
		switch pc.state {
		case waiting:
			pc.cut = true
			_ = pc.c.Close()
		case reading:
			pc.cut = true
			_ = pc.c.SetReadDeadline(time.Now())
		}
	}
}

// handOver gives a connection to srv.
func (s *plainServer) handOver(c net.Conn) {
	if !s.queue.push(c) {
		_ = c.Close()
	}
}

// plainBufSize is the most a plain publication may take, request line,
// headers and body; a larger one is srv's.
const plainBufSize = 4096

var plainReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, plainBufSize) }}

// What a plain connection is doing, for shutdown.
type connState uint8

const (
	answering connState = iota // reading a request it has, or answering it
	waiting                    // for a request
	reading                    // the rest of a request
)

// plainConn is a connection that has had only plain publications so far.
type plainConn struct {
	s *plainServer
	c *servedConn // of a *net.TCPConn

	// Guarded by s.mu.
	state connState
	cut   bool // by shutdown: the connection ends, its request unanswered

	deadline time.Time // the read deadline set last
	out      []byte    // the answer being written
}

// serve answers plain publications until the connection ends or a request
// is not plain.
func (pc *plainConn) serve() {
	br := plainReaders.Get().(*bufio.Reader)
	br.Reset(pc.c.Conn)
	handed := false
	defer func() {
		pc.s.mu.Lock()
		delete(pc.s.conns, pc)
		pc.s.mu.Unlock()
		if !handed {
			_ = pc.c.Close()
			br.Reset(nil)
			plainReaders.Put(br)
		}
		pc.s.wg.Done()
	}()
	for first := true; ; first = false {
		if br.Buffered() == 0 {
			if !pc.wait(waiting) {
				return
			}
			if first {
				// As in net/http: a new connection has the header
				// timeout to send its first request.
				pc.setDeadline(pc.s.partial, false)
			} else {
				pc.setDeadline(pc.s.idle, true)
			}
			_, err := br.Peek(1)
			if !pc.wait(answering) || err != nil {
				return
			}
		}
		buf, _ := br.Peek(br.Buffered())
		req, st := parsePlain(buf)
		req.remote = pc.c.RemoteAddr()
		if st == plainPartial && len(buf) < plainBufSize {
			if !pc.wait(reading) {
				return
			}
			pc.setDeadline(pc.s.partial, false)
			_, err := br.Peek(len(buf) + 1)
			if !pc.wait(answering) || err != nil {
				return
			}
			continue
		}
		if st != plainOK || !pc.s.h.publishPlain(req, &pc.out) {
			// From here on the connection is srv's, with the bytes
			// read so far: it reads the request again and answers.
			if !pc.deadline.IsZero() {
				_ = pc.c.SetReadDeadline(time.Time{})
			}
			handed = true
			pc.c.buffer(br)
			pc.s.handOver(pc.c)
			return
		}
		_, _ = br.Discard(req.size)
		if _, err := pc.c.Write(pc.out); err != nil {
			return
		}
	}
}

// wait records what the connection does next, and reports false when
// shutdown cut it or, if it is to wait, is under way.
func (pc *plainConn) wait(st connState) bool {
	pc.s.mu.Lock()
	defer pc.s.mu.Unlock()
	if pc.cut || (st != answering && pc.s.closing) {
		return false
	}
	pc.state = st
	return true
}

// setDeadline sets the read deadline d from now, or none if d is not
// positive. Between requests (lazy) it leaves a deadline that is at most
// an eighth of d (and at most a second) nearer than that: a timer reset
// per request would cost as much as parsing it.
func (pc *plainConn) setDeadline(d time.Duration, lazy bool) {
	var t time.Time
	if d > 0 {
		now := time.Now()
		if left := pc.deadline.Sub(now); lazy && left > d-min(d/8, time.Second) && left <= d {
			return
		}
		t = now.Add(d)
	} else if pc.deadline.IsZero() {
		return
	}
	pc.deadline = t
	_ = pc.c.SetReadDeadline(t)
}

// servedConn is a connection Serve accepted. It counts among the
// connections Serve holds until it is first closed. Once the hub hands it
// to srv after reading a request, its reads return first what the hub read
// and did not answer.
type servedConn struct {
	net.Conn
	s        *plainServer
	closed   atomic.Bool
	buffered atomic.Bool // br is set: reads take mu
	mu       sync.Mutex
	br       *bufio.Reader
}

// buffer makes br, which holds bytes read from the connection, the first
// thing its reads return.
func (c *servedConn) buffer(br *bufio.Reader) {
	c.mu.Lock()
	c.br = br
	c.buffered.Store(true)
	c.mu.Unlock()
}

func (c *servedConn) Read(p []byte) (int, error) {
	if c.buffered.Load() {
		c.mu.Lock()
		if br := c.br; br != nil {
			// No system call: the reader has bytes. Once they are
			// read, it goes back to the pool, not to be kept for as
			// long as the connection lasts (a subscription's, hours).
			n, err := br.Read(p)
			if br.Buffered() == 0 {
				c.br = nil
				c.buffered.Store(false)
				br.Reset(nil)
				plainReaders.Put(br)
			}
			c.mu.Unlock()
			return n, err
		}
		c.mu.Unlock()
	}
	return c.Conn.Read(p)
}

// Close closes the connection and, the first time, frees its place among
// the connections Serve holds.
func (c *servedConn) Close() error {
	err := c.Conn.Close()
	if !c.closed.Swap(true) {
		c.s.open.Add(-1)
		c.s.h.stats.conns.Add(-1)
		c.s.freeOne()
	}
	return err
}

// NetConn returns the connection ln accepted.
func (c *servedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts down the writing side of a TCP or Unix connection, as
// net/http does before closing one whose request it did not read to the
// end, so that the client gets the answer rather than a reset.
func (c *servedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives access to the socket of a TCP or Unix connection, as
// on the connection itself.
func (c *servedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// connQueue is the listener srv serves: the connections handed over.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to srv, and reports false when srv no longer accepts.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// plainRequest is what the hub needs of a plain publication.
type plainRequest struct {
	token       string // the Bearer token
	contentType string // the Content-Type header's media type
	body        []byte
	size        int      // the request's length, request line to the end of the body
	remote      net.Addr // the client's address, for the log; nil: unknown
}

// What parsePlain found.
type plainStatus uint8

const (
	plainOK      plainStatus = iota
	plainPartial             // the start of what may be a plain publication
	plainNot                 // anything else
)

const plainRequestLine = "POST " + Path + " HTTP/1.1\r\n"

// parsePlain reads a plain publication at the start of buf. It refuses
// whatever net/http might read differently (malformed or folded header
// lines, a repeated Content-Length or Host, an invalid Host), leaving it to
// net/http, which answers with an error.
func parsePlain(buf []byte) (req plainRequest, st plainStatus) {
	if len(buf) < len(plainRequestLine) {
		if strings.HasPrefix(plainRequestLine, string(buf)) {
			return req, plainPartial
		}
		return req, plainNot
	}
	if string(buf[:len(plainRequestLine)]) != plainRequestLine {
		return req, plainNot
	}
	rest := buf[len(plainRequestLine):]
	length, hosts, auths := -1, 0, 0
	form := false
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return req, plainPartial
		}
		if i == 0 || rest[i-1] != '\r' {
			return req, plainNot // a bare LF
		}
		line := rest[:i-1]
		rest = rest[i+1:]
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || !isToken(line[:colon]) {
			return req, plainNot
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if !isFieldValue(value) {
			return req, plainNot
		}
		switch {
		case equalFold(name, "Host"):
			if !isHost(value) {
				return req, plainNot
			}
			hosts++
		case equalFold(name, "Content-Length"):
			n, err := strconv.ParseUint(string(value), 10, 31)
			if err != nil || length >= 0 {
				return req, plainNot
			}
			length = int(n)
		case equalFold(name, "Content-Type"):
			if form || !equalFold(value, formMediaType) {
				return req, plainNot
			}
			// The same media type, in any case, without a copy.
			req.contentType, form = formMediaType, true
		case equalFold(name, "Authorization"):
			scheme, token, found := bytes.Cut(value, []byte(" "))
			token = bytes.TrimSpace(token) // as requestToken does
			if !found || !equalFold(scheme, "Bearer") || len(token) == 0 {
				return req, plainNot
			}
			req.token = string(token)
			auths++
		case equalFold(name, "Connection"):
			if !equalFold(value, "keep-alive") {
				return req, plainNot
			}
		case equalFold(name, "Cookie"), equalFold(name, "Origin"), equalFold(name, "Expect"),
			equalFold(name, "Transfer-Encoding"), equalFold(name, "Upgrade"), equalFold(name, "TE"):
			return req, plainNot
		}
	}
	if hosts != 1 || auths != 1 || !form || length < 0 {
		return req, plainNot
	}
	if length > len(rest) {
		return req, plainPartial
	}
	req.body = rest[:length]
	req.size = len(buf) - len(rest) + length
	return req, plainOK
}

// isToken reports whether b is an HTTP token, as header names must be.
func isToken(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldValue reports whether b holds no control character but tabs.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// isHost reports whether b is a plausible Host: a name or an address,
// and a port.
func isHost(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !hostChars[c] {
			return false
		}
	}
	return len(b) > 0
}

var hostChars = func() (t [128]bool) {
	t = tokenChars
	for _, c := range ":[]" {
		t[c] = true
	}
	return t
}()

func equalFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// publishPlain publishes a plain publication and writes the answer to
// *out, or reports false, having done nothing, when net/http should answer
// it instead: when checkPublication refuses it. The handler then checks the
// request again, with the same code, and answers the refusal as it answers
// any other.
func (h *Hub) publishPlain(req plainRequest, out *[]byte) bool {
	p := publication{token: req.token, src: fromHeader, contentType: req.contentType, body: req.body, length: int64(len(req.body))}
	u, e := h.checkPublication(&p)
	if e != nil {
		return false
	}
	id, err := h.append(h.ctx, u)
	if err != nil {
		// The log refused the event: answer as the handler does.
		e, remote := asError(err), ""
		if req.remote != nil {
			remote = req.remote.String()
		}
		h.refused(h.ctx, refusedPublish, e, remote, http.MethodPost, Path)
		rec := &answer{header: http.Header{}}
		writeError(rec, e)
		*out = rec.appendTo((*out)[:0])
		return true
	}
	b := append((*out)[:0], "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: "...)
	b = appendDate(b, time.Now())
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(id)), 10)
	b = append(b, "\r\n\r\n"...)
	*out = append(b, id...)
	return true
}

// answer records an answer to write it as net/http would.
type answer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(p)
}

func (a *answer) appendTo(b []byte) []byte {
	var head bytes.Buffer
	_ = a.header.Write(&head)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(a.status)...)
	b = append(b, "\r\n"...)
	b = append(b, head.Bytes()...)
	b = append(b, "Date: "...)
	b = appendDate(b, time.Now())
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(a.body.Len()), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, a.body.Bytes()...)
}

// httpDate is the Date header of the current second, formatted once.
type httpDate struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[httpDate]

func appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d := lastDate.Load()
	if d == nil || d.sec != sec {
		d = &httpDate{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		lastDate.Store(d)
	}
	return append(b, d.b...)
}
