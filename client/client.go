// Package client is an EventSource for Go: it reads a Server-Sent Events
// stream and reconnects the way a browser's EventSource does, with what Go
// programs need on top (custom method, headers and body, backoff, a read
// timeout, comments, an iterator). Mercure wraps it for Mercure hubs.
//
// Start with Client.Connect, then range over Stream.Events:
//
//	s := new(client.Client).Connect(ctx, req, client.Options{})
//	for ev, err := range s.Events() {
//		if err != nil { // a dropped connection: the stream reconnects by itself
//			log.Print(err)
//			continue
//		}
//		fmt.Println(ev.Type, ev.Data)
//	}
//	// The loop ends when ctx does, or on an error that ends the stream
//	// (see Stream.Next).
//
// # Behaviour
//
// A connection sends Accept: text/event-stream and Cache-Control: no-cache,
// and Last-Event-ID once an event has set one. Redirects are followed. A
// response other than 200 with a text/event-stream body ends the stream for
// good, as does 204 No Content (a server's way of saying "stop"). A
// connection that ends or fails, or stays silent for the read timeout, is
// reported once and replaced after the reconnection delay: the server's
// retry field, or Client.Retry, less a random jitter, and optionally longer
// after each consecutive failure. A partial event is discarded with its
// connection; the last event ID carries over.
//
// The package imports only the standard library.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/herald-sse/herald/sse"
)

// Defaults of Client.
const (
	// DefaultRetry is the reconnection delay until a server sets one,
	// about what browsers use.
	DefaultRetry = 3 * time.Second
	// DefaultJitter is the fraction of the delay that is drawn at random:
	// clients cut off together do not all come back together.
	DefaultJitter = 0.2
	// DefaultMaxRetry caps the delay that Backoff grows.
	DefaultMaxRetry = time.Minute
	// DefaultMaxEventSize is larger than the sse package's default: a
	// client talks to servers it chose.
	DefaultMaxEventSize = 16 << 20
)

// Client opens event streams. Its zero value uses http.DefaultClient and the
// defaults; it is safe for concurrent use and its fields must not change
// once it is.
type Client struct {
	// HTTPClient makes the requests. Nil means http.DefaultClient. Its
	// Timeout, if any, bounds whole connections: leave it zero and use
	// ReadTimeout.
	HTTPClient *http.Client
	// Retry is the reconnection delay until the server sets one with a
	// retry field. Zero means DefaultRetry; negative means none.
	Retry time.Duration
	// Jitter is the fraction of each delay drawn at random (the delay is
	// shortened by up to this much). Zero means DefaultJitter; negative
	// means none.
	Jitter float64
	// Backoff, when above 1, multiplies the delay after each connection
	// attempt that fails or delivers no event, up to MaxRetry; an event
	// resets it: the drop of a connection that delivered events is
	// followed by the plain delay, and so is the first failure after it.
	Backoff float64
	// MaxRetry caps the delay Backoff grows. Zero means DefaultMaxRetry.
	MaxRetry time.Duration
	// ReadTimeout, when positive, treats a connection silent for this long
	// (no byte, not even a comment) as dropped.
	ReadTimeout time.Duration
	// MaxEventSize bounds an event, as sse.Decoder.MaxEventSize does.
	// Zero means DefaultMaxEventSize.
	MaxEventSize int
}

// Options are the settings of one stream.
type Options struct {
	// LastEventID, when not empty, is sent with the first connection, to
	// resume from it.
	LastEventID string
	// OnComment, if set, receives the comments of the stream as they come,
	// in order with the events, from the goroutine that reads the stream.
	OnComment func(text string)
	// OnConnect, if set, is called with each successful response, before
	// its events are read.
	OnConnect func(resp *http.Response)
}

// Errors that end a stream.
var (
	// ErrNoContent: the server answered 204 No Content, which means "do
	// not reconnect".
	ErrNoContent = errors.New("client: the server ended the stream (204 No Content)")
	// ErrContentType: the response is not text/event-stream.
	ErrContentType = errors.New("client: the response is not text/event-stream")
	// ErrClosed: Stream.Close was called.
	ErrClosed = errors.New("client: stream closed")
)

// StatusError is the error ending a stream whose server answered with a
// status other than 200.
type StatusError struct {
	StatusCode int
	Status     string
	// Body is the beginning of the response's body, which often says why.
	Body string
}

func (e *StatusError) Error() string {
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		return fmt.Sprintf("client: %s: a redirect without a usable Location", e.Status)
	}
	if e.Body != "" {
		return fmt.Sprintf("client: the server answered %s: %s", e.Status, e.Body)
	}
	return "client: the server answered " + e.Status
}

// DropError reports a connection that ended or failed; the stream
// reconnects after Delay. Every other error a Stream returns ends it.
type DropError struct {
	Err   error
	Delay time.Duration
}

func (e *DropError) Error() string {
	return fmt.Sprintf("client: connection lost (%v); reconnecting in %v", e.Err, e.Delay.Round(time.Millisecond))
}

func (e *DropError) Unwrap() error { return e.Err }

// Causes of a drop.
var (
	errTimeout      = errors.New("no data for the read timeout")
	errServerClosed = errors.New("the server closed the stream")
)

// Stream is one event stream: a succession of connections, each replacing
// the last when it drops. Call Next, or range over Events, from one
// goroutine; Restart and Close may be called from any.
type Stream struct {
	c    *Client
	req  *http.Request
	body []byte // the request's body, resent with each connection
	opts Options

	ctx    context.Context
	cancel context.CancelCauseFunc
	wake   chan struct{} // a restart cuts a reconnection delay short

	dec      *sse.Decoder
	lastID   string
	retry    time.Duration // the server's, once it set one
	delay    time.Duration // the next reconnection delay, grown by Backoff
	wait     time.Duration // the delay to wait before connecting again
	resp     *http.Response
	gotEvent bool  // the current connection delivered an event
	ended    error // the final error, once the stream has ended
	// refused, if set, turns a refusal into the error that ends the
	// stream (Mercure's *HubError).
	refused func(*StatusError) error

	mu       sync.Mutex
	connCtx  context.CancelFunc // cancels the current connection
	restarts int                // Restart calls not yet acted on
}

// Connect returns a stream of the events req's server sends. It connects at
// the first call to Next; ctx bounds the whole stream. The request's body,
// if any, is read now and sent again with each connection.
func (c *Client) Connect(ctx context.Context, req *http.Request, opts Options) *Stream {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &Stream{c: c, req: req, opts: opts, ctx: ctx, cancel: cancel, lastID: opts.LastEventID, wake: make(chan struct{}, 1)}
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			s.ended = fmt.Errorf("client: read the request's body: %w", err)
		}
		s.body = b
	}
	s.dec = sse.NewDecoder(nil)
	s.dec.MaxEventSize = c.MaxEventSize
	if s.dec.MaxEventSize == 0 {
		s.dec.MaxEventSize = DefaultMaxEventSize
	}
	s.dec.OnComment = opts.OnComment
	s.delay = c.initialRetry()
	return s
}

func (c *Client) initialRetry() time.Duration {
	switch {
	case c.Retry == 0:
		return DefaultRetry
	case c.Retry < 0:
		return 0
	}
	return c.Retry
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// Events returns an iterator over Next: each event, each dropped
// connection (a *DropError, after which the stream goes on), and the error
// that ends the stream, last. Leaving the loop early closes the stream.
func (s *Stream) Events() iter.Seq2[sse.Event, error] {
	return func(yield func(sse.Event, error) bool) {
		defer s.Close()
		for {
			ev, err := s.Next()
			if !yield(ev, err) {
				return
			}
			if err != nil && !isDrop(err) {
				return
			}
		}
	}
}

func isDrop(err error) bool {
	var d *DropError
	return errors.As(err, &d)
}

// Next returns the next event, connecting and reconnecting as needed. A
// *DropError reports a connection lost, as soon as it is: call Next again
// to go on, and it reconnects after the delay the error gives. Any other error ends the stream and is returned from
// then on: ctx's error, ErrClosed, ErrNoContent, ErrContentType, a
// *StatusError, or the request's failure to be built.
func (s *Stream) Next() (sse.Event, error) {
	for {
		if s.ended != nil {
			return sse.Event{}, s.ended
		}
		if s.resp == nil {
			s.pause()
			if s.ctx.Err() != nil {
				return sse.Event{}, s.end(context.Cause(s.ctx))
			}
			if err := s.connect(); err != nil {
				if s.restarted() && s.ctx.Err() == nil {
					continue // a caller's restart cut the attempt short
				}
				return sse.Event{}, s.drop(err)
			}
		}
		var ev sse.Event
		err := s.dec.Decode(&ev)
		if err == nil {
			s.lastID = ev.ID
			s.gotEvent = true
			s.delay = s.c.initialRetry() // an event ends a run of failures
			if s.retry != 0 {
				s.delay = s.retry
			}
			return ev, nil
		}
		if r, ok := s.dec.Retry(); ok {
			s.retry, s.delay = r, r
		}
		s.lastID = s.dec.LastEventID()
		if s.restarted() {
			s.closeConn()
			continue // a caller's restart: no error, no delay
		}
		if s.ctx.Err() != nil {
			return sse.Event{}, s.end(context.Cause(s.ctx))
		}
		if errors.Is(err, io.EOF) {
			err = errServerClosed
		}
		return sse.Event{}, s.drop(err)
	}
}

// drop reports a lost connection (or a failed attempt), and leaves the
// stream to reconnect after the delay, at the next call to Next. A failure that ends the stream
// ends it instead.
func (s *Stream) drop(err error) error {
	if s.ended != nil {
		return s.ended
	}
	var final *finalError
	if errors.As(err, &final) {
		return s.end(final.err)
	}
	if s.ctx.Err() != nil {
		return s.end(context.Cause(s.ctx))
	}
	s.closeConn()
	delay := s.jittered(s.delay)
	if b := s.c.Backoff; b > 1 && !s.gotEvent {
		s.delay = min(time.Duration(float64(s.delay)*b), cmpOr(s.c.MaxRetry, DefaultMaxRetry))
	}
	s.gotEvent = false
	s.wait = delay
	return &DropError{Err: err, Delay: delay}
}

// pause waits the reconnection delay a drop announced, unless the stream
// ends or restarts first.
func (s *Stream) pause() {
	d := s.wait
	s.wait = 0
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	case <-s.restartSignal():
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (s *Stream) jittered(d time.Duration) time.Duration {
	j := s.c.Jitter
	if j == 0 {
		j = DefaultJitter
	}
	if j <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*min(j, 1)*float64(d))
}

func (s *Stream) end(err error) error {
	s.ended = err
	s.closeConn()
	s.cancel(err)
	return err
}

// finalError marks a connection failure that must not be retried.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }

// connect opens a connection. A failure that ends the stream comes as a
// *finalError.
func (s *Stream) connect() error {
	ctx, cancel := context.WithCancel(s.ctx)
	req := s.req.Clone(ctx)
	if s.body != nil {
		req.Body = io.NopCloser(bytes.NewReader(s.body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(s.body)), nil }
		req.ContentLength = int64(len(s.body))
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Del("Last-Event-ID")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	s.mu.Lock()
	s.connCtx = cancel
	s.restarts = 0
	select {
	case <-s.wake: // a restart this connection answers
	default:
	}
	s.mu.Unlock()

	resp, err := s.c.httpClient().Do(req)
	if err != nil {
		cancel()
		if s.ctx.Err() != nil {
			return &finalError{context.Cause(s.ctx)}
		}
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		resp.Body.Close()
		cancel()
		return &finalError{ErrNoContent}
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		se := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Body: strings.TrimSpace(string(b))}
		if s.refused != nil {
			return &finalError{s.refused(se)}
		}
		return &finalError{se}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return &finalError{fmt.Errorf("%w: %q", ErrContentType, resp.Header.Get("Content-Type"))}
	}
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(resp)
	}
	body := io.Reader(resp.Body)
	if t := s.c.ReadTimeout; t > 0 {
		body = newWatchdog(resp.Body, t, cancel)
	}
	s.resp = resp
	s.dec.Reset(body)
	// A new connection's events inherit the last event ID, as browsers do.
	s.dec.SetLastEventID(s.lastID)
	return nil
}

func (s *Stream) closeConn() {
	s.mu.Lock()
	if s.connCtx != nil {
		s.connCtx()
		s.connCtx = nil
	}
	s.mu.Unlock()
	if s.resp != nil {
		s.resp.Body.Close()
		s.resp = nil
	}
}

// Restart drops the current connection and connects again at once, with
// the last event ID, reporting no error: for instance after the caller
// changed credentials the request carries. It does nothing to a stream
// that has ended.
func (s *Stream) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts++
	if s.connCtx != nil {
		s.connCtx()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// restartSignal returns a channel that is ready once Restart was called.
func (s *Stream) restartSignal() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restarts > 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return s.wake
}

func (s *Stream) restarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts > 0
}

// LastEventID returns the last event ID: the one sent with the next
// connection.
func (s *Stream) LastEventID() string { return s.lastID }

// Close ends the stream and its connection. Next returns ErrClosed from
// then on, unless the stream had ended already. It is idempotent.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.connCtx != nil {
		s.connCtx()
	}
	s.mu.Unlock()
	s.cancel(ErrClosed)
	return nil
}

// watchdog cancels a connection whose body yields nothing for a while.
type watchdog struct {
	r     io.Reader
	t     *time.Timer
	d     time.Duration
	fired chan struct{}
}

func newWatchdog(r io.Reader, d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{r: r, d: d, fired: make(chan struct{})}
	w.t = time.AfterFunc(d, func() {
		close(w.fired)
		cancel()
	})
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.t.Reset(w.d)
	}
	if err != nil {
		select {
		case <-w.fired:
			return n, errTimeout
		default:
			w.t.Stop()
		}
	}
	return n, err
}
