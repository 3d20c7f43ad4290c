package hub

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
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
		writeError(w, err)
		return
	case src == noToken:
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: codeNoToken, Message: "publishing needs a token"})
		return
	case src == fromCookie:
		if err := h.checkOrigin(r); err != nil {
			writeError(w, err)
			return
		}
	}
	u, err := h.readUpdate(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, t := range u.Topics {
		if !h.canPublish(c, t) {
			writeError(w, &Error{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("the token's mercure.publish claim does not cover topic %q", t)})
			return
		}
	}
	id, err := h.Publish(r.Context(), u)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, id)
}

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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodySize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return Update{}, &Error{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
				Message: fmt.Sprintf("the body is larger than %d bytes", h.cfg.MaxBodySize)}
		}
		return Update{}, &Error{Status: http.StatusBadRequest, Code: codeInvalidBody, Message: "reading the body failed: " + err.Error()}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Update{}, &Error{Status: http.StatusBadRequest, Code: codeInvalidBody, Message: "the body is not a valid form: " + err.Error()}
	}
	u := Update{
		Topics:  form["topic"],
		Data:    form.Get("data"),
		Private: form.Has("private"),
		ID:      form.Get("id"),
		Type:    form.Get("type"),
		End:     form.Has("end"),
	}
	if v := form.Get("retry"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Update{}, badUpdate(codeInvalidRetry, fmt.Sprintf("retry %q is not a number of milliseconds", v))
		}
		u.Retry = time.Duration(ms) * time.Millisecond
	}
	return u, nil
}
