package hub

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/herald-sse/herald/sse"
)

// Update is what a publisher sends: new content for one or more topics.
type Update struct {
	// Topics are the topics the update is about. The first is the canonical
	// topic, the others are alternates; a subscriber receives the update when
	// any of them matches one of its selectors. At least one is required.
	Topics []string
	// Data is the payload, delivered as the event's data.
	Data string
	// Private updates go only to subscribers whose token allows one of the
	// update's topics in its mercure.subscribe claim.
	Private bool
	// ID is the event ID. Empty means the hub generates one: "urn:uuid:"
	// followed by a UUIDv7, so that generated IDs sort by time. IDs are
	// unique across the retained history.
	ID string
	// Type is the SSE event type. Empty means "message".
	Type string
	// Retry, when positive, is sent to subscribers as their reconnection
	// delay, in whole milliseconds.
	Retry time.Duration
	// End, an extension of the protocol, ends the streams of the update's
	// topics: subscribers receive this update as the last one, and a
	// subscriber that listened only to ended topics is then disconnected
	// and answered 204 No Content when it comes back, which stops a
	// browser's EventSource for good. A later update reopens the topics.
	End bool
}

// Event is an update as the log holds it: with its ID and its position in
// the hub's single ordered log.
type Event struct {
	// Pos is the event's position: positions increase by one with each
	// event appended to the log, starting from 1.
	Pos uint64
	// Time is when the log accepted the event.
	Time time.Time
	Update

	wire []byte // the encoded form, once Prepare has made it
}

// Prepare encodes the event in the stream form every subscriber is sent,
// and keeps it with the event, so that the event is encoded once however
// many subscribers receive it, rather than once per subscriber.
//
// Whoever builds an event that more than one reader may get calls Prepare
// once its ID, Type, Data and Retry are final (Pos and Time are not part of the stream form), and before the
// event is shared: Prepare writes the event, so it must not run
// concurrently with anything that reads it. The hub prepares the events it
// publishes; a Log prepares the events it keeps to hand to more than one
// Read (see Log.Read), those appended to it as well as those it builds
// itself, say from a file on a restart. Preparing a prepared event does
// nothing.
//
// Prepare panics if the event holds a field no publisher could have sent
// (an ID or type with a line break or NUL, a negative Retry): the hub
// validates updates before they reach the log.
func (ev *Event) Prepare() {
	if ev.wire == nil {
		ev.wire = encode(ev)
	}
}

// Prepared reports whether Prepare has encoded the event. The hubtest
// suite uses it to check that a Log prepares the events it shares.
func (ev *Event) Prepared() bool {
	return ev.wire != nil
}

// Limits on what a publisher or subscriber may send. Each protects the hub
// from a client that would make it grow without bound.
const (
	// DefaultMaxTopics bounds the topics of one update: each is looked up
	// in the index, and matched with the selectors of subscribers.
	DefaultMaxTopics = 1000
	// MaxTopicLength bounds a topic or selector, in bytes: topics are keys
	// of the hub's indexes and caches.
	MaxTopicLength = 4096
	// MaxIDLength bounds an event ID, in bytes: IDs are kept in the
	// history's index.
	MaxIDLength = 1024
	// MaxTypeLength bounds an event type, in bytes.
	MaxTypeLength = 256
)

// reservedPrefix starts the topics the hub publishes itself (subscription
// events). Publishers may not use them.
const reservedPrefix = "/.well-known/mercure"

// EarliestID is the reserved Last-Event-ID value that asks for all of the
// history, and the Last-Event-ID response value meaning that no event
// precedes the first one sent.
const EarliestID = "earliest"

// validate checks an update as a publisher sent it, before the hub fills in
// its ID.
func (u *Update) validate(maxTopics int) *Error {
	if len(u.Topics) == 0 {
		return badUpdate(codeMissingTopic, "an update needs at least one topic")
	}
	if len(u.Topics) > maxTopics {
		return badUpdate(codeTooManyTopics, fmt.Sprintf("an update may have at most %d topics, this one has %d", maxTopics, len(u.Topics)))
	}
	for _, t := range u.Topics {
		if err := checkTopic(t); err != nil {
			return err
		}
		if strings.Contains(t, reservedPrefix) {
			return &Error{Status: 403, Code: codeReservedTopic, Message: fmt.Sprintf("topic %q is reserved for the hub's own events", t)}
		}
	}
	switch {
	case len(u.ID) > MaxIDLength:
		return badUpdate(codeInvalidID, fmt.Sprintf("the id is longer than %d bytes", MaxIDLength))
	case !sse.ValidField(u.ID):
		return badUpdate(codeInvalidID, "the id holds CR, LF or NUL")
	case strings.HasPrefix(u.ID, "#"):
		return badUpdate(codeInvalidID, "the id starts with #, which the protocol reserves")
	case u.ID == EarliestID:
		return badUpdate(codeInvalidID, `the id "earliest" is reserved`)
	case !utf8.ValidString(u.ID):
		return badUpdate(codeInvalidID, "the id is not valid UTF-8")
	case len(u.Type) > MaxTypeLength:
		return badUpdate(codeInvalidType, fmt.Sprintf("the type is longer than %d bytes", MaxTypeLength))
	case !sse.ValidField(u.Type):
		return badUpdate(codeInvalidType, "the type holds CR, LF or NUL")
	case u.Retry < 0:
		return badUpdate(codeInvalidRetry, "the retry delay is negative")
	}
	return nil
}

// checkTopic checks a topic or a selector.
func checkTopic(t string) *Error {
	switch {
	case t == "":
		return badUpdate(codeInvalidTopic, "a topic is empty")
	case len(t) > MaxTopicLength:
		return badUpdate(codeInvalidTopic, fmt.Sprintf("a topic is longer than %d bytes", MaxTopicLength))
	case !utf8.ValidString(t):
		return badUpdate(codeInvalidTopic, "a topic is not valid UTF-8")
	}
	return nil
}

func badUpdate(code, msg string) *Error {
	return &Error{Status: 400, Code: code, Message: msg}
}

// newID returns a generated event ID: "urn:uuid:" and a UUIDv7.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does, and
		// then nothing the hub could do would be safe.
		panic(fmt.Sprintf("hub: generate an event id: %v", err))
	}
	return id.URN()
}

// encode returns the stream form of an event: what every subscriber is sent.
func encode(ev *Event) []byte {
	// Room for the fields as written, a "data: " prefix per line.
	size := len("id: \nevent: \nretry: 4294967295\n\n") + len(ev.ID) + len(ev.Type) +
		(len("data: \n"))*(1+strings.Count(ev.Data, "\n")) + len(ev.Data)
	b, err := sse.Event{ID: ev.ID, Type: ev.Type, Data: ev.Data, Retry: ev.Retry}.AppendText(make([]byte, 0, size))
	if err != nil {
		// The update was validated before it reached the log, or the
		// log holds an event no publisher could have sent.
		panic(fmt.Sprintf("hub: encode event %q: %v", ev.ID, err))
	}
	return b
}

// wire returns the encoded form of ev: the prepared one, or else a fresh
// encoding, which a Log that does not prepare its events costs on every
// call.
func wire(ev *Event) []byte {
	if ev.wire != nil {
		return ev.wire
	}
	return encode(ev)
}
