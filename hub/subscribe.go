package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/herald-sse/herald/sse"
)

// lastEventIDParams are the query parameters a last event ID may come in,
// in order of precedence, after the Last-Event-ID header: Mercure's 0.x
// name, its 1.0 name, the header's name, and the name of a common
// EventSource polyfill.
var lastEventIDParams = []string{"lastEventID", "last_event_id", "Last-Event-ID", "lastEventId"}

// subscribe serves GET /.well-known/mercure: a Server-Sent Events stream of
// the updates whose topics match the topic selectors of the query.
// noAnonymous is the message of the refusal of a subscriber without a
// token: it says why, and how an operator lets them in, since "missing
// token" alone reads like a client's bug to someone who meant the hub to
// be open.
const noAnonymous = "subscribing needs a token: this hub does not allow anonymous subscribers " +
	"(herald serve allows them with -anonymous, HERALD_ANONYMOUS=1 or anonymous in MERCURE_EXTRA_DIRECTIVES; " +
	"hub.Config.Anonymous in Go)"

func (h *Hub) subscribe(w http.ResponseWriter, r *http.Request) {
	if !h.live.add() {
		h.refuse(w, r, ErrClosed)
		return
	}
	registered := false
	var adm admission // the room it holds in the index, until it joins
	defer func() {
		if !registered {
			h.index.cancel(adm)
			h.live.done()
		}
	}()
	c, _, err := h.authenticate(r, h.cfg.SubscriberKey)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if c == nil && !h.cfg.Anonymous {
		h.refuse(w, r, &Error{Status: http.StatusUnauthorized, Code: codeNoToken, Message: noAnonymous})
		return
	}
	q := r.URL.Query()
	topics, err := h.selectors(q)
	if err != nil {
		h.refuse(w, r, err)
		return
	}

	start, resumeID, resumed, err := h.resume(r.Context(), r, q)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if adm, err = h.index.admit(topics); err != nil {
		h.refuse(w, r, err)
		return
	}
	endAt := h.ended.endOf(adm.sels)
	if endAt != 0 && start > endAt {
		// Every topic has ended and the client has had the last event:
		// 204 tells an EventSource to stop reconnecting.
		w.WriteHeader(http.StatusNoContent)
		return
	}

	s := &subscriber{
		h:      h,
		id:     "urn:uuid:" + uuid.NewString(),
		topics: topics,
		claims: c,
		done:   make(chan struct{}),
		busy:   true, // this goroutine runs it first
		mode:   catchingUp,
		next:   start,
		endAt:  endAt,
		remote: r.RemoteAddr,
		counts: h.stats.writeShard(),
	}
	now := time.Now()
	s.opened = now
	if lt := h.cfg.MaxLifetime; lt > 0 {
		// 80 to 100 % of the lifetime, so that reconnections spread out.
		s.deadline, s.dlReason = now.Add(lt-time.Duration(rand.Int64N(int64(lt/5)+1))), lifetime
	}
	if c != nil && !c.expires.IsZero() && (s.deadline.IsZero() || c.expires.Before(s.deadline)) {
		s.deadline, s.dlReason = c.expires, expired
	}

	sse.SetHeaders(w, r)
	hd := w.Header()
	hd.Set("Pragma", "no-cache")
	hd.Set("Expires", "0")
	if resumed {
		hd.Set("Last-Event-ID", resumeID)
		hd.Set("Mercure-Last-Event-ID", resumeID)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	// The subscriber enters the index, and its connection is announced,
	// before the response's head goes out: a client that has its answer
	// finds itself in the subscriptions API. Until its runner starts (it
	// is busy), offers only wake nothing and a stop only marks it.
	h.index.join(s, adm)
	adm = admission{} // its room is the subscriber's now
	snk, exec, err := h.openStream(w, r)
	if err != nil {
		h.index.remove(s)
		if h.logger.Enabled(r.Context(), levelDebug) {
			h.logger.Debug("hub: opening a stream failed", "remote", r.RemoteAddr, "error", err)
		}
		return
	}
	registered = true
	s.transport = onHTTP1
	if exec == onHandler {
		s.transport = onOther
		if r.ProtoMajor == 2 {
			s.transport = onHTTP2
		}
	}
	h.stats.opened[s.transport].Add(1)
	s.mu.Lock()
	s.sink, s.exec = snk, exec // Shutdown may look at the sink already
	s.mu.Unlock()
	if exec == onHandler {
		s.wake = make(chan struct{}, 1)
	} else {
		h.watchConn(s, snk.(*connSink).conn)
	}
	s.lastWrite.Store(now.UnixNano())
	// The dispatcher may have applied an ending event between endOf above
	// and the join, too late to find s in the index: look again. (An end
	// applied after the join finds s, and endAfter is idempotent.)
	if at := h.ended.endOf(s.sels); at != 0 {
		s.endAfter(at)
	}
	h.timers.add(s, now)
	if h.closing.Load() {
		s.stop(shutdown) // Shutdown may have looked before the join
	}
	if h.logger.Enabled(r.Context(), levelDebug) {
		h.logger.LogAttrs(r.Context(), levelDebug, "hub: subscriber joined", slog.String("subscriber", s.id),
			slog.Any("topics", topics), slog.String("remote", r.RemoteAddr), slog.String("transport", s.transport.String()))
	}
	h.announce(s)
	if err := snk.start(); err != nil {
		s.stop(gone)
	}

	// Catch up here, then hand the subscriber over, unless it is served
	// by this handler.
	s.run(true, nil)
	if exec == onHandler {
		h.serveInHandler(s, r)
	}
}

// selectors returns the topic selectors of a subscription request.
func (h *Hub) selectors(q url.Values) ([]string, error) {
	topics := q["topic"]
	if len(topics) == 0 {
		return nil, &Error{Status: http.StatusBadRequest, Code: codeMissingTopic, Message: `a subscription needs at least one "topic" parameter`}
	}
	if len(topics) > h.cfg.MaxSelectors {
		return nil, &Error{Status: http.StatusBadRequest, Code: codeTooManySelectors,
			Message: fmt.Sprintf("a subscription may have at most %d topic selectors (max-selectors), this one has %d", h.cfg.MaxSelectors, len(topics))}
	}
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			return nil, err
		}
	}
	return topics, nil
}

// resume finds where a subscription starts. Without a last event ID it
// starts at the end of the log. With one it starts after that event, or,
// when the ID is "earliest", unknown or no longer retained, at the first
// retained event; resumeID is then "earliest", the value of the
// Last-Event-ID response header the protocol asks for.
func (h *Hub) resume(ctx context.Context, r *http.Request, q url.Values) (start uint64, resumeID string, resumed bool, err error) {
	first, next, err := h.log.Bounds(ctx)
	if err != nil {
		h.storeFailed(ctx, opBounds, err)
		return 0, "", false, err
	}
	id, ok := r.Header.Get("Last-Event-ID"), true
	if id == "" {
		ok = false
		for _, p := range lastEventIDParams {
			if v := q[p]; len(v) > 0 {
				id, ok = v[0], true
				break
			}
		}
	}
	if !ok {
		return next, "", false, nil
	}
	if id != EarliestID {
		pos, found, err := h.log.Lookup(ctx, id)
		if err != nil {
			h.storeFailed(ctx, opLookup, err)
			return 0, "", false, err
		}
		if found {
			return pos + 1, id, true, nil
		}
	}
	return first, EarliestID, true, nil
}

// openStream takes the response over for a stream, writing nothing yet:
// the sink's start writes the head. An HTTP/1.1 connection is hijacked, so
// that no goroutine stays with it: the hub writes the status line, the
// headers and a first comment itself, and the body is chunked. Otherwise
// (HTTP/2, or a writer that cannot be hijacked) the handler keeps the
// response, which must support flushing.
func (h *Hub) openStream(w http.ResponseWriter, r *http.Request) (sink, executor, error) {
	if r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
		conn, _, err := http.NewResponseController(w).Hijack()
		switch {
		case err == nil:
			// The server's deadlines no longer apply; the sink sets its own.
			if err := conn.SetDeadline(time.Time{}); err != nil {
				conn.Close()
				return nil, 0, err
			}
			cs := newConnSink(conn, h.cfg.DispatchTimeout)
			cs.head = responseHead(w.Header())
			if cs.nonblocking() {
				return cs, onPool, nil
			}
			return cs, onSpawn, nil
		case !errors.Is(err, http.ErrNotSupported):
			return nil, 0, err
		}
	}
	if !canFlush(w) {
		err := fmt.Errorf("hub: the response writer cannot flush: %w", http.ErrNotSupported)
		h.refuse(w, r, err)
		return nil, 0, err
	}
	return newHandlerSink(w, h.cfg.DispatchTimeout), onHandler, nil
}

// canFlush reports whether http.ResponseController can flush w: whether w,
// or a writer it unwraps to, flushes.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// responseHead returns the head of a chunked 200 response with the given
// headers, followed by a first chunk holding a comment, which gets the
// stream going through proxies that wait for body bytes. The hub closes
// the connection when the stream ends, so the head says so: a client must
// not take the connection back into its pool and send its next request
// down a connection about to close.
func responseHead(header http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	header.Set("Transfer-Encoding", "chunked")
	header.Set("Connection", "close")
	_ = header.Write(&b)
	b.WriteString("\r\n2\r\n:\n\r\n")
	return b.Bytes()
}

// serveInHandler runs a subscriber served by its handler until it finishes.
func (h *Hub) serveInHandler(s *subscriber, r *http.Request) {
	var scratch [][]byte
	reqDone := r.Context().Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
			s.run(true, &scratch)
		case <-reqDone:
			reqDone = nil
			s.stop(gone)
		}
	}
}
