package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Defaults of StreamConfig.
const (
	// DefaultHeartbeat is how long a Stream stays silent before it sends a
	// comment. Proxies and load balancers commonly cut connections idle for
	// 30 to 60 seconds; a write is also the only way to notice that a
	// client has gone.
	DefaultHeartbeat = 15 * time.Second
	// DefaultWriteTimeout bounds each write of a Stream, so that a client
	// that stopped reading cannot hold a handler forever.
	DefaultWriteTimeout = 10 * time.Second
)

// maxStreamBuffer is the largest encoding buffer a Stream keeps between
// events. Streams are many and long-lived: a larger buffer, needed once,
// would otherwise stay for the life of the connection.
const maxStreamBuffer = 64 << 10

// ErrStreamClosed is returned by the methods of a Stream after Close.
var ErrStreamClosed = errors.New("sse: stream closed")

// StreamConfig configures a Stream. Its zero value gives the defaults.
type StreamConfig struct {
	// Heartbeat is the silence after which the stream writes a comment.
	// Zero means DefaultHeartbeat; a negative value sends none.
	Heartbeat time.Duration
	// WriteTimeout bounds each write. Zero means DefaultWriteTimeout; a
	// negative value sets no deadline.
	WriteTimeout time.Duration
	// Retry, when positive, is sent first, as the delay the client should
	// wait before reconnecting.
	Retry time.Duration
}

// Stream is an event stream written as the response to an HTTP request: the
// helper for serving SSE from a handler of your own. Each Send or Comment is
// written and flushed at once; while the stream is otherwise silent, a
// heartbeat comment is sent. A Stream is safe for concurrent use. Call Close
// before the handler returns.
type Stream struct {
	rc  *http.ResponseController
	w   http.ResponseWriter
	cfg StreamConfig

	mu     sync.Mutex
	buf    []byte
	err    error // the first write error, or ErrStreamClosed
	last   time.Time
	timer  *time.Timer
	unhook func() bool
}

// NewStream starts an event stream in response to r: it sets the headers
// (see SetHeaders), sends the 200 status, and starts the heartbeat, which
// stops at Close or when the request's context ends.
//
// It fails, having written nothing, when w cannot flush, since a stream
// that is never flushed never reaches the client; the handler can then
// answer with an error of its own.
func NewStream(w http.ResponseWriter, r *http.Request, cfg StreamConfig) (*Stream, error) {
	s := &Stream{rc: http.NewResponseController(w), w: w, cfg: cfg}
	SetHeaders(w, r)
	// A flush with nothing written sends the status and headers, or, on a
	// writer that cannot flush, fails having sent nothing.
	if err := s.write(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			for _, h := range streamHeaders {
				w.Header().Del(h)
			}
		}
		return nil, fmt.Errorf("sse: start stream: %w", err)
	}
	if cfg.Retry > 0 {
		s.buf = AppendRetry(s.buf, cfg.Retry)
		if err := s.write(); err != nil {
			return nil, fmt.Errorf("sse: start stream: %w", err)
		}
	}
	if hb := s.heartbeat(); hb > 0 {
		s.mu.Lock()
		s.timer = time.AfterFunc(hb, s.beat)
		s.unhook = context.AfterFunc(r.Context(), func() { s.Close() })
		s.mu.Unlock()
	}
	return s, nil
}

var streamHeaders = []string{"Content-Type", "Cache-Control", "X-Accel-Buffering", "Connection"}

// SetHeaders sets the response headers of an event stream on w: the
// content type, headers that keep caches and proxies (nginx's
// X-Accel-Buffering) from holding the stream back, and, on HTTP/1.x only,
// Connection: keep-alive, which HTTP/2 forbids.
func SetHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
}

// Send writes e and flushes it. It refuses an invalid event (see
// Event.Validate) without writing anything. After a failed write, every
// call returns that write's error.
func (s *Stream) Send(e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	b, err := e.AppendText(s.buf[:0])
	if err != nil {
		return err
	}
	s.buf = b
	return s.write()
}

// Comment writes text as a comment and flushes it.
func (s *Stream) Comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.buf = AppendComment(s.buf[:0], text)
	return s.write()
}

// Close stops the heartbeat. It does not end the response, which ends when
// the handler returns; it is idempotent, and after it Send and Comment
// return ErrStreamClosed.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = ErrStreamClosed
	}
	if s.timer != nil {
		s.timer.Stop()
		s.unhook()
		s.timer = nil
	}
	return nil
}

// beat runs on the heartbeat timer: it sends a comment if the stream has
// been silent for the heartbeat interval, and sets the timer again.
func (s *Stream) beat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.timer == nil {
		return
	}
	hb := s.heartbeat()
	if idle := time.Since(s.last); idle < hb {
		s.timer.Reset(hb - idle)
		return
	}
	s.buf = AppendComment(s.buf[:0], "")
	if s.write() == nil {
		s.timer.Reset(hb)
	}
}

// write writes and flushes s.buf under a deadline. s.mu is held.
func (s *Stream) write() error {
	if t := s.writeTimeout(); t > 0 {
		// A writer without deadlines is still usable; only the bound is lost.
		_ = s.rc.SetWriteDeadline(time.Now().Add(t))
	}
	var err error
	if len(s.buf) > 0 {
		_, err = s.w.Write(s.buf)
	}
	if err == nil {
		err = s.rc.Flush()
	}
	if cap(s.buf) > maxStreamBuffer {
		s.buf = nil // one large event must not pin memory for the stream's life
	}
	if err != nil {
		s.err = err
		return err
	}
	s.last = time.Now()
	return nil
}

func (s *Stream) heartbeat() time.Duration {
	if s.cfg.Heartbeat == 0 {
		return DefaultHeartbeat
	}
	return s.cfg.Heartbeat
}

func (s *Stream) writeTimeout() time.Duration {
	if s.cfg.WriteTimeout == 0 {
		return DefaultWriteTimeout
	}
	return s.cfg.WriteTimeout
}
