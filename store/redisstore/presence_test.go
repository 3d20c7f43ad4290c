package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/redisstore"
	"github.com/redis/go-redis/v9"
)

func client(t *testing.T) redis.UniversalClient {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newPresence(t *testing.T, p string, ttl time.Duration) *redisstore.Presence {
	t.Helper()
	pr := redisstore.NewPresence(client(t), redisstore.PresenceConfig{Prefix: p, TTL: ttl})
	t.Cleanup(func() { _ = pr.Close() })
	return pr
}

// twoNodes joins and leaves on one node and lists on another: the suite
// then checks that every node sees every node's subscribers.
type twoNodes struct{ here, there hub.Presence }

func (n twoNodes) Join(subs []hub.Subscription)  { n.here.Join(subs) }
func (n twoNodes) Leave(subs []hub.Subscription) { n.here.Leave(subs) }
func (n twoNodes) Subscriptions(ctx context.Context, f hub.SubscriptionFilter) ([]hub.Subscription, error) {
	return n.there.Subscriptions(ctx, f)
}

func TestPresence(t *testing.T) {
	t.Parallel()
	t.Run("OneNode", func(t *testing.T) {
		hubtest.RunPresence(t, func(t *testing.T) hub.Presence { return newPresence(t, prefix(t), 0) })
	})
	t.Run("TwoNodes", func(t *testing.T) {
		hubtest.RunPresence(t, func(t *testing.T) hub.Presence {
			p := prefix(t)
			return twoNodes{newPresence(t, p, 0), newPresence(t, p, 0)}
		})
	})
}

// waitForSubscribers waits until the subscribers listed by p are want, or fails.
func waitForSubscribers(t *testing.T, p hub.Presence, want ...string) {
	t.Helper()
	deadline := time.Now().Add(hubtest.PresenceWait)
	for {
		subs, err := p.Subscriptions(t.Context(), hub.SubscriptionFilter{})
		var got []string
		for _, s := range subs {
			got = append(got, s.Subscriber)
		}
		slices.Sort(got)
		got = slices.Compact(got)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers %v (%v), want %v", got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A node that dies without a word drops out of the other nodes' listings
// once its entries expire; one that closes drops out at once.
func TestPresenceOfADeadNode(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	dying := newPresence(t, p, 300*time.Millisecond)
	closing := newPresence(t, p, time.Hour)
	watcher := newPresence(t, p, 0)
	dying.Join([]hub.Subscription{{Subscriber: "urn:uuid:dying", Topic: "a"}})
	closing.Join([]hub.Subscription{{Subscriber: "urn:uuid:closing", Topic: "a"}})
	waitForSubscribers(t, watcher, "urn:uuid:closing", "urn:uuid:dying")
	redisstore.Abandon(dying) // as SIGKILL would: no more refresh, nothing removed
	closing.Close()
	waitForSubscribers(t, watcher)
}

// A Redis that loses the entries (a restart that kept nothing) has them
// again from each node within a refresh.
func TestPresenceAfterRedisLostIt(t *testing.T) {
	t.Parallel()
	p := prefix(t)
	node := newPresence(t, p, 300*time.Millisecond)
	watcher := newPresence(t, p, 0)
	node.Join([]hub.Subscription{{Subscriber: "urn:uuid:one", Topic: "a"}})
	waitForSubscribers(t, watcher, "urn:uuid:one")
	c := client(t)
	keys, err := c.Keys(t.Context(), "{"+p+"}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the keys of %s: %v %v", p, keys, err)
	}
	if err := c.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
	waitForSubscribers(t, watcher, "urn:uuid:one")
}
