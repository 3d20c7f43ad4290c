package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Publish appends u to the history and returns its ID once the log holds
// it durably; delivery to subscribers follows at once. It refuses an
// invalid update with an *Error, a duplicate ID with ErrDuplicateID, and
// any call after Shutdown with ErrClosed. Publish does not check
// authorization: a Go caller is trusted.
func (h *Hub) Publish(ctx context.Context, u Update) (string, error) {
	if h.closing.Load() {
		return "", ErrClosed
	}
	if err := u.validate(h.cfg.MaxTopics); err != nil {
		return "", err
	}
	return h.append(ctx, u)
}

// newEvent returns the event of an update, with its ID (generated if the
// update has none) and its encoded form.
func newEvent(u Update) *Event {
	if u.ID == "" {
		u.ID = newID()
	}
	ev := &Event{Update: u}
	ev.Prepare()
	return ev
}

// append appends an update that passed validation.
func (h *Hub) append(ctx context.Context, u Update) (string, error) {
	ev := newEvent(u)
	start := time.Now()
	err := h.log.Append(ctx, ev)
	h.stats.appendLatency.Observe(uint64(time.Since(start)))
	if err != nil {
		h.storeFailed(ctx, opAppend, err)
		return "", err
	}
	h.stats.published.Add(1)
	if h.logger.Enabled(ctx, levelDebug) {
		h.logger.LogAttrs(ctx, levelDebug, "hub: published", slog.String("id", ev.ID), slog.Any("topics", u.Topics),
			slog.Bool("private", u.Private), slog.Uint64("pos", ev.Pos))
	}
	if u.End {
		// Once the publisher has its answer, a subscription to the
		// ended topics is refused with 204: the dispatcher must have
		// recorded the end. Ends are rare; the wait is the dispatcher's
		// lag, microseconds. The event is durable whatever happens to
		// the wait, so its ID is the answer.
		h.waitDispatched(ctx, ev.Pos)
	}
	return ev.ID, nil
}

// publish serves POST /.well-known/mercure: an update as an
// application/x-www-form-urlencoded body with the fields topic (repeated),
// data, private, id, type, retry and, herald's extension, end. It answers
// 200 with the event's ID as text/plain.
func (h *Hub) publish(w http.ResponseWriter, r *http.Request) {
	p := publication{
		contentType: r.Header.Get("Content-Type"),
		reader:      http.MaxBytesReader(w, r.Body, h.cfg.MaxBodySize),
		length:      r.ContentLength,
	}
	p.token, p.src, p.tokenErr = requestToken(r, h.cfg.CookieName)
	if p.src == fromCookie {
		p.origin = requestOrigin(r)
	}
	u, e := h.checkPublication(&p)
	if e != nil {
		h.refuse(w, r, e)
		return
	}
	id, err := h.append(r.Context(), u)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	hdr := w.Header()
	hdr["Content-Type"], hdr["X-Content-Type-Options"] = textPlain, nosniff
	_, _ = io.WriteString(w, id)
}

// Header values of every answer to a publication, shared: set as they are,
// the headers cost no allocation. (Their length is their capacity, so an
// Add by a wrapping handler copies them.)
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	nosniff   = []string{"nosniff"}
)

// formMediaType is the media type of a publication's body.
const formMediaType = "application/x-www-form-urlencoded"

// publication is a publication request as the hub decides it, whichever
// way it came: the handler (publish) fills one from an *http.Request, and
// Serve's fast path (publishPlain) from the bytes of a plain publication.
type publication struct {
	token    string      // the token, as requestToken found it
	src      tokenSource // where the token came from; noToken: none
	tokenErr error       // why the request has no usable token, as requestToken says
	origin   string      // with a cookie's token: the request's origin (requestOrigin)

	contentType string // the Content-Type header
	// The body: in memory (body), or else to be read from reader, of
	// length bytes when that is not negative. reader must stop past the
	// hub's MaxBodySize with an *http.MaxBytesError, as
	// http.MaxBytesReader does.
	body   []byte
	reader io.Reader
	length int64
}

// checkPublication decides whether p may be published, and returns its
// update, valid and covered by the token's mercure.publish claim, or the
// refusal. It is the only place where a publication is authenticated,
// authorized and validated: the handler and Serve's fast path both publish
// what it returns and nothing else, so that no request can pass by one
// path what the other refuses. It checks, and refuses at the first
// failure, in this order: the token (401), the origin of a request
// authorized by a cookie (403), the media type (415), the body's size
// (413), the form (400), the claim's cover of each topic (403), the hub's
// state (503), then the update itself (400, or 403 for a reserved topic).
// It reads the body only once the token is verified.
func (h *Hub) checkPublication(p *publication) (Update, *Error) {
	c, e := h.verifyToken(h.cfg.PublisherKey, p.token, p.src, p.tokenErr)
	if e != nil {
		return Update{}, e
	}
	switch p.src {
	case noToken:
		return Update{}, &Error{Status: http.StatusUnauthorized, Code: codeNoToken, Message: "publishing needs a token"}
	case fromCookie:
		if e := h.checkOrigin(p.origin); e != nil {
			return Update{}, e
		}
	}
	// The form's media type, as net/http's ParseForm reads it; the exact
	// spelling, what publishers send, is found without parsing.
	if p.contentType != formMediaType {
		if mt, _, err := mime.ParseMediaType(p.contentType); err != nil || mt != formMediaType {
			return Update{}, &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedType,
				Message: "the body must be application/x-www-form-urlencoded"}
		}
	}
	body, tooLarge := p.body, int64(len(p.body)) > h.cfg.MaxBodySize
	if p.reader != nil {
		var err error
		body, err = readBody(p.reader, p.length, h.cfg.MaxBodySize)
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			tooLarge = true
		} else if err != nil {
			return Update{}, &Error{Status: http.StatusBadRequest, Code: codeInvalidBody, Message: "reading the body failed: " + err.Error()}
		}
	}
	if tooLarge {
		return Update{}, &Error{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
			Message: fmt.Sprintf("the body is larger than %d bytes", h.cfg.MaxBodySize)}
	}
	u, e := h.formUpdate(body)
	if e != nil {
		return Update{}, e
	}
	for _, t := range u.Topics {
		if !h.canPublish(c, t) {
			return Update{}, &Error{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("the token's mercure.publish claim does not cover topic %q", t)}
		}
	}
	if h.closing.Load() {
		return Update{}, &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "the hub is shutting down", err: ErrClosed}
	}
	if e := u.validate(h.cfg.MaxTopics); e != nil {
		return Update{}, e
	}
	return u, nil
}

// canPublish reports whether the claims c allow publishing to topic.
func (h *Hub) canPublish(c *claims, topic string) bool {
	for _, sel := range c.Publish {
		if h.match.match(sel, topic) {
			return true
		}
	}
	return false
}

// formUpdate reads an update from a publication's form body.
func (h *Hub) formUpdate(body []byte) (Update, *Error) {
	u, retry, err := parseUpdate(string(body), h.cfg.MaxTopics)
	if err != nil {
		return Update{}, &Error{Status: http.StatusBadRequest, Code: codeInvalidBody, Message: "the body is not a valid form: " + err.Error()}
	}
	if retry != "" {
		ms, err := strconv.ParseUint(retry, 10, 32)
		if err != nil {
			return Update{}, badUpdate(codeInvalidRetry, fmt.Sprintf("retry %q is not a number of milliseconds", retry))
		}
		u.Retry = time.Duration(ms) * time.Millisecond
	}
	return u, nil
}

// readBody reads a body of n bytes, or of unknown length if n is
// negative, up to max: in one read when n is known and within it.
func readBody(r io.Reader, n, max int64) ([]byte, error) {
	if n >= 0 && n <= max {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(r)
}

// parseUpdate reads an update from an application/x-www-form-urlencoded
// body as url.ParseQuery would, without building its map: topic repeats,
// and of another field the first value counts. It keeps at most
// maxTopics+1 topics, enough for validation to refuse too many. It returns
// the retry field as it came.
func parseUpdate(form string, maxTopics int) (u Update, retry string, err error) {
	var seen [4]bool // data, id, type, retry
	first := func(i int, dst *string, v string) {
		if !seen[i] {
			seen[i], *dst = true, v
		}
	}
	for form != "" {
		var pair string
		pair, form, _ = strings.Cut(form, "&")
		if strings.Contains(pair, ";") {
			return Update{}, "", errors.New("invalid semicolon separator in query")
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if k, err = url.QueryUnescape(k); err != nil {
			return Update{}, "", err
		}
		if v, err = url.QueryUnescape(v); err != nil {
			return Update{}, "", err
		}
		switch k {
		case "topic":
			if maxTopics <= 0 || len(u.Topics) <= maxTopics {
				u.Topics = append(u.Topics, v)
			}
		case "data":
			first(0, &u.Data, v)
		case "id":
			first(1, &u.ID, v)
		case "type":
			first(2, &u.Type, v)
		case "retry":
			first(3, &retry, v)
		case "private":
			u.Private = true
		case "end":
			u.End = true
		}
	}
	return u, retry, nil
}
