package hub

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
)

// Hub is a Mercure hub: an http.Handler that serves subscriptions and
// publications at /.well-known/mercure, and Publish for Go programs. Create
// one with New. It is safe for concurrent use.
type Hub struct {
	cfg    Config
	log    Log
	ownLog bool
	// presence is Config.Presence, or the index's.
	presence Presence
	logger   *slog.Logger
	match    *matcher
	index    *index
	ended    *endedTopics
	timers   *timers
	runq     *runQueue
	watcher  *watcher
	workers  int

	// recent is the log as a RecentReader, nil if it is not one; readq
	// holds the subscribers waiting for a log reader (see logread.go).
	recent RecentReader
	readq  *runQueue

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
	readers  sync.WaitGroup // the log readers
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
	h.presence = cfg.Presence
	if h.presence == nil {
		h.presence = localPresence{h.index}
	}
	h.ended = newEndedTopics(cfg.MaxEndedTopics)
	if err := h.recallEnded(first, next); err != nil {
		return nil, err
	}
	h.drops.logger, h.drops.timeout = cfg.Logger, cfg.DispatchTimeout
	h.timers = newTimers()
	h.runq = newRunQueue()
	h.readq = newRunQueue()
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
	if rr, ok := h.log.(RecentReader); ok {
		h.recent = rr
		n := max(minLogReaders, h.workers)
		h.readers.Add(n)
		for range n {
			go h.logReader()
		}
	}
	return h, nil
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
		h.readq.close() // empty: a subscriber a reader holds has not finished
		h.readers.Wait()
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
