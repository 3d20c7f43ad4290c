package hub

import (
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	// DefaultHeartbeat is the silence after which a subscriber gets a
	// comment: it keeps proxies from cutting idle streams and reveals
	// clients that have gone. Mercure's default.
	DefaultHeartbeat = 40 * time.Second
	// DefaultMaxLifetime bounds a subscription's connection, which the hub
	// closes after 80 to 100 % of it (at random, so that reconnections
	// spread out). The client reconnects and resumes with Last-Event-ID.
	// Mercure calls it write_timeout.
	DefaultMaxLifetime = 600 * time.Second
	// DefaultDispatchTimeout bounds one write to a subscriber: a client
	// that takes no bytes for this long, or too few to finish the write,
	// is disconnected.
	DefaultDispatchTimeout = 5 * time.Second
	// DefaultMaxBodySize bounds a publish request's body.
	DefaultMaxBodySize = 1 << 20
	// DefaultCookieName is the cookie that carries a token.
	DefaultCookieName = "mercureAuthorization"
	// DefaultBatchInterval is the shortest time between two writes of
	// events to one subscriber. Under load it puts a subscriber's events
	// of 5 ms in one write, which halves the hub's CPU time per delivery
	// at a thousand subscribers; an event for a subscriber that had none
	// for 5 ms goes out at once.
	DefaultBatchInterval = 5 * time.Millisecond
	// DefaultMaxEndedTopics bounds the ended topics the hub remembers: a
	// topic forgotten is served again like any other.
	DefaultMaxEndedTopics = 100_000
	// DefaultMaxSelectors bounds the topic selectors of one subscription.
	// Centrifugo allows 128 channels per connection, nchan 255.
	DefaultMaxSelectors = 256
	// DefaultMaxClaimSelectors bounds the selectors of each claim of a
	// token.
	DefaultMaxClaimSelectors = 1000
	// DefaultMaxTemplates bounds the distinct URI templates the
	// subscribers hold at once: some tens of MiB of compiled expressions.
	DefaultMaxTemplates = 10_000
)

// Config configures a Hub. Its zero value gives a working hub that keeps
// its history in memory, accepts updates from Go (Publish) but not over
// HTTP, and serves public updates to anonymous subscribers.
type Config struct {
	// Log is the history. Nil means a MemoryLog of DefaultHistorySize
	// events, which the hub closes with itself; a Log given here is the
	// caller's to close, after the hub.
	Log Log

	// PublisherKey verifies the tokens of publishers. Nil disables
	// publishing over HTTP.
	PublisherKey *Key
	// SubscriberKey verifies the tokens of subscribers, which grant access
	// to private updates. Nil means no subscriber can present a token.
	SubscriberKey *Key
	// Anonymous lets subscribers without a token in; they receive public
	// updates only. Without a SubscriberKey every subscriber is anonymous
	// and this is taken as true.
	Anonymous bool
	// CookieName is the cookie that may carry a token. Empty means
	// DefaultCookieName.
	CookieName string
	// PublishOrigins lists the origins (scheme://host[:port]) from which
	// a browser may publish with a token in a cookie; "*" allows any. A
	// publish authorized by a cookie from another origin is refused, which
	// defeats cross-site request forgery.
	PublishOrigins []string
	// CORSOrigins lists the origins allowed to make cross-origin requests
	// with credentials; "*" allows any.
	CORSOrigins []string
	// Subscriptions enables the subscriptions API and the events the hub
	// publishes when a subscriber connects or leaves.
	Subscriptions bool
	// Presence is who is subscribed, what the subscriptions API lists,
	// and what the hub tells of each subscriber that connects or leaves
	// when Subscriptions is on. Nil means the hub's own subscribers, read
	// from the index it delivers with; a cluster gives one that lists
	// every node's. A Presence given here is the caller's to close, if it
	// needs closing, after the hub.
	Presence Presence

	// Heartbeat is the silence after which a subscriber gets a comment.
	// Zero means DefaultHeartbeat; negative means none.
	Heartbeat time.Duration
	// BatchInterval is the shortest time between two writes of events
	// to one subscriber: the events that arrive for it within the interval
	// after a write go out together when it is over, in one write, and
	// wait at most that long. An event for a subscriber that has had none
	// for the interval goes out at once, so light traffic is never
	// delayed, and each subscriber is paced on its own.
	// Zero means DefaultBatchInterval; negative means none, a write for
	// each batch read from the log.
	BatchInterval time.Duration
	// MaxBatchInterval is the longest the interval stretches to under
	// sustained load. When, between two rounds, many subscribers get
	// events faster than BatchInterval apart, the hub doubles the interval,
	// up to this, so that each write carries more of them; when the load
	// falls it halves it again, down to BatchInterval. Zero means four
	// times BatchInterval; a value not above BatchInterval keeps the
	// interval fixed.
	MaxBatchInterval time.Duration
	// MaxLifetime bounds a subscription's connection. Zero means
	// DefaultMaxLifetime; negative means no bound but the token's expiry.
	MaxLifetime time.Duration
	// DispatchTimeout bounds one write to a subscriber, which is dropped
	// when a write does not finish in time (see Stats). Zero means
	// DefaultDispatchTimeout.
	DispatchTimeout time.Duration
	// MaxBodySize bounds a publish request's body, in bytes. Zero means
	// DefaultMaxBodySize.
	MaxBodySize int64
	// MaxTopics bounds the topics of an update. Zero means
	// DefaultMaxTopics.
	MaxTopics int
	// MaxSelectors bounds the topic selectors of one subscription: each
	// is an entry in the hub's index, and is matched against every event
	// the subscriber reads from the history, so a client sending
	// thousands would cost the hub memory, and time on every event. A
	// subscription with more is refused (400, too_many_selectors). Zero
	// means DefaultMaxSelectors.
	MaxSelectors int
	// MaxClaimSelectors bounds the selectors of each claim of a token
	// (mercure.subscribe, mercure.publish): the first is matched against
	// the topics of every private update offered to the subscriber, the
	// second against those of every publication. A token with more is
	// refused (401, invalid_token). Zero means DefaultMaxClaimSelectors.
	MaxClaimSelectors int
	// MaxTemplates bounds the distinct URI-template selectors that the
	// subscribers hold at once. Each is a compiled regular expression, a
	// few KiB, kept while a subscriber holds it, and matched against the
	// topics its literal prefix fits: without a bound, clients could make
	// the hub's memory, and its work per publication, grow as they
	// please. A subscription that would add new templates past it is
	// refused (503, too_many_templates, with Retry-After) before anything
	// is compiled; templates that subscribers already hold cost nothing
	// and are always accepted. Zero means DefaultMaxTemplates.
	MaxTemplates int
	// MatchCacheSize bounds the caches of matching the selectors of
	// tokens' claims with topics: of results, and a tenth of it of
	// compiled templates. Zero means DefaultMatchCacheSize.
	MatchCacheSize int
	// MaxEndedTopics bounds the ended topics remembered. Zero means
	// DefaultMaxEndedTopics.
	MaxEndedTopics int
	// MaxConnections bounds the connections Serve holds open at once,
	// every connection it accepted until it is closed: publishers',
	// those handed to the http.Server and subscriptions, which the hub
	// closes. Past it a new connection is answered 503, and those open
	// are untouched, so that no flood of connections takes the process
	// out of file descriptors. Zero means DefaultMaxConnections(), read
	// when Serve starts; negative means no bound. A hub served by an
	// http.Server alone is bounded by that server, not by this.
	MaxConnections int

	// Logger receives the hub's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.MaxBatchInterval == 0 {
		c.MaxBatchInterval = 4 * c.BatchInterval
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.DispatchTimeout <= 0 {
		c.DispatchTimeout = DefaultDispatchTimeout
	}
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	for _, b := range []struct {
		n   *int
		def int
	}{
		{&c.MaxTopics, DefaultMaxTopics},
		{&c.MaxSelectors, DefaultMaxSelectors},
		{&c.MaxClaimSelectors, DefaultMaxClaimSelectors},
		{&c.MaxTemplates, DefaultMaxTemplates},
		{&c.MaxEndedTopics, DefaultMaxEndedTopics},
	} {
		if *b.n <= 0 {
			*b.n = b.def
		}
	}
	if c.SubscriberKey == nil {
		c.Anonymous = true
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
