package hub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// The subscriptions API and subscription events, as Mercure's 0.x protocol
// defines them: a private update for each selector of a subscriber when it
// connects and when it leaves, on the topic
// /.well-known/mercure/subscriptions/{selector}/{subscriber} (each part
// URL-encoded), and JSON-LD documents listing the active subscriptions.

const jsonLDContext = "https://mercure.rocks/"

// subscription is the JSON-LD document of a Subscription, in the API and
// in the subscription events.
type subscription struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic"`
	Active      bool            `json:"active"`
	LastEventID string          `json:"lastEventID,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// doc returns the document of s, active or not.
func (s Subscription) doc(active bool) subscription {
	return subscription{
		ID:         s.ID(),
		Type:       "Subscription",
		Subscriber: s.Subscriber,
		Topic:      s.Topic,
		Active:     active,
		Payload:    s.Payload,
	}
}

type subscriptionCollection struct {
	Context       string         `json:"@context"`
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	LastEventID   string         `json:"lastEventID"`
	Subscriptions []subscription `json:"subscriptions"`
}

func subscriptionTopic(selector, subscriber string) string {
	return subscriptionsPath + "/" + url.QueryEscape(selector) + "/" + url.QueryEscape(subscriber)
}

// maxNotices bounds the subscription events waiting to be published: past
// it, in a storm of connections, the oldest waiting are dropped.
const maxNotices = 100_000

// notices queues subscription events for the goroutine that publishes them
// in batches.
type notices struct {
	mu      sync.Mutex
	pending []Update
	signal  chan struct{}
}

// announce tells the hub's Presence of a subscriber's connection and
// publishes its events, when the hub has subscriptions enabled, and
// returns once the log holds them: a client that has its answer finds its
// connection in the log. A log that refuses them costs the events, not the
// subscription.
func (h *Hub) announce(s *subscriber) {
	if !h.cfg.Subscriptions {
		return
	}
	h.presence.Join(s.presence())
	updates := s.subscriptionUpdates(true, nil)
	evs := make([]*Event, len(updates))
	for i, u := range updates {
		evs[i] = newEvent(u)
	}
	if err := h.log.Append(h.ctx, evs...); err != nil && !h.closing.Load() {
		h.logger.Warn("hub: publishing subscription events failed", "events", len(evs), "error", err)
	}
}

// depart tells the hub's Presence that a subscriber has left, when the
// hub has subscriptions enabled.
func (h *Hub) depart(s *subscriber) {
	if h.cfg.Subscriptions {
		h.presence.Leave(s.presence())
	}
}

// subscriptionEvents queues the events of a subscriber's departure, when
// the hub has subscriptions enabled, for the goroutine that publishes them.
func (h *Hub) subscriptionEvents(s *subscriber) {
	if !h.cfg.Subscriptions {
		return
	}
	n := &h.notes
	n.mu.Lock()
	n.pending = s.subscriptionUpdates(false, n.pending)
	if drop := len(n.pending) - maxNotices; drop > 0 {
		n.pending = n.pending[drop:]
		h.logger.Warn("hub: too many subscription events waiting; dropped the oldest", "dropped", drop)
	}
	n.mu.Unlock()
	select {
	case n.signal <- struct{}{}:
	default:
	}
}

// subscriptionUpdates appends to updates the subscription events of s,
// one per selector: private updates on the subscription's topic.
func (s *subscriber) subscriptionUpdates(active bool, updates []Update) []Update {
	for _, sel := range s.topics {
		sub := s.subscription(sel).doc(active)
		sub.Context = jsonLDContext
		data, err := json.Marshal(sub)
		if err != nil {
			continue // a payload that is not JSON cannot come from a verified token
		}
		updates = append(updates, Update{Topics: []string{sub.ID}, Data: string(data), Private: true})
	}
	return updates
}

// noticeLoop publishes subscription events, all that wait at a time in one
// append, from a goroutine of its own so that a slow log never holds up a
// subscriber.
func (h *Hub) noticeLoop() {
	defer h.bg.Done()
	n := &h.notes
	for {
		select {
		case <-n.signal:
		case <-h.ctx.Done():
			return
		}
		n.mu.Lock()
		batch := n.pending
		n.pending = nil
		n.mu.Unlock()
		evs := make([]*Event, len(batch))
		for i, u := range batch {
			evs[i] = newEvent(u)
		}
		if err := h.log.Append(h.ctx, evs...); err != nil && h.ctx.Err() == nil {
			h.storeFailed(h.ctx, opAppend, err)
			h.logger.Warn("hub: publishing subscription events failed", "events", len(evs), "error", err)
		}
	}
}

// subscriptions serves the subscriptions API:
//
//	/.well-known/mercure/subscriptions                        every active subscription
//	/.well-known/mercure/subscriptions/{topic}                those of one selector
//	/.well-known/mercure/subscriptions/{topic}/{subscriber}   one subscription
//
// The caller needs a subscriber token whose mercure.subscribe claim matches
// the request's path. The subscriptions are the hub's Presence's: its own
// subscribers' by default, every node's in a cluster.
func (h *Hub) subscriptions(w http.ResponseWriter, r *http.Request) {
	c, _, err := h.authenticate(r, h.cfg.SubscriberKey)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if c == nil {
		h.refuse(w, r, &Error{Status: http.StatusUnauthorized, Code: codeNoToken, Message: "the subscriptions API needs a token"})
		return
	}
	path := r.URL.EscapedPath()
	if !h.match.matchAny(c.Subscribe, []string{path}) {
		h.refuse(w, r, &Error{Status: http.StatusForbidden, Code: codeForbidden, Message: "the token's mercure.subscribe claim does not cover " + path})
		return
	}
	var segs []string
	if rest := strings.TrimPrefix(path, subscriptionsPath); rest != "" {
		for _, seg := range strings.Split(strings.TrimPrefix(rest, "/"), "/") {
			v, err := url.QueryUnescape(seg)
			if err != nil || v == "" {
				h.refuse(w, r, &Error{Status: http.StatusBadRequest, Code: codeInvalidTopic, Message: "malformed subscriptions path"})
				return
			}
			segs = append(segs, v)
		}
	}
	if len(segs) > 2 {
		h.refuse(w, r, &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such resource"})
		return
	}
	var filter SubscriptionFilter
	if len(segs) > 0 {
		filter.Topic = segs[0]
	}
	if len(segs) > 1 {
		filter.Subscriber = segs[1]
	}

	lastID := EarliestID
	if p := h.lastID.Load(); p != nil {
		lastID = *p
	}
	etag := `"` + strings.NewReplacer("%", "%25", `"`, "%22").Replace(lastID) + `"`
	if r.Header.Get("If-None-Match") == etag {
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}

	subs, err := h.presence.Subscriptions(r.Context(), filter)
	if err != nil {
		h.logger.Warn("hub: listing the subscriptions failed", "path", path, "error", err)
		h.refuse(w, r, &Error{Status: http.StatusServiceUnavailable, Code: codeNoPresence, err: err,
			Message: "the hub cannot list the subscriptions at the moment: its record of who is subscribed (in a cluster, kept on a server the nodes share) failed"})
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/ld+json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(segs) == 2 {
		if len(subs) == 0 {
			h.refuse(w, r, &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: "no such subscription"})
			return
		}
		sub := subs[0].doc(true)
		sub.Context, sub.LastEventID = jsonLDContext, lastID
		_ = enc.Encode(sub)
		return
	}
	docs := make([]subscription, len(subs))
	for i, sub := range subs {
		docs[i] = sub.doc(true)
	}
	_ = enc.Encode(subscriptionCollection{
		Context: jsonLDContext, ID: path, Type: "Subscriptions", LastEventID: lastID, Subscriptions: docs,
	})
}
