package hubtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
)

// PresenceWait bounds how long the presence suite waits for a Join or a
// Leave to show in Subscriptions: an implementation may apply them a
// moment after the call returns (see hub.Presence).
const PresenceWait = 10 * time.Second

// RunPresence runs the behavioural suite of hub.Presence. newPresence
// returns a new presence in which no subscription is present; it cleans up
// after itself with t.Cleanup. Run it from a test of the implementation's
// package:
//
//	func TestPresence(t *testing.T) {
//		hubtest.RunPresence(t, func(t *testing.T) hub.Presence { return mypresence.New(…) })
//	}
func RunPresence(t *testing.T, newPresence func(t *testing.T) hub.Presence) {
	tests := []struct {
		name string
		fn   func(*testing.T, hub.Presence)
	}{
		{"Empty", testPresenceEmpty},
		{"JoinAndLeave", testPresenceJoinAndLeave},
		{"Filter", testPresenceFilter},
		{"Concurrent", testPresenceConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newPresence(t)) })
	}
}

// member returns the subscriptions of a subscriber with the given
// selectors, as the hub passes them to Join and Leave.
func member(id, payload string, selectors ...string) []hub.Subscription {
	subs := make([]hub.Subscription, len(selectors))
	for i, sel := range selectors {
		subs[i] = hub.Subscription{Subscriber: id, Topic: sel}
		if payload != "" {
			subs[i].Payload = []byte(payload)
		}
	}
	return subs
}

// The subscribers of the tests of joining and filtering: alice holds a
// payload and a template, bob is anonymous, carol holds "*" and a
// selector twice.
var (
	alice = member("urn:uuid:0193a8b0-0000-7000-8000-00000000a11c", `{"user":{"name":"Zoë","roles":["rider"]}}`,
		"https://example.com/a", "https://example.com/b", "https://example.com/books/{id}")
	bob   = member("urn:uuid:0193a8b0-0000-7000-8000-000000000b0b", "", "https://example.com/b")
	carol = member("urn:uuid:0193a8b0-0000-7000-8000-0000000ca401", `{"user":"carol"}`,
		"*", "https://example.com/a", "https://example.com/a")
)

// canonical returns subs as a comparable string: grouped by subscriber,
// in the order of their IDs, each subscriber's in the order given.
func canonical(subs []hub.Subscription) string {
	by := map[string][]string{}
	for _, s := range subs {
		by[s.Subscriber] = append(by[s.Subscriber], fmt.Sprintf("%q payload %s", s.Topic, s.Payload))
	}
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(by)) {
		fmt.Fprintf(&b, "%s: %s\n", id, strings.Join(by[id], ", "))
	}
	return b.String()
}

func concat(groups ...[]hub.Subscription) []hub.Subscription {
	var all []hub.Subscription
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

func list(t *testing.T, p hub.Presence, f hub.SubscriptionFilter) []hub.Subscription {
	t.Helper()
	subs, err := p.Subscriptions(context.Background(), f)
	if err != nil {
		t.Fatalf("Subscriptions(%+v): %v", f, err)
	}
	return subs
}

// eventually waits, up to PresenceWait, until the presence lists want
// with the filter f, and fails the test if it does not.
func eventually(t *testing.T, p hub.Presence, f hub.SubscriptionFilter, want []hub.Subscription) {
	t.Helper()
	w := canonical(want)
	deadline := time.Now().Add(PresenceWait)
	for {
		got := canonical(list(t, p, f))
		if got == w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Subscriptions(%+v) after %v:\n%s\nwant:\n%s", f, PresenceWait, got, w)
		}
		time.Sleep(5 * time.Millisecond) // poll: the implementation applies changes when it will
	}
}

func testPresenceEmpty(t *testing.T, p hub.Presence) {
	for _, f := range []hub.SubscriptionFilter{{}, {Topic: "https://example.com/a"}, {Subscriber: alice[0].Subscriber}} {
		if subs := list(t, p, f); len(subs) != 0 {
			t.Fatalf("Subscriptions(%+v) of an empty presence: %v", f, subs)
		}
	}
	// Leaving when absent does nothing.
	p.Leave(bob)
	p.Join(alice)
	eventually(t, p, hub.SubscriptionFilter{}, alice)
}

func testPresenceJoinAndLeave(t *testing.T, p hub.Presence) {
	p.Join(alice)
	p.Join(bob)
	p.Join(carol)
	eventually(t, p, hub.SubscriptionFilter{}, concat(alice, bob, carol))

	// The caller owns the slice it gets.
	got := list(t, p, hub.SubscriptionFilter{})
	for i := range got {
		got[i] = hub.Subscription{Subscriber: "changed", Topic: "changed", Payload: []byte(`"changed"`)}
	}
	if l := list(t, p, hub.SubscriptionFilter{}); canonical(l) != canonical(concat(alice, bob, carol)) {
		t.Fatalf("changing the slice Subscriptions returned changed the presence:\n%s", canonical(l))
	}

	p.Leave(alice)
	eventually(t, p, hub.SubscriptionFilter{}, concat(bob, carol))
	// A second Leave, and that of a subscriber never joined, do nothing;
	// a Join after them shows with the others.
	p.Leave(alice)
	p.Leave(member("urn:uuid:nobody", "", "https://example.com/b"))
	dave := member("urn:uuid:0193a8b0-0000-7000-8000-00000000da4e", "", "https://example.com/b")
	p.Join(dave)
	eventually(t, p, hub.SubscriptionFilter{}, concat(bob, carol, dave))

	p.Leave(bob)
	p.Leave(carol)
	p.Leave(dave)
	eventually(t, p, hub.SubscriptionFilter{}, nil)
}

func testPresenceFilter(t *testing.T, p hub.Presence) {
	p.Join(alice)
	p.Join(bob)
	p.Join(carol)
	eventually(t, p, hub.SubscriptionFilter{}, concat(alice, bob, carol))
	for _, c := range []struct {
		name string
		f    hub.SubscriptionFilter
		want []hub.Subscription
	}{
		{"a topic", hub.SubscriptionFilter{Topic: "https://example.com/b"}, []hub.Subscription{alice[1], bob[0]}},
		{"a topic held twice, not by the selectors that match it", hub.SubscriptionFilter{Topic: "https://example.com/a"},
			[]hub.Subscription{alice[0], carol[1], carol[2]}},
		{"a template, as a string", hub.SubscriptionFilter{Topic: "https://example.com/books/{id}"}, alice[2:3]},
		{"a topic the template matches", hub.SubscriptionFilter{Topic: "https://example.com/books/1"}, nil},
		{"*, as a string", hub.SubscriptionFilter{Topic: "*"}, carol[0:1]},
		{"a topic no one holds", hub.SubscriptionFilter{Topic: "https://example.com/c"}, nil},
		{"a subscriber", hub.SubscriptionFilter{Subscriber: carol[0].Subscriber}, carol},
		{"an unknown subscriber", hub.SubscriptionFilter{Subscriber: "urn:uuid:nobody"}, nil},
		{"a subscriber and a topic", hub.SubscriptionFilter{Topic: "https://example.com/b", Subscriber: alice[0].Subscriber}, alice[1:2]},
		{"a subscriber and a topic it does not hold", hub.SubscriptionFilter{Topic: "https://example.com/a", Subscriber: bob[0].Subscriber}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := list(t, p, c.f); canonical(got) != canonical(c.want) {
				t.Fatalf("Subscriptions(%+v):\n%s\nwant:\n%s", c.f, canonical(got), canonical(c.want))
			}
		})
	}
}

// testPresenceConcurrent joins and leaves subscribers from several
// goroutines while others list them: a listing never fails and never
// shows part of a subscriber, and in the end the presence lists those
// that joined and did not leave.
func testPresenceConcurrent(t *testing.T, p hub.Presence) {
	const (
		joiners = 8
		each    = 50
	)
	whole := map[string]string{} // a subscriber's subscriptions, canonical
	var stay []hub.Subscription
	groups := make([][][]hub.Subscription, joiners)
	for g := range joiners {
		for i := range each {
			id := fmt.Sprintf("urn:uuid:0193a8b0-%04x-7000-8000-%012x", g, i)
			m := member(id, fmt.Sprintf(`{"n":%d}`, i), fmt.Sprintf("https://example.com/%d", i%7), "https://example.com/{x}")
			groups[g] = append(groups[g], m)
			whole[id] = canonical(m)
			if i%2 == 0 {
				stay = append(stay, m...)
			}
		}
	}

	done := make(chan struct{})
	var listers sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		listers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				subs, err := p.Subscriptions(context.Background(), hub.SubscriptionFilter{})
				if err != nil {
					errs <- err
					return
				}
				by := map[string][]hub.Subscription{}
				for _, s := range subs {
					by[s.Subscriber] = append(by[s.Subscriber], s)
				}
				for id, ss := range by {
					if canonical(ss) != whole[id] {
						errs <- fmt.Errorf("a listing shows part of a subscriber, or one never joined:\n%s", canonical(ss))
						return
					}
				}
			}
		})
	}
	var joining sync.WaitGroup
	for _, members := range groups {
		joining.Go(func() {
			for i, m := range members {
				p.Join(m)
				if i%2 == 1 {
					p.Leave(m)
				}
			}
		})
	}
	joining.Wait()
	eventually(t, p, hub.SubscriptionFilter{}, stay)
	close(done)
	listers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
