package hub

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// publish serves POST /.well-known/mercure: an update as an
// application/x-www-form-urlencoded body with the fields topic (repeated),
// data, private, id, type, retry and, herald's extension, end. It answers
// 200 with the event's ID as text/plain.
func (h *Hub) publish(w http.ResponseWriter, r *http.Request) {
	c, src, err := h.authenticate(r, h.cfg.PublisherKey)
	switch {
	case err != nil:
		h.refuse(w, r, err)
		return
	case src == noToken:
		h.refuse(w, r, &Error{Status: http.StatusUnauthorized, Code: codeNoToken, Message: "publishing needs a token"})
		return
	case src == fromCookie:
		if err := h.checkOrigin(r); err != nil {
			h.refuse(w, r, err)
			return
		}
	}
	u, err := h.readUpdate(w, r)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	for _, t := range u.Topics {
		if !h.canPublish(c, t) {
			h.refuse(w, r, &Error{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("the token's mercure.publish claim does not cover topic %q", t)})
			return
		}
	}
	id, err := h.Publish(r.Context(), u)
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

func (h *Hub) canPublish(c *claims, topic string) bool {
	for _, sel := range c.Publish {
		if h.match.match(sel, topic) {
			return true
		}
	}
	return false
}

// readUpdate reads the update of a publish request.
func (h *Hub) readUpdate(w http.ResponseWriter, r *http.Request) (Update, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return Update{}, &Error{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedType,
			Message: "the body must be application/x-www-form-urlencoded"}
	}
	body, err := readBody(w, r, h.cfg.MaxBodySize)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Update{}, &Error{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
				Message: fmt.Sprintf("the body is larger than %d bytes", h.cfg.MaxBodySize)}
		}
		return Update{}, &Error{Status: http.StatusBadRequest, Code: codeInvalidBody, Message: "reading the body failed: " + err.Error()}
	}
	return h.formUpdate(body)
}

// formUpdate reads an update from a publication's form body, as the
// handler and Serve both take it.
func (h *Hub) formUpdate(body []byte) (Update, error) {
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

// readBody reads a request's body, up to max bytes: in one read of the
// announced length when there is one.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if n := r.ContentLength; n >= 0 && n <= max {
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(body)
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
