package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/redis/go-redis/v9"
)

// DefaultPresenceTTL is how long a node's subscriptions outlive its last
// word to Redis when PresenceConfig.TTL is zero: a node that dies drops
// out of every node's subscriptions API within it.
const DefaultPresenceTTL = 15 * time.Second

// PresenceConfig configures a Presence.
type PresenceConfig struct {
	// Prefix names the keys, as Config.Prefix; empty means DefaultPrefix.
	Prefix string
	// TTL is how long the subscriptions of a node that stopped refreshing
	// them stay listed; zero means DefaultPresenceTTL. A node refreshes
	// them every TTL/3.
	TTL time.Duration
	// Logger receives the faults; nil means slog.Default().
	Logger *slog.Logger
}

// Presence is a hub.Presence that the nodes on one Redis share: the
// subscriptions API of any node lists the subscribers of every node.
//
// Each node keeps its own subscribers in memory, and in a hash of its own,
// {prefix}:presence:<node>, that maps each of its subscribers to the JSON
// of its subscriptions (so that a subscriber's subscriptions show
// together), with an expiry of TTL. The sorted set {prefix}:nodes holds
// the nodes, each scored with the time its hash expires. Join and Leave
// change memory and wake a goroutine that writes the changes, in one
// pipeline per round, and refreshes the expiries every TTL/3; a hash that
// Redis lost (a restart) is written whole again at the next round.
// Subscriptions reads the hashes of the nodes whose score has not passed:
// one pipeline, a command per node, whatever the number of subscribers.
//
// While Redis cannot be reached, Join and Leave keep working in memory and
// the changes are written once it can; Subscriptions fails.
type Presence struct {
	rdb    redis.UniversalClient
	logger *slog.Logger
	ttl    time.Duration
	node   string
	key    string // this node's hash
	nodes  string // the sorted set of nodes

	mu     sync.Mutex
	local  map[string][]hub.Subscription // this node's subscribers' subscriptions, by subscriber
	dirty  map[string]bool               // subscribers whose entry must be written (or deleted)
	failed bool                          // the last round failed: logged once
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

var _ hub.Presence = (*Presence)(nil)

// NewPresence returns the presence of a new node on rdb, which the caller
// keeps open until after Close, and starts its writer.
func NewPresence(rdb redis.UniversalClient, cfg PresenceConfig) *Presence {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultPresenceTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	node := hex.EncodeToString(id[:])
	p := &Presence{
		rdb:    rdb,
		logger: cfg.Logger,
		ttl:    cfg.TTL,
		node:   node,
		key:    "{" + cfg.Prefix + "}:presence:" + node,
		nodes:  "{" + cfg.Prefix + "}:nodes",
		local:  make(map[string][]hub.Subscription),
		dirty:  make(map[string]bool),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go p.run()
	return p
}

// NewPresence returns the presence of this node, on the store's Redis
// and under its prefix (cfg.Prefix is ignored). The store's Close closes
// it, first. A store has one.
func (s *Store) NewPresence(cfg PresenceConfig) *Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence == nil {
		cfg.Prefix = s.cfg.Prefix
		if cfg.Logger == nil {
			cfg.Logger = s.logger
		}
		s.presence = NewPresence(s.rdb, cfg)
	}
	return s.presence
}

// Join implements hub.Presence.
func (p *Presence) Join(subs []hub.Subscription) {
	if len(subs) == 0 {
		return
	}
	p.mu.Lock()
	p.local[subs[0].Subscriber] = subs
	p.dirty[subs[0].Subscriber] = true
	p.mu.Unlock()
	p.signal()
}

// Leave implements hub.Presence.
func (p *Presence) Leave(subs []hub.Subscription) {
	if len(subs) == 0 {
		return
	}
	p.mu.Lock()
	if _, ok := p.local[subs[0].Subscriber]; ok {
		delete(p.local, subs[0].Subscriber)
		p.dirty[subs[0].Subscriber] = true
	}
	p.mu.Unlock()
	p.signal()
}

func (p *Presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run writes the changes as they come, and refreshes the expiries every
// TTL/3, until Close.
func (p *Presence) run() {
	defer close(p.done)
	tick := time.NewTicker(p.ttl / 3)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	refresh := true
	for {
		if err := p.round(refresh); err != nil {
			retry.Reset(min(time.Second, p.ttl/3))
		}
		refresh = false
		select {
		case <-p.wake:
		case <-retry.C:
			refresh = true
		case <-tick.C:
			refresh = true
		case <-p.quit:
			return
		}
	}
}

// round writes the subscribers changed since the last round and, when
// refresh is set, the expiries; when Redis lost this node's hash, it
// writes the hash whole. A failed round leaves its changes to the next.
func (p *Presence) round(refresh bool) error {
	p.mu.Lock()
	if len(p.dirty) == 0 && !refresh {
		p.mu.Unlock()
		return nil
	}
	dirty := p.dirty
	p.dirty = make(map[string]bool)
	set := make(map[string]any, len(dirty))
	var del []string
	for sub := range dirty {
		if subs, ok := p.local[sub]; ok {
			b, _ := json.Marshal(subs)
			set[sub] = b
		} else {
			del = append(del, sub)
		}
	}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	expire := time.Now().Add(p.ttl)
	var exists *redis.IntCmd
	_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		exists = pipe.Exists(ctx, p.key)
		if len(set) > 0 {
			pipe.HSet(ctx, p.key, set)
		}
		if len(del) > 0 {
			pipe.HDel(ctx, p.key, del...)
		}
		pipe.PExpire(ctx, p.key, p.ttl)
		pipe.ZAdd(ctx, p.nodes, redis.Z{Score: float64(expire.UnixMilli()), Member: p.node})
		pipe.ZRemRangeByScore(ctx, p.nodes, "-inf", "("+strconv.FormatInt(time.Now().UnixMilli(), 10))
		return nil
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		for sub := range dirty {
			p.dirty[sub] = true
		}
		if !p.failed {
			p.failed = true
			p.logger.Warn("redisstore: writing this node's subscriptions to Redis failed; it retries", "error", err)
		}
		return err
	}
	if p.failed {
		p.failed = false
		p.logger.Info("redisstore: this node's subscriptions are written to Redis again")
	}
	if exists.Val() == 0 && len(p.local) > len(set) {
		// Redis had lost the hash (a restart, or an expiry while it
		// could not be reached): write it whole at once.
		for sub := range p.local {
			p.dirty[sub] = true
		}
		p.signal()
	}
	return nil
}

// Subscriptions implements hub.Presence.
func (p *Presence) Subscriptions(ctx context.Context, f hub.SubscriptionFilter) ([]hub.Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	nodes, err := p.rdb.ZRangeByScore(ctx, p.nodes, &redis.ZRangeBy{Min: now, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: listing the nodes: %w", err)
	}
	prefix := p.key[:len(p.key)-len(p.node)]
	cmds := make([]redis.Cmder, len(nodes))
	_, err = p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, n := range nodes {
			if f.Subscriber != "" {
				cmds[i] = pipe.HGet(ctx, prefix+n, f.Subscriber)
			} else {
				cmds[i] = pipe.HVals(ctx, prefix+n)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: reading the subscriptions: %w", err)
	}
	var out []hub.Subscription
	add := func(b string) {
		var subs []hub.Subscription
		if json.Unmarshal([]byte(b), &subs) != nil {
			return // not herald's: skipped
		}
		for _, s := range subs {
			if f.Selects(s) {
				out = append(out, s)
			}
		}
	}
	for _, c := range cmds {
		switch c := c.(type) {
		case *redis.StringCmd:
			if b, err := c.Result(); err == nil {
				add(b)
			}
		case *redis.StringSliceCmd:
			for _, b := range c.Val() {
				add(b)
			}
		}
	}
	return out, nil
}

// Close stops the writer and removes this node's subscriptions from Redis,
// as far as it can within a command's timeout. It is idempotent.
func (p *Presence) Close() error {
	var err error
	p.once.Do(func() {
		close(p.quit)
		<-p.done
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		_, err = p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Del(ctx, p.key)
			pipe.ZRem(ctx, p.nodes, p.node)
			return nil
		})
	})
	return err
}
