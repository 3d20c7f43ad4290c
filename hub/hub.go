package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
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

// Hub is a Mercure hub: an http.Handler that serves subscriptions and
// publications at /.well-known/mercure, and Publish for Go programs. Create
// one with New. It is safe for concurrent use.
type Hub struct {
	cfg     Config
	log     Log
	ownLog  bool
	logger  *slog.Logger
	match   *matcher
	index   *index
	ended   *endedTopics
	timers  *timers
	runq    *runQueue
	watcher *watcher
	workers int

	// cur is the position the dispatcher is delivering, stored before it
	// offers the event to any subscriber. See subscriber.collectCatchUp.
	cur    atomic.Uint64
	lastID atomic.Pointer[string] // the ID of the last event dispatched
	broken atomic.Pointer[error]  // why the dispatcher stopped, if it failed
	rounds rounds                 // the dispatcher's
	// passed is closed, and cleared, each time the dispatcher finishes a
	// batch: waitDispatched waits on it.
	passedMu sync.Mutex
	passed   chan struct{}

	ctx      context.Context // ends when the hub shuts down
	cancel   context.CancelFunc
	closing  atomic.Bool
	closed   chan struct{}
	bg       sync.WaitGroup // the dispatcher, the timers, the notices
	pool     sync.WaitGroup // the workers
	live     liveCount      // subscribers not yet finished
	closeErr error
	once     sync.Once
	notes    notices // subscription events waiting to be published
	drops    slowDrops
	stats    counters
}

// New returns a running Hub. Call Shutdown or Close to stop it.
func New(cfg Config) (*Hub, error) {
	cfg.setDefaults()
	h := &Hub{
		cfg:     cfg,
		log:     cfg.Log,
		logger:  cfg.Logger,
		match:   newMatcher(cfg.MatchCacheSize),
		workers: runtime.GOMAXPROCS(0),
		closed:  make(chan struct{}),
	}
	h.stats = newCounters(h.workers)
	if h.log == nil {
		h.log, h.ownLog = NewMemoryLog(MemoryLogConfig{}), true
	}
	first, next, err := h.log.Bounds(context.Background())
	if err != nil {
		return nil, fmt.Errorf("hub: read the log's bounds: %w", err)
	}
	h.index = newIndex(cfg.MaxTemplates)
	h.ended = newEndedTopics(cfg.MaxEndedTopics)
	if err := h.recallEnded(first, next); err != nil {
		return nil, err
	}
	h.drops.logger, h.drops.timeout = cfg.Logger, cfg.DispatchTimeout
	h.timers = newTimers()
	h.runq = newRunQueue()
	h.notes.signal = make(chan struct{}, 1)
	h.cur.Store(next - 1)
	h.ctx, h.cancel = context.WithCancel(context.Background())

	h.watcher = newWatcher(h.logger)
	h.bg.Add(3)
	go h.dispatchLoop(next)
	go h.timerLoop()
	go h.noticeLoop()
	h.pool.Add(h.workers)
	for range h.workers {
		go h.worker()
	}
	return h, nil
}

// recallEnded rebuilds the ended topics from the most recent history, up
// to as many events as it remembers topics, so that a hub restarted on a
// durable log still answers 204 for them.
func (h *Hub) recallEnded(first, next uint64) error {
	ctx := context.Background()
	for p := max(first, next-min(next, uint64(h.cfg.MaxEndedTopics))); p < next; {
		evs, err := h.log.Read(ctx, p, 1024)
		if err != nil {
			return fmt.Errorf("hub: read the log for ended topics: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.End {
				h.ended.end(ev.Topics, ev.Pos)
			} else {
				h.ended.reopen(ev.Topics)
			}
		}
		p = evs[len(evs)-1].Pos + 1
	}
	return nil
}

// Publish appends u to the history and returns its ID once the log holds
// it durably; delivery to subscribers follows at once. It refuses an
// invalid update with an *Error, a duplicate ID with ErrDuplicateID, and
// any call after Shutdown with ErrClosed. Publish does not check
// authorization: a Go caller is trusted.
func (h *Hub) Publish(ctx context.Context, u Update) (string, error) {
	if h.closing.Load() {
		return "", ErrClosed
	}
	if err := u.validate(h.cfg.MaxTopics); err != nil {
		return "", err
	}
	return h.append(ctx, u)
}

// newEvent returns the event of an update, with its ID (generated if the
// update has none) and its encoded form.
func newEvent(u Update) *Event {
	if u.ID == "" {
		u.ID = newID()
	}
	ev := &Event{Update: u}
	ev.wire = encode(ev)
	return ev
}

// append appends an update that passed validation.
func (h *Hub) append(ctx context.Context, u Update) (string, error) {
	ev := newEvent(u)
	start := time.Now()
	err := h.log.Append(ctx, ev)
	h.stats.appendLatency.Observe(uint64(time.Since(start)))
	if err != nil {
		h.storeFailed(ctx, opAppend, err)
		return "", err
	}
	h.stats.published.Add(1)
	if h.logger.Enabled(ctx, levelDebug) {
		h.logger.LogAttrs(ctx, levelDebug, "hub: published", slog.String("id", ev.ID), slog.Any("topics", u.Topics),
			slog.Bool("private", u.Private), slog.Uint64("pos", ev.Pos))
	}
	if u.End {
		// Once the publisher has its answer, a subscription to the
		// ended topics is refused with 204: the dispatcher must have
		// recorded the end. Ends are rare; the wait is the dispatcher's
		// lag, microseconds. The event is durable whatever happens to
		// the wait, so its ID is the answer.
		h.waitDispatched(ctx, ev.Pos)
	}
	return ev.ID, nil
}

// waitDispatched waits until the dispatcher has dispatched the event at
// pos, or ctx ends, or the hub stops.
func (h *Hub) waitDispatched(ctx context.Context, pos uint64) {
	for h.cur.Load() < pos && h.broken.Load() == nil {
		h.passedMu.Lock()
		if h.passed == nil {
			h.passed = make(chan struct{})
		}
		ch := h.passed
		h.passedMu.Unlock()
		if h.cur.Load() >= pos {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-h.ctx.Done():
			return
		}
	}
}

// passBatch wakes the waiters of waitDispatched.
func (h *Hub) passBatch() {
	h.passedMu.Lock()
	if h.passed != nil {
		close(h.passed)
		h.passed = nil
	}
	h.passedMu.Unlock()
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

// wire returns the encoded form of ev.
func wire(ev *Event) []byte {
	if ev.wire != nil {
		return ev.wire
	}
	return encode(ev)
}

// Shutdown stops the hub: it refuses new subscriptions and publications,
// closes every subscription (telling each client to come back after a
// random delay of up to 5 seconds, so that a fleet does not reconnect at
// once), and waits for them to finish until ctx ends, after which it cuts
// the remaining connections. It closes the log if the hub created it.
// Shutdown is idempotent; Close is Shutdown without waiting.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.once.Do(func() {
		h.closing.Store(true)
		done := h.live.drain()
		h.index.subscribers(func(s *subscriber) { s.stop(shutdown) })
		select {
		case <-done:
		case <-ctx.Done():
			h.index.subscribers(func(s *subscriber) { s.abort() })
			<-done
		}
		// Every subscriber has finished: nothing will be scheduled once
		// the dispatcher and the timers stop.
		h.cancel()
		h.watcher.close()
		h.bg.Wait()
		h.runq.close()
		h.pool.Wait()
		h.drops.stop()
		if h.ownLog {
			h.closeErr = h.log.Close()
		}
		close(h.closed)
	})
	<-h.closed
	return h.closeErr
}

// liveCount counts the subscribers that have not finished, and refuses new
// ones once a shutdown drains them. (A WaitGroup may not gain members while
// a Wait is under way.)
type liveCount struct {
	mu       sync.Mutex
	n        int
	draining bool
	zero     chan struct{} // closed when n reaches zero during a drain
}

// add counts a new subscriber, unless the hub is draining.
func (c *liveCount) add() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.n++
	return true
}

func (c *liveCount) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 && c.zero != nil {
		close(c.zero)
		c.zero = nil
	}
}

// drain refuses new subscribers and returns a channel closed once every
// counted one has finished.
func (c *liveCount) drain() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	ch := make(chan struct{})
	if c.n == 0 {
		close(ch)
	} else {
		c.zero = ch
	}
	return ch
}

// Close stops the hub at once, cutting every connection. See Shutdown.
func (h *Hub) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return h.Shutdown(ctx)
}

// Ready reports whether the hub can take publications: it fails once the
// hub is shutting down, when the log cannot be read, once delivery stopped
// because it could not, and while the log reports that it cannot store
// events (see HealthChecker). Subscribers are served in that last case.
func (h *Hub) Ready(ctx context.Context) error {
	if h.closing.Load() {
		return fmt.Errorf("shutting down: %w", ErrClosed)
	}
	if err := h.broken.Load(); err != nil {
		return *err
	}
	if _, _, err := h.log.Bounds(ctx); err != nil {
		return err
	}
	if hc, ok := h.log.(HealthChecker); ok {
		return hc.Healthy()
	}
	return nil
}

// dispatchLoop follows the log and offers each event to its subscribers,
// in log order. It is the only goroutine that offers events.
func (h *Hub) dispatchLoop(next uint64) {
	defer h.bg.Done()
	r := &h.rounds
	r.interval = max(h.cfg.BatchInterval, 0)
	r.base, r.max = r.interval, max(h.cfg.MaxBatchInterval, r.interval)
	var until untilDue
	defer until.stop()
	for {
		var err error
		if len(r.ready) > 0 {
			// Subscribers are waiting for their turn: wait for more
			// events only until the first of them is due.
			if wait := time.Until(r.due()); wait > 0 {
				err = h.log.Wait(until.context(h.ctx, r.due(), wait), next)
				if err != nil && h.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					err = nil
				}
			}
			if err == nil && !time.Now().Before(r.due()) {
				h.release(false)
				continue
			}
		} else {
			err = h.log.Wait(h.ctx, next)
		}
		var evs []*Event
		if err == nil {
			evs, err = h.log.Read(h.ctx, next, 256)
		}
		if err != nil {
			if h.ctx.Err() == nil {
				h.storeFailed(h.ctx, opRead, err)
				err = fmt.Errorf("hub: the log failed; no event is delivered from position %d on: %w", next, err)
				h.broken.Store(&err)
				h.logger.Error(err.Error())
			}
			h.release(true)
			h.passBatch()
			return
		}
		for i, ev := range evs {
			if ev.Pos != next {
				h.fellBehind(next, ev.Pos)
			}
			h.dispatch(ev)
			next = ev.Pos + 1
			if i%readyEvery == readyEvery-1 {
				h.release(false)
			}
		}
		h.release(false)
		h.passBatch()
	}
}

// untilDue holds the context of the dispatcher's waits that end when the
// first subscriber waiting for its turn is due: one per due time, not one
// per event.
type untilDue struct {
	at     time.Time
	ctx    context.Context
	cancel context.CancelFunc
}

// context returns a context that ends at due, wait from now.
func (u *untilDue) context(parent context.Context, due time.Time, wait time.Duration) context.Context {
	if u.ctx == nil || !u.at.Equal(due) {
		u.stop()
		u.ctx, u.cancel = context.WithTimeout(parent, wait)
		u.at = due
	}
	return u.ctx
}

func (u *untilDue) stop() {
	if u.cancel != nil {
		u.cancel()
	}
}

// readyEvery is how many events of a batch the dispatcher offers before
// it schedules the subscribers they woke: a subscriber then gets the
// events of a batch in one write, not one write each, and the first of
// them waits at most for the offers of the others, some tens of
// microseconds per event at a thousand subscribers.
const readyEvery = 16

// rounds is the dispatcher's pacing of writes. A subscriber woken by an
// offer goes at once if it is quiet, written last an interval ago or more;
// otherwise it waits for the next round, and rounds come at most once per
// interval. So under load a subscriber gets the events of an interval in
// one write, and after a quiet spell its first event goes at once. Only
// the dispatcher touches it.
type rounds struct {
	interval time.Duration // the current interval, in [base, max]; 0: no pacing
	base     time.Duration // BatchInterval
	max      time.Duration // MaxBatchInterval
	last     time.Time     // when the last round went; zero: never
	offers   int           // events offered to subscribers since the last round
	wakes    int           // subscribers woken by them since the last round
	ready    []*subscriber // woken by offers, not yet scheduled
	checked  int           // ready[:checked] are waiting for the next round
	pool     []*subscriber // scratch: the pool workers' share of a release
}

// due returns when the next round may go.
func (r *rounds) due() time.Time { return r.last.Add(r.interval) }

// release schedules the woken subscribers whose turn has come: every one
// when a round is due, or with all; otherwise the quiet ones. The others
// wait for the next round.
func (h *Hub) release(all bool) {
	r := &h.rounds
	if len(r.ready) == 0 {
		return
	}
	now := time.Now()
	round := all || !now.Before(r.due())
	start := 0
	if !round {
		if r.checked == len(r.ready) {
			return
		}
		start = r.checked
	}
	quietSince := now.Add(-r.interval).UnixNano()
	keep, pool := r.ready[:start], r.pool[:0]
	for _, s := range r.ready[start:] {
		if !round && s.lastEvents.Load() > quietSince {
			keep = append(keep, s)
			continue
		}
		if s.exec == onPool {
			pool = append(pool, s)
		} else {
			h.schedule(s)
		}
	}
	if round {
		// A round starts the interval, whether it sends subscribers that
		// waited for it or the first event after a quiet spell.
		r.adapt(now)
		r.last = now
	}
	clear(r.ready[len(keep):])
	r.ready, r.checked = keep, len(keep)
	h.runq.pushAll(pool)
	clear(pool)
	r.pool = pool[:0]
}

// Stretching the interval under sustained load (see rounds.adapt).
const (
	// stretchWrites is the fewest subscribers woken between two rounds
	// for the interval to stretch: below it, the writes a longer interval
	// saves cost less than the latency it adds.
	stretchWrites = 64
	// stretchEvents and shrinkEvents bound the events a write would carry
	// at the base interval: from stretchEvents on the interval doubles,
	// below shrinkEvents it halves. The gap between them keeps it from
	// swinging back and forth under a steady load.
	stretchEvents = 4
	shrinkEvents  = 2
)

// adapt sets the interval of the round starting now from the load since
// the last one. Each subscriber woken in the window got offers/wakes
// events in one write; scaled to the base interval, that says how busy
// subscribers are whatever the current interval. When writes would carry
// several events each even at the base interval, and to many subscribers,
// the hub is under sustained load: a longer interval then puts more events
// in each write, which cuts the hub's CPU time per delivery (writes cost
// the same whatever they carry), and adds little to latencies that
// queueing already sets. When the load falls, the interval comes back.
func (r *rounds) adapt(now time.Time) {
	offers, wakes := r.offers, r.wakes
	r.offers, r.wakes = 0, 0
	if r.max <= r.base || r.last.IsZero() || wakes == 0 {
		return
	}
	// events per write at the base interval: offers/wakes × base/window
	perWrite := float64(offers) * float64(r.base) / (float64(wakes) * float64(now.Sub(r.last)))
	switch {
	case wakes >= stretchWrites && perWrite >= stretchEvents:
		r.interval = min(2*r.interval, r.max)
	case wakes < stretchWrites/2 || perWrite < shrinkEvents:
		r.interval = max(r.interval/2, r.base)
	}
}

// dispatch offers one event to every subscriber that wants it.
func (h *Hub) dispatch(ev *Event) {
	h.cur.Store(ev.Pos)
	r := &h.rounds
	h.index.each(ev.Topics, func(s *subscriber) {
		if ev.Private && !s.authorized(ev.Topics) {
			return
		}
		r.offers++
		if s.offer(ev) {
			r.wakes++
			r.ready = append(r.ready, s)
		}
	})
	if ev.End {
		h.endTopics(ev)
	} else {
		h.ended.reopen(ev.Topics)
	}
	h.lastID.Store(&ev.ID)
}

// fellBehind handles events the log dropped before the dispatcher read
// them, the positions [from, to): publishers outran the dispatcher by more
// than the log retains. Live subscribers may have wanted them, so each goes
// back to reading the log at its cursor, finds the events gone, and is
// disconnected, to resume with Last-Event-ID: a gap is never silent.
func (h *Hub) fellBehind(from, to uint64) {
	h.logger.Warn("hub: the history dropped events before they were delivered; increase its size",
		"first", from, "last", to-1)
	h.index.subscribers(func(s *subscriber) { s.toLog() })
}

// worker runs subscribers scheduled on the pool until the hub stops.
func (h *Hub) worker() {
	defer h.pool.Done()
	var scratch [][]byte
	for {
		s, ok := h.runq.pop()
		if !ok {
			return
		}
		s.run(false, &scratch)
	}
}
