// Package redisstore is a hub.Log on a Redis Stream: the history that
// several herald nodes share in cluster mode. Open a Store on every node
// with the same URL and prefix, pass it as hub.Config.Log, close it after
// the hub.
//
// # Layout
//
// The history is one stream, with an index of event IDs in a hash, a
// position counter and an epoch, all under one hash tag so that they sit
// in one Redis Cluster slot (see keys). One stream and not shards: the
// hub needs one total order of events, and shards would need a merge by
// every reader with positions agreed across them. Sharding waits until a
// measurement shows one stream (one Redis core) to be the limit.
//
// An append is one Lua script (EVALSHA) that checks the epoch, refuses
// duplicate IDs, numbers the events from the counter (the stream ID of an
// event is its position, "<pos>-0", so positions are dense), adds them to
// the stream and the index, trims by length and age, and takes the
// events' time from the server's clock, one clock for every node. The
// appends that arrive while a script runs share the next run, each batch
// all or nothing (group commit). Retries are off: a script whose reply was
// lost may have run.
//
// # Acknowledgement
//
// Append returns once the script succeeded, that is once the events are
// in the Redis server's memory, and this node's reader has read them back
// (so that a Read right after an Append sees them). What survives a crash
// of Redis then depends on Redis's settings: appendonly with appendfsync
// always keeps every acknowledged event, everysec may lose the last
// second, and a server with no persistence loses the whole history on a
// restart (see Epochs). A replica's copy is asynchronous. Redis must not
// evict these keys: use maxmemory-policy noeviction.
//
// # Reading
//
// Each Store runs one reader goroutine, on a connection of its own, that
// follows the stream with a blocking XREAD and feeds an in-memory window
// of the recent events (store/internal/window). Wait, Bounds and the reads
// of recent events answer from that window; only a Read older than the
// window goes to Redis (XRANGE). No command is sent per subscriber.
//
// # Epochs
//
// The key {prefix}:epoch holds a random generation. When Redis loses the
// history (the epoch is missing or has changed), the store that notices
// first creates a new epoch, wiping what is left of the old one, and every
// store adopts it: its positions continue from where they were (positions
// are therefore the node's own; event IDs are what clients resume with),
// and the lost events read as dropped from the front. Each store logs the
// change at warn level.
//
// # Faults
//
// Every command has a short timeout (commandTimeout). An append whose
// script fails or whose outcome is unknown returns an error wrapping
// hub.ErrUnavailable (never a false success): at once when Redis refuses
// the connection, within the timeout when it does not answer. Healthy
// says so until a command succeeds again, and
// the reader reconnects on its own with backoff. Wait and recent Reads go
// on from memory meanwhile; a Read older than the window that Redis cannot
// serve returns the oldest events the window holds, which the hub takes
// as a gap (the subscribers concerned are disconnected and resume with
// Last-Event-ID later), so that an outage never stops the hub's delivery
// for good; it fails only when the window holds none after it.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/internal/record"
	"github.com/herald-sse/herald/store/internal/window"
	"github.com/redis/go-redis/v9"
)

const (
	// DefaultSize is the number of events retained when Config.Size is
	// zero, as for the embedded stores.
	DefaultSize = 1_000_000
	// DefaultPrefix names the keys when Config.Prefix is empty.
	DefaultPrefix = "herald"
	// WindowSize is the number of recent events each Store keeps in
	// memory: live delivery and short catch-ups read them, not Redis.
	WindowSize = 8192

	// commandTimeout bounds every command but the reader's blocking
	// XREAD: an unreachable Redis fails appends in this time, not
	// in the publisher's.
	commandTimeout = 2 * time.Second
	// readBlock is how long the reader's XREAD waits for new entries
	// before it asks again: a dead connection is noticed within about
	// this time plus commandTimeout.
	readBlock = time.Second
	// readCount bounds the entries one XREAD returns.
	readCount = 512
	// trimBudget bounds the entries one append may trim beyond its own
	// count, so that a lowered Size or an expired backlog is trimmed a
	// bit at a time rather than in one long script that blocks Redis.
	trimBudget = 1024
	// maxBackoff bounds the reader's wait between reconnections.
	maxBackoff = 2 * time.Second
)

// Config configures a Store. Its zero value, but for URL, works.
type Config struct {
	// URL locates Redis, with the password if any, and picks the kind of
	// client:
	//
	//	redis://[user:password@]host:port[/db][?options]           one server
	//	rediss://…                                                   the same over TLS
	//	redis://host:port?addr=host2:port&addr=host3:port            Redis Cluster
	//	redis://host:port?master_name=mymaster&addr=host2:port       Sentinel
	//
	// A URL with master_name is a Sentinel one (the addresses are the
	// sentinels'); one with addr parameters and no master_name a Cluster
	// one (the addresses are seeds); others one server. The options are
	// go-redis's (ParseURL, ParseClusterURL, ParseFailoverURL).
	URL string
	// Prefix names the keys: {Prefix}:log and so on. Every node of one
	// deployment uses the same. Empty means DefaultPrefix.
	Prefix string
	// Size is the number of events retained; the oldest beyond it are
	// dropped. Zero means DefaultSize.
	Size int
	// MaxAge, when positive, also drops events older than this.
	MaxAge time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Store is a hub.Log on a Redis Stream. It is safe for concurrent use.
type Store struct {
	cfg    Config
	keys   keys
	rdb    redis.UniversalClient // commands
	reader redis.UniversalClient // the reader's blocking XREAD, on a connection of its own
	logger *slog.Logger
	w      *window.Window
	where  string

	// epochMu orders adoptions of a new epoch after the appends in
	// flight: an append holds it for reading from before its script
	// until it has recorded the positions it got, so that a new epoch's
	// positions start past them.
	epochMu sync.RWMutex
	mu      sync.Mutex // guards the fields below; taken inside epochMu
	epoch   string     // the epoch this store follows
	offset  uint64     // local position = Redis position + offset, in this epoch
	issued  uint64     // one past the last position an append got
	pending map[uint64]*hub.Event

	failure  atomic.Pointer[error] // the last command's failure; nil: it worked
	presence *Presence             // made by NewPresence, closed by Close

	qmu     sync.Mutex   // guards the two below
	queue   []*appendReq // appends waiting for a script run
	leading bool         // a script run is under way
	closed  atomic.Bool
	stop    context.CancelFunc
	done    chan struct{}
}

var (
	_ hub.Log           = (*Store)(nil)
	_ hub.HealthChecker = (*Store)(nil)
	_ hub.RecentReader  = (*Store)(nil)
)

// Open connects to Redis, creates the history's epoch if it has none, and
// starts the reader. It fails if Redis cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rdb, err := newClient(cfg.URL, 0)
	if err != nil {
		return nil, err
	}
	reader, err := newClient(cfg.URL, 1)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s := &Store{
		cfg:     cfg,
		keys:    newKeys(cfg.Prefix),
		rdb:     rdb,
		reader:  reader,
		logger:  cfg.Logger,
		where:   fmt.Sprintf("%s, prefix %s", Redact(cfg.URL), cfg.Prefix),
		pending: make(map[uint64]*hub.Event),
		done:    make(chan struct{}),
	}
	first, next, err := s.start(ctx)
	if err != nil {
		_ = rdb.Close()
		_ = reader.Close()
		return nil, fmt.Errorf("redisstore: opening the history on %s: %w", s.where, err)
	}
	s.w = window.New(WindowSize, first, next, nil)
	s.issued = next
	rctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.run(rctx, next-1)
	return s, nil
}

// start finds or creates the epoch and reads the bounds of its history.
func (s *Store) start(ctx context.Context) (first, next uint64, err error) {
	for range 3 {
		ep, err := s.renew(ctx)
		if err != nil {
			return 0, 0, err
		}
		cctx, cancel := context.WithTimeout(ctx, commandTimeout)
		var epCmd, firstCmd, lastCmd *redis.StringCmd
		_, err = s.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
			epCmd = p.Get(cctx, s.keys.epoch)
			firstCmd = p.Get(cctx, s.keys.first)
			lastCmd = p.Get(cctx, s.keys.last)
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, 0, err
		}
		if epCmd.Val() != ep {
			continue // lost again meanwhile
		}
		first, _ = firstCmd.Uint64()
		last, _ := lastCmd.Uint64()
		s.epoch = ep
		return max(first, 1), last + 1, nil
	}
	return 0, 0, errors.New("the epoch keeps changing")
}

// newClient returns a client for url (see Config.URL). poolSize, when
// positive, overrides the pool's size.
func newClient(rawURL string, poolSize int) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("redisstore: %q is not a redis:// or rediss:// URL", Redact(rawURL))
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, poolSize)
		return redis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, poolSize)
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		tune(&o.MaxRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled, &o.PoolSize, poolSize)
		return redis.NewClient(o), nil
	}
}

// tune sets the options of a client of any kind that the store needs.
//
// Retries are off: a script whose reply was lost may have run, and running
// it again would append the events twice (or refuse them as duplicates);
// such an append is reported as unavailable instead. The timeouts the URL
// leaves unset are commandTimeout, and contexts' deadlines apply, so that
// an unreachable Redis fails commands promptly. The read timeout must
// exceed readBlock, or the reader's XREAD would time out while Redis
// legitimately blocks it.
func tune(retries *int, dial, read, write *time.Duration, ctxTimeouts *bool, pool *int, poolSize int) {
	*retries, *ctxTimeouts = -1, true
	if *dial <= 0 {
		*dial = commandTimeout
	}
	if *read <= readBlock {
		*read = readBlock + commandTimeout
	}
	if *write <= 0 {
		*write = commandTimeout
	}
	if poolSize > 0 {
		*pool = poolSize
	}
}

// Redact returns url without its password, to be shown in logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an invalid URL)"
	}
	return u.Redacted()
}

// Where describes the history: the server's URL without its password, and
// the prefix.
func (s *Store) Where() string { return s.where }

// renew returns the history's epoch, creating one if it has none.
func (s *Store) renew(ctx context.Context) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	return renewScript.Run(cctx, s.rdb, s.keys.list(), hex.EncodeToString(b[:])).Text()
}

// adopt makes the store follow the epoch ep, if it does not yet: its
// positions continue past every one it has read or handed out, and what
// came before reads as dropped.
func (s *Store) adopt(ep string) {
	s.epochMu.Lock()
	defer s.epochMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep == s.epoch {
		return
	}
	_, next := s.w.Bounds()
	start := max(next, s.issued)
	s.logger.Warn("redisstore: Redis lost the history (its epoch changed); positions continue, what was not delivered is lost",
		"where", s.where, "old", s.epoch, "new", ep, "next", start)
	s.epoch, s.offset, s.issued = ep, start-1, start
	clear(s.pending)
	s.w.Advance(start, start)
}

// failed records that a command failed, and returns err wrapping
// hub.ErrUnavailable with what was being done. A command that failed
// because the caller's ctx ended says nothing of Redis: its error is
// ctx's, and the store's health does not change.
func (s *Store) failed(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("redisstore: %s: %w", doing, ctx.Err())
	}
	err = fmt.Errorf("redisstore: %s on %s: %w: %w", doing, s.where, hub.ErrUnavailable, err)
	s.failure.Store(&err)
	return err
}

// worked records that a command succeeded.
func (s *Store) worked() {
	if s.failure.Load() != nil {
		s.failure.Store(nil)
	}
}

// Append implements hub.Log. The appends that arrive while a script runs
// wait, and the first of them then runs one script for all (group commit),
// as the embedded stores share a sync: concurrent publishers cost Redis one
// script run per round, not one each.
func (s *Store) Append(ctx context.Context, evs ...*hub.Event) error {
	if s.closed.Load() {
		return hub.ErrClosed
	}
	if len(evs) == 0 {
		return nil
	}
	r := &appendReq{evs: evs, args: make([]any, 0, 1+2*len(evs)), done: make(chan error, 1)}
	r.args = append(r.args, len(evs))
	for _, ev := range evs {
		// The record's time is not the event's: the script takes the
		// event's time from the server, and keeps it beside the record.
		rec := *ev
		rec.Time = time.Unix(0, 0)
		r.args = append(r.args, ev.ID, record.Append(nil, &rec))
	}
	for attempt := 0; ; attempt++ {
		err := s.commit(ctx, r)
		var lost *lostError
		switch {
		case err == nil:
			return s.readBack(ctx, evs[len(evs)-1].Pos)
		case errors.As(err, &lost) && attempt == 0:
			if lost.epoch == "" {
				ep, err := s.renew(ctx)
				if err != nil {
					return s.failed(ctx, "renewing the epoch", err)
				}
				lost.epoch = ep
			}
			s.adopt(lost.epoch)
			r.done = make(chan error, 1)
		case errors.As(err, &lost):
			return s.failed(ctx, "appending", err)
		default:
			return err
		}
	}
}

// appendReq is an append waiting for a script run.
type appendReq struct {
	evs  []*hub.Event
	args []any      // the script's arguments for the batch: its size, then an ID and a record per event
	done chan error // its outcome, or errLead: run the next script
}

// errLead tells a waiting append that it runs the next script.
var errLead = errors.New("redisstore: lead the next append")

// maxGroup bounds the events of one script run, so that one run does
// bounded work in Redis and a flood of publishers still gets answers at a
// steady pace.
const maxGroup = 1024

// commit queues r and waits for its outcome: it runs the script itself,
// for every append waiting, when no run is under way, and otherwise waits
// for its turn, which the run under way hands to the first append queued.
func (s *Store) commit(ctx context.Context, r *appendReq) error {
	s.qmu.Lock()
	s.queue = append(s.queue, r)
	if s.leading {
		s.qmu.Unlock()
		if err := <-r.done; err != errLead {
			return err
		}
		s.qmu.Lock()
	} else {
		s.leading = true
	}
	n, group := 0, make([]*appendReq, 0, len(s.queue))
	for len(s.queue) > 0 && (len(group) == 0 || n+len(s.queue[0].evs) <= maxGroup) {
		group = append(group, s.queue[0])
		n += len(s.queue[0].evs)
		s.queue = s.queue[1:]
	}
	s.qmu.Unlock()
	// The run answers every append of the group: none of them waits on
	// its own publisher's context, which may end meanwhile.
	s.runGroup(context.WithoutCancel(ctx), group)
	s.qmu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].done <- errLead
	} else {
		s.leading = false
	}
	s.qmu.Unlock()
	return <-r.done
}

// lostError is the script's refusal of a batch for its epoch.
type lostError struct{ epoch string }

func (e *lostError) Error() string { return "the history's epoch changed to " + strconv.Quote(e.epoch) }

// runGroup runs the script once for the group and sends each append its
// outcome, having recorded the positions its events got.
func (s *Store) runGroup(ctx context.Context, group []*appendReq) {
	answer := func(err error) {
		for _, r := range group {
			r.done <- err
		}
	}
	s.epochMu.RLock()
	defer s.epochMu.RUnlock()
	s.mu.Lock()
	epoch, offset := s.epoch, s.offset
	s.mu.Unlock()
	args := []any{epoch, s.cfg.Size, s.cfg.MaxAge.Microseconds(), trimBudget}
	for _, r := range group {
		args = append(args, r.args...)
	}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	res, err := appendScript.Run(cctx, s.rdb, s.keys.list(), args...).Slice()
	cancel()
	if err != nil {
		if msg := err.Error(); strings.HasPrefix(msg, errEpochPrefix) {
			s.worked()
			answer(&lostError{epoch: strings.TrimSpace(strings.TrimPrefix(msg, errEpochPrefix))})
			return
		}
		answer(s.failed(ctx, "appending", err))
		return
	}
	s.worked()
	micros, err := strconv.ParseInt(fmt.Sprint(res[0]), 10, 64)
	if len(res) != 2+len(group) || err != nil {
		answer(s.failed(ctx, "appending", fmt.Errorf("unexpected reply %v", res)))
		return
	}
	t := time.UnixMicro(micros)
	outcomes := make([]error, len(group))
	s.mu.Lock()
	for i, r := range group {
		pos, ok := res[2+i].(int64)
		if !ok || pos < 1 {
			dup, _ := res[2+i].(string)
			outcomes[i] = fmt.Errorf("redisstore: %w: %s", hub.ErrDuplicateID, strings.TrimPrefix(dup, errDupPrefix+" "))
			continue
		}
		for j, ev := range r.evs {
			ev.Pos, ev.Time = uint64(pos)+uint64(j)+offset, t
			ev.Prepare()
			if s.epoch == epoch {
				s.pending[ev.Pos] = ev
			}
		}
		s.issued = max(s.issued, r.evs[len(r.evs)-1].Pos+1)
	}
	s.mu.Unlock()
	for i, r := range group {
		r.done <- outcomes[i]
	}
}

// readBack waits until the reader has read the position last, so that this
// node reads its own writes. The events are in Redis already: a wait that
// times out reports their outcome as unknown.
func (s *Store) readBack(ctx context.Context, last uint64) error {
	cctx, cancel := context.WithTimeout(ctx, readBlock+2*commandTimeout)
	defer cancel()
	err := s.w.Wait(cctx, last)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hub.ErrClosed):
		return hub.ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return s.failed(ctx, "reading back an append", err)
}

// ReadRecent implements hub.RecentReader: it answers from the window, and
// reports false for older events, which Read takes from Redis.
func (s *Store) ReadRecent(from uint64, limit int) ([]*hub.Event, bool) {
	if s.closed.Load() {
		return nil, false
	}
	return s.w.Read(from, limit)
}

// Read implements hub.Log.
func (s *Store) Read(ctx context.Context, from uint64, limit int) ([]*hub.Event, error) {
	if s.closed.Load() {
		return nil, hub.ErrClosed
	}
	if evs, ok := s.w.Read(from, limit); ok {
		return evs, nil
	}
	evs, err := s.readRedis(ctx, from, limit)
	if err == nil {
		return evs, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Redis cannot serve the old events: hand over those the window
	// holds, which the hub takes as a gap, rather than an error that
	// would stop its delivery for good.
	// When the window holds none, an empty answer would read as the end
	// of the log: the error it is then.
	if evs, _ = s.w.Read(s.held(), limit); len(evs) == 0 {
		return nil, err
	}
	s.logger.Warn("redisstore: reading old events failed; the readers concerned skip them", "from", from, "to", evs[0].Pos, "error", err)
	return evs, nil
}

// held returns the first position the window holds in memory: the least
// position that its Read answers from memory, found by bisection.
func (s *Store) held() uint64 {
	lo, hi := s.w.Bounds()
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, ok := s.w.Read(mid, 1); ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// readRedis reads up to limit events from position from out of the stream.
func (s *Store) readRedis(ctx context.Context, from uint64, limit int) ([]*hub.Event, error) {
	s.mu.Lock()
	epoch, offset := s.epoch, s.offset
	s.mu.Unlock()
	if from <= offset {
		from = offset + 1
	}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var epCmd *redis.StringCmd
	var rangeCmd *redis.XMessageSliceCmd
	_, err := s.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
		epCmd = p.Get(cctx, s.keys.epoch)
		rangeCmd = p.XRangeN(cctx, s.keys.log, fmt.Sprintf("%d-0", from-offset), "+", int64(limit))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.failed(ctx, "reading old events", err)
	}
	s.worked()
	if epCmd.Val() != epoch {
		return nil, fmt.Errorf("redisstore: reading old events: %w: %w", hub.ErrUnavailable, &lostError{epoch: epCmd.Val()})
	}
	evs := make([]*hub.Event, 0, len(rangeCmd.Val()))
	for _, m := range rangeCmd.Val() {
		ev, err := decode(m, offset)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// decode decodes a stream entry into the event at its position plus
// offset.
func decode(m redis.XMessage, offset uint64) (*hub.Event, error) {
	pos, err := entryPos(m.ID)
	if err != nil {
		return nil, err
	}
	r, _ := m.Values["r"].(string)
	t, _ := m.Values["t"].(string)
	micros, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redisstore: entry %s has no time", m.ID)
	}
	ev, err := record.Decode(pos+offset, []byte(r))
	if err != nil {
		return nil, fmt.Errorf("redisstore: entry %s: %w", m.ID, err)
	}
	ev.Time = time.UnixMicro(micros)
	return ev, nil
}

// entryPos returns the position of a stream ID "<pos>-0".
func entryPos(id string) (uint64, error) {
	p, seq, ok := strings.Cut(id, "-")
	pos, err := strconv.ParseUint(p, 10, 64)
	if !ok || seq != "0" || err != nil || pos == 0 {
		return 0, fmt.Errorf("redisstore: stream entry %q is not one of herald's", id)
	}
	return pos, nil
}

// Lookup implements hub.Log.
func (s *Store) Lookup(ctx context.Context, id string) (uint64, bool, error) {
	if s.closed.Load() {
		return 0, false, hub.ErrClosed
	}
	s.mu.Lock()
	epoch, offset := s.epoch, s.offset
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var epCmd, posCmd *redis.StringCmd
	_, err := s.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
		epCmd = p.Get(cctx, s.keys.epoch)
		posCmd = p.HGet(cctx, s.keys.ids, id)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, false, s.failed(ctx, "looking up an ID", err)
	}
	s.worked()
	pos, err := posCmd.Uint64()
	if epCmd.Val() != epoch || err != nil {
		return 0, false, nil // an ID of another epoch is not retained in this one
	}
	return pos + offset, true, nil
}

// Bounds implements hub.Log.
func (s *Store) Bounds(ctx context.Context) (first, next uint64, err error) {
	if s.closed.Load() {
		return 0, 0, hub.ErrClosed
	}
	first, next = s.w.Bounds()
	return first, next, nil
}

// Wait implements hub.Log.
func (s *Store) Wait(ctx context.Context, after uint64) error {
	return s.w.Wait(ctx, after)
}

// Healthy implements hub.HealthChecker: it reports the failure of the last
// command, until one succeeds again. The store retries on its own.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return hub.ErrClosed
	}
	if err := s.failure.Load(); err != nil {
		return fmt.Errorf("%w (the store retries on its own)", *err)
	}
	return nil
}

// Close stops the reader and closes the connections. It is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	presence := s.presence
	s.mu.Unlock()
	var perr error
	if presence != nil {
		perr = presence.Close()
	}
	s.stop()
	s.w.Close()
	// Closing the reader's client ends its blocking XREAD at once, where
	// the context alone would wait for the block to time out.
	err := s.reader.Close()
	<-s.done
	return errors.Join(perr, err, s.rdb.Close())
}
