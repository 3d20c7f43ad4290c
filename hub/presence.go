package hub

import (
	"context"
	"encoding/json"
)

// Presence knows who is subscribed: the subscriptions that the
// subscriptions API lists. It is kept apart from the Log, as centrifuge
// keeps its PresenceManager apart from its Broker, because it is a
// different kind of data: the log is an ordered history that must not lose
// an acknowledged event, presence a set that changes with every connection
// and may be a moment out of date. A hub alone answers from its own index
// of subscribers (the default, when Config.Presence is nil); a node of a
// cluster answers with every node's subscriptions, from the engine that
// the nodes share.
//
// The hub calls Join when a subscriber connects and Leave when it leaves,
// once each, and only when Config.Subscriptions is on. Join is called on
// the subscribe request's path, before the response's head is sent, and
// Leave on the hub's delivery path, from a worker that writes to other
// subscribers in turn. Neither may wait on I/O: an implementation that
// keeps presence on a server records the change in memory and writes it
// from a goroutine of its own (and gives each node's entries an expiry, so
// that those of a node that died without leaving drop out). A change may
// so show in Subscriptions a moment after the call returns.
//
// Implementations are safe for concurrent use. hubtest.RunPresence is the
// behavioural suite that every implementation must pass.
type Presence interface {
	// Join records the subscriptions of one subscriber that has just
	// connected: one for each of its topic selectors, in the order it
	// gave them, a selector it gave twice twice over. They all have the
	// same Subscriber, which no other call to Join has. Join does not
	// block and does not fail; the caller must not change subs
	// afterwards.
	Join(subs []Subscription)

	// Leave removes the subscriptions of one subscriber, as Join was
	// given them, once the subscriber has left. Leave of a subscriber
	// that is not present does nothing. Leave does not block and does not
	// fail; the caller must not change subs afterwards.
	Leave(subs []Subscription)

	// Subscriptions returns the subscriptions present (those joined and
	// not left; in a cluster, those of every node) that the filter
	// selects, each as often as it was joined. A subscriber's
	// subscriptions show together: a listing holds all of them that the
	// filter selects, or none. The order is unspecified, but the
	// subscriptions of one subscriber keep the order they were joined in.
	// It fails when it cannot tell, for instance when the
	// server it reads from cannot be reached: the subscriptions API then
	// answers 503, presence_unavailable. It returns nil or an empty slice
	// when none is present; the caller may change the slice it gets.
	Subscriptions(ctx context.Context, f SubscriptionFilter) ([]Subscription, error)
}

// Subscription is one topic selector of one subscriber: what the
// subscriptions API lists, and what the subscription events describe.
type Subscription struct {
	// Subscriber is the subscriber's ID, a urn:uuid: the hub gave its
	// connection.
	Subscriber string `json:"subscriber"`
	// Topic is the selector, as the subscriber gave it: a topic, a URI
	// template or "*".
	Topic string `json:"topic"`
	// Payload is the mercure.payload claim of the subscriber's token, as
	// JSON, or nil for an anonymous subscriber and for a token without
	// one.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// ID returns the subscription's IRI, the topic of its subscription
// events: /.well-known/mercure/subscriptions/{selector}/{subscriber}, each
// part URL-encoded.
func (s Subscription) ID() string { return subscriptionTopic(s.Topic, s.Subscriber) }

// SubscriptionFilter selects subscriptions. Its zero value selects all.
type SubscriptionFilter struct {
	// Topic, when not empty, selects the subscriptions with this selector,
	// compared as a string: "https://example.com/{id}" selects the
	// subscriptions to that template, not those whose selector matches
	// it.
	Topic string
	// Subscriber, when not empty, selects the subscriptions of this
	// subscriber.
	Subscriber string
}

// Selects reports whether the filter selects sub.
func (f SubscriptionFilter) Selects(sub Subscription) bool {
	return (f.Topic == "" || f.Topic == sub.Topic) && (f.Subscriber == "" || f.Subscriber == sub.Subscriber)
}

// localPresence is the default Presence: the subscriptions of the hub's
// own subscribers, read from its index, which holds them already. Join and
// Leave have nothing to do: the hub puts a subscriber in the index, and
// takes it out, itself.
type localPresence struct{ index *index }

var _ Presence = localPresence{}

func (localPresence) Join([]Subscription)  {}
func (localPresence) Leave([]Subscription) {}

// Subscriptions visits, under the index's read lock, the one group of the
// filter's selector when it has one, and every subscriber otherwise.
func (p localPresence) Subscriptions(_ context.Context, f SubscriptionFilter) ([]Subscription, error) {
	var subs []Subscription
	add := func(s *subscriber) {
		if f.Subscriber != "" && s.id != f.Subscriber {
			return
		}
		for _, sel := range s.topics {
			if f.Topic == "" || sel == f.Topic {
				subs = append(subs, s.subscription(sel))
			}
		}
	}
	if f.Topic == "" {
		p.index.subscribers(add)
		return subs, nil
	}
	// A subscriber that holds the selector more than once is in its
	// group once for each, and add lists each of them: see each
	// subscriber once.
	p.index.group(f.Topic, func(members []*membership) {
		seen := make(map[*subscriber]bool, len(members))
		for _, m := range members {
			if !seen[m.s] {
				seen[m.s] = true
				add(m.s)
			}
		}
	})
	return subs, nil
}

// subscription returns the Subscription of one selector of s.
func (s *subscriber) subscription(selector string) Subscription {
	sub := Subscription{Subscriber: s.id, Topic: selector}
	if s.claims != nil {
		sub.Payload = s.claims.Payload
	}
	return sub
}

// presence returns the subscriptions of s, one per selector, for Join and
// Leave and for its subscription events.
func (s *subscriber) presence() []Subscription {
	subs := make([]Subscription, len(s.topics))
	for i, sel := range s.topics {
		subs[i] = s.subscription(sel)
	}
	return subs
}
