package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Sentinel errors. Callers of Publish branch on them with errors.Is.
var (
	// ErrClosed is returned by the methods of a Hub, a Log or a store
	// after Close or Shutdown.
	ErrClosed = errors.New("hub: closed")
	// ErrDuplicateID is returned when an update's ID is already in the
	// retained history. IDs identify resume points, so they stay unique.
	ErrDuplicateID = errors.New("hub: duplicate event id")
	// ErrUnavailable is wrapped by the errors of a Log that cannot store
	// events for the time being: its storage failed (a full disk, an I/O
	// error). The events of such an append were not acknowledged. Over
	// HTTP it is a 503, history_unavailable.
	ErrUnavailable = errors.New("hub: the history cannot store events")
)

// Error is a refusal with its HTTP status and its stable error code, the
// value of the "error" member of the JSON body the hub answers with.
// docs/api.md lists every code.
type Error struct {
	Status  int
	Code    string
	Message string
	err     error // the cause, if any
	// retryAfter, when positive, is sent as the Retry-After header, in
	// seconds: the refusal is for want of room, which comes back.
	retryAfter int
}

func (e *Error) Error() string { return "hub: " + e.Message }
func (e *Error) Unwrap() error { return e.err }

// The error codes of the HTTP API, documented in docs/api.md.
const (
	codeMissingTopic    = "missing_topic"
	codeTooManyTopics   = "too_many_topics"
	codeInvalidTopic    = "invalid_topic"
	codeReservedTopic   = "reserved_topic"
	codeInvalidID       = "invalid_id"
	codeDuplicateID     = "duplicate_id"
	codeInvalidType     = "invalid_type"
	codeInvalidRetry    = "invalid_retry"
	codeInvalidBody     = "invalid_body"
	codeBodyTooLarge    = "body_too_large"
	codeUnsupportedType = "unsupported_media_type"
	codeNoToken         = "missing_token"
	codeInvalidToken    = "invalid_token"
	codeForbidden       = "forbidden"
	codeBadOrigin       = "origin_not_allowed"
	codeMethod          = "method_not_allowed"
	codeNotFound        = "not_found"
	codeUnavailable     = "unavailable"
	codeNoHistory       = "history_unavailable"
	codeNoPresence      = "presence_unavailable"
	codeTooManyConns    = "too_many_connections"
	codeInternal        = "internal_error"
)

// The error codes of the hub's bounds on what subscribers hold.
const (
	codeTooManySelectors = "too_many_selectors"
	codeTooManyTemplates = "too_many_templates"
)

// historyRetryAfter is the Retry-After of a publication refused because
// the history cannot store events, in seconds: a store retries on its own
// within about as long.
const historyRetryAfter = 5

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// asError returns the answer to err: err itself when it is an *Error,
// 503 when the hub is closed, 500 otherwise.
func asError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, ErrClosed):
		e = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "the hub is shutting down"}
	case errors.Is(err, ErrUnavailable):
		e = &Error{Status: http.StatusServiceUnavailable, Code: codeNoHistory, retryAfter: historyRetryAfter,
			Message: "the history cannot store events at the moment (its disk, or the server it is kept on, is failing); the update was not acknowledged"}
	case errors.Is(err, ErrDuplicateID):
		e = &Error{Status: http.StatusConflict, Code: codeDuplicateID, Message: "an event with this id is already in the history"}
	default:
		e = &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
	}
	return e
}

// writeError answers with err, as asError makes it.
func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	h := w.Header()
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
		if e.Code == codeNoToken {
			h.Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: e.Code, Message: e.Message})
}
