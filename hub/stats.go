package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/internal/histogram"
)

// Stats is a snapshot of a hub's counters, for monitoring. The counts
// are since the hub started; maps hold only the keys counted so far.
type Stats struct {
	// Subscribers is the number of subscriptions being served.
	Subscribers int
	// SlowDropped counts the subscribers the hub has disconnected since it
	// started because they did not keep up: a write to one did not finish
	// within the dispatch timeout (it took its bytes too slowly, or none),
	// or it fell so far behind that the history dropped events it had not
	// received. Clients that went away, connections that reached their
	// lifetime and subscriptions closed by a shutdown are not counted.
	SlowDropped uint64

	// Streams is the number of subscription streams open, by transport:
	// TransportHTTP1, TransportHTTP2 or TransportOther. A subscriber
	// counts from the moment its stream is set up, so Streams may lag
	// Subscribers by the subscriptions being opened.
	Streams map[string]int
	// StreamsOpened counts the subscription streams opened, by transport.
	StreamsOpened map[string]uint64
	// StreamsClosed counts the subscription streams closed, by reason:
	// "client_gone" (a write failed), "client_closed" (the client closed
	// its connection), "stalled" (a write did not finish within the
	// dispatch timeout), "lifetime" (the connection reached its maximum
	// lifetime), "token_expired", "topics_ended", "fell_behind" (the
	// history dropped events the subscriber had not read) and "shutdown".
	StreamsClosed map[string]uint64

	// Published counts the publications accepted: appended to the
	// history, from HTTP or Publish (the subscription events the hub
	// publishes itself are not counted).
	Published uint64
	// Refused counts the requests refused with an error answer (see
	// docs/api.md), by request and error code.
	Refused map[Refusal]uint64

	// Delivered counts the events written to subscribers: one per event
	// per subscriber, counted once the write that carries it succeeded.
	Delivered uint64
	// WrittenBytes counts the bytes of events and heartbeats written to
	// subscribers, without the HTTP framing.
	WrittenBytes uint64

	// AppendLatency is the time Log.Append took for each publication, as
	// the publisher waited for it (group commit included), in seconds.
	AppendLatency Histogram
	// ReplayReads counts the reads of the history by subscribers catching
	// up: resuming with Last-Event-ID, starting, or fallen behind the live
	// queue.
	ReplayReads uint64
	// StoreErrors counts the calls to the Log that failed, other than for
	// a duplicate ID, the hub's shutdown or the caller's context, by
	// operation: "append", "read", "lookup" or "bounds".
	StoreErrors map[string]uint64
	// Retained is the number of events the history retains; zero when its
	// bounds cannot be read.
	Retained uint64
	// Commits holds what the Log reports of its commits, if it is a
	// CommitReporter; nil otherwise.
	Commits *CommitStats

	// Connections is the number of connections that Serve holds open,
	// every kind counted (see Config.MaxConnections).
	Connections int
	// ConnectionsAccepted counts the connections Serve accepted, those it
	// then refused past MaxConnections included.
	ConnectionsAccepted uint64
	// AcceptErrors counts the failures of Serve's listener to accept a
	// connection (out of file descriptors, say), which Serve retries.
	AcceptErrors uint64
}

// The transports of Stats.Streams.
const (
	// TransportHTTP1 is an HTTP/1.1 connection that the hub took over
	// (hijacked) and writes itself.
	TransportHTTP1 = "http1.1"
	// TransportHTTP2 is an HTTP/2 stream, written through its handler.
	TransportHTTP2 = "http2"
	// TransportOther is any other response written through its handler:
	// HTTP/1.0, or a writer that cannot be hijacked.
	TransportOther = "other"
)

// Refusal is a kind of refused request: the request and the error code.
type Refusal struct {
	// Request is "publish" (a POST to Path), "subscribe" (a GET or HEAD
	// of Path) or "other": the subscriptions API, other paths and methods,
	// and connections refused past MaxConnections.
	Request string
	// Code is the error code of the answer, the "error" member of its
	// body.
	Code string
}

// Histogram is a snapshot of a histogram: counts of observations by
// bucket.
type Histogram struct {
	// Bounds are the buckets' upper bounds, inclusive and increasing, in
	// the unit of the observations.
	Bounds []float64
	// Counts holds the observations of each bucket, not cumulative: one
	// per bound, then those past the last bound.
	Counts []uint64
	// Count is the number of observations, Sum their total.
	Count uint64
	Sum   float64
}

// histogramOf returns the snapshot of a histogram.Recorder, its bounds and
// sum multiplied by scale.
func histogramOf(s histogram.Snapshot, scale float64) Histogram {
	bounds, sum := s.Scaled(scale)
	return Histogram{Bounds: bounds, Counts: s.Counts, Count: s.Count, Sum: sum}
}

// CommitReporter is an optional interface of a Log that commits appends in
// groups (group commit): Stats includes what it reports. Implementations
// keep a compile-time guard, var _ hub.CommitReporter = (*T)(nil).
type CommitReporter interface {
	// CommitStats returns the counts of commits so far. It is safe for
	// concurrent use and cheap enough to call on every scrape.
	CommitStats() CommitStats
}

// CommitStats are the counts of a CommitReporter.
type CommitStats struct {
	// Sizes counts the events of each successful commit.
	Sizes Histogram
	// Failed counts the commits that failed.
	Failed uint64
}

// Stats returns the hub's counters. It is safe for concurrent use and
// cheap enough to call on every scrape of a metrics endpoint: it reads the
// counters and the log's bounds, and visits no subscriber.
func (h *Hub) Stats() Stats {
	c := &h.stats
	st := Stats{
		Subscribers:         h.index.size(),
		SlowDropped:         h.drops.total.Load(),
		Streams:             map[string]int{},
		StreamsOpened:       map[string]uint64{},
		StreamsClosed:       map[string]uint64{},
		Published:           c.published.Load(),
		Refused:             map[Refusal]uint64{},
		AppendLatency:       histogramOf(c.appendLatency.Snapshot(), 1e-9),
		ReplayReads:         c.replayReads.Load(),
		StoreErrors:         map[string]uint64{},
		Connections:         int(c.conns.Load()),
		ConnectionsAccepted: c.accepted.Load(),
		AcceptErrors:        c.acceptErrors.Load(),
	}
	for t := range transport(numTransports) {
		// Closed first: a stream opened meanwhile may be counted open,
		// never one closed counted negative.
		closed := c.closedOn[t].Load()
		if opened := c.opened[t].Load(); opened > 0 {
			st.StreamsOpened[t.String()] = opened
			st.Streams[t.String()] = int(opened - closed)
		}
	}
	for r := gone; r < numReasons; r++ {
		if n := c.closed[r].Load(); n > 0 {
			st.StreamsClosed[r.label()] = n
		}
	}
	for k := range refusalKind(numKinds) {
		for i, code := range refusalCodes {
			if n := c.refused[k][i].Load(); n > 0 {
				st.Refused[Refusal{Request: k.String(), Code: code}] = n
			}
		}
	}
	for i := range c.writes {
		st.Delivered += c.writes[i].events.Load()
		st.WrittenBytes += c.writes[i].bytes.Load()
	}
	for op := range storeOp(numStoreOps) {
		if n := c.storeErrors[op].Load(); n > 0 {
			st.StoreErrors[op.String()] = n
		}
	}
	if first, next, err := h.log.Bounds(context.Background()); err == nil {
		st.Retained = next - first
	}
	if cr, ok := h.log.(CommitReporter); ok {
		cs := cr.CommitStats()
		st.Commits = &cs
	}
	return st
}

// counters are the hub's counts, kept with atomics and read by Stats.
type counters struct {
	published     atomic.Uint64
	appendLatency *histogram.Recorder // in nanoseconds
	replayReads   atomic.Uint64
	storeErrors   [numStoreOps]atomic.Uint64

	opened   [numTransports]atomic.Uint64 // streams opened
	closedOn [numTransports]atomic.Uint64 // streams closed, by transport
	closed   [numReasons]atomic.Uint64    // streams closed, by reason
	refused  [numKinds][len(refusalCodes)]atomic.Uint64

	// writes count the events and bytes written to subscribers, the
	// counts of the hottest path: each subscriber adds to one shard, drawn
	// when it opens, so that the pool's workers, writing to different
	// subscribers, seldom add to the same cache line.
	writes []writeShard

	conns        atomic.Int64 // connections Serve holds
	accepted     atomic.Uint64
	acceptErrors atomic.Uint64
}

// writeShard is one shard of counters.writes, alone in its cache line.
type writeShard struct {
	events atomic.Uint64
	bytes  atomic.Uint64
	_      [cacheLine - 16]byte
}

// cacheLine is the size of a cache line on the machines herald runs on
// (x86-64, and most arm64), to keep shards apart.
const cacheLine = 64

// writeShardsPerWorker is the number of write shards per pool worker: with
// subscribers spread at random over 4 shards a worker, two workers add to
// the same shard at once a quarter as often as with one shard each.
const writeShardsPerWorker = 4

// Buckets of the append latency histogram, in nanoseconds: from a memory
// log's microseconds to a disk's seconds under pressure.
var appendLatencyBounds = []uint64{
	10e3, 25e3, 50e3, 100e3, 250e3, 500e3,
	1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6,
	1e9, 2.5e9, 5e9, 10e9,
}

func newCounters(workers int) counters {
	return counters{
		appendLatency: histogram.New(appendLatencyBounds...),
		writes:        make([]writeShard, max(1, workers*writeShardsPerWorker)),
	}
}

// writeShard returns the shard for a new subscriber.
func (c *counters) writeShard() *writeShard {
	return &c.writes[rand.N(len(c.writes))]
}

// transport is how a subscriber's stream is written (see Stats.Streams).
type transport uint8

const (
	onHTTP1 transport = iota
	onHTTP2
	onOther
	numTransports
)

func (t transport) String() string {
	return [...]string{TransportHTTP1, TransportHTTP2, TransportOther}[t]
}

// label returns the name of a close reason in Stats.StreamsClosed.
func (r closeReason) label() string {
	return [...]string{"open", "client_gone", "client_closed", "stalled", "lifetime", "token_expired", "topics_ended", "fell_behind", "shutdown"}[r]
}

// storeOp is a call to the Log, for Stats.StoreErrors.
type storeOp uint8

const (
	opAppend storeOp = iota
	opRead
	opLookup
	opBounds
	numStoreOps
)

func (op storeOp) String() string {
	return [...]string{"append", "read", "lookup", "bounds"}[op]
}

// storeFailed counts a failed call to the Log, unless it failed for the
// hub's shutdown or because ctx ended.
func (h *Hub) storeFailed(ctx context.Context, op storeOp, err error) {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrDuplicateID) || ctx.Err() != nil || h.ctx.Err() != nil {
		return
	}
	h.stats.storeErrors[op].Add(1)
}

// refusalKind is Refusal.Request.
type refusalKind uint8

const (
	refusedPublish refusalKind = iota
	refusedSubscribe
	refusedOther
	numKinds
)

func (k refusalKind) String() string {
	return [...]string{"publish", "subscribe", "other"}[k]
}

// kindOf returns the kind of a request.
func kindOf(r *http.Request) refusalKind {
	if r.URL.Path != Path {
		return refusedOther
	}
	switch r.Method {
	case http.MethodPost:
		return refusedPublish
	case http.MethodGet, http.MethodHead:
		return refusedSubscribe
	}
	return refusedOther
}

// refusalCodes lists every error code, to count refusals in an array.
var refusalCodes = [...]string{
	codeMissingTopic, codeTooManyTopics, codeInvalidTopic, codeReservedTopic, codeInvalidID, codeDuplicateID,
	codeInvalidType, codeInvalidRetry, codeInvalidBody, codeBodyTooLarge, codeUnsupportedType, codeNoToken,
	codeInvalidToken, codeForbidden, codeBadOrigin, codeMethod, codeNotFound, codeUnavailable, codeTooManyConns,
	codeInternal, codeTooManySelectors, codeTooManyTemplates, codeNoHistory, codeNoPresence,
}

// codeIndex returns the index of code in refusalCodes; an unknown code
// counts as internal_error.
func codeIndex(code string) int {
	for i, c := range refusalCodes {
		if c == code {
			return i
		}
	}
	return codeIndex(codeInternal)
}

// refuse answers a request with err, as writeError does, and counts and
// logs the refusal.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	h.refused(r.Context(), kindOf(r), e, r.RemoteAddr, r.Method, r.URL.Path)
	writeError(w, e)
}

// refused counts a refusal, and logs it at info level.
func (h *Hub) refused(ctx context.Context, kind refusalKind, e *Error, remote, method, path string) {
	h.stats.refused[kind][codeIndex(e.Code)].Add(1)
	if h.logger.Enabled(ctx, slog.LevelInfo) {
		h.logger.LogAttrs(ctx, slog.LevelInfo, "hub: request refused",
			slog.Int("status", e.Status), slog.String("error", e.Code), slog.String("message", e.Message),
			slog.String("remote", remote), slog.String("method", method), slog.String("path", path))
	}
}

// dropLogEvery bounds how often the hub logs the subscribers it dropped for
// not keeping up: a fleet of stuck clients is dropped within one dispatch
// timeout, and a line for each would flood the log when it matters most.
const dropLogEvery = time.Second

// slowDrops counts the subscribers dropped for not keeping up (stalled or
// lost) and logs them, at most once per dropLogEvery, with how many went
// since the last line and why. It is safe for concurrent use.
type slowDrops struct {
	logger  *slog.Logger
	timeout time.Duration // the dispatch timeout, to say why
	total   atomic.Uint64

	mu      sync.Mutex
	stalled uint64      // since the last line
	lost    uint64      // since the last line
	last    time.Time   // when the last line was logged
	flush   *time.Timer // the next line, when one is scheduled
	stopped bool        // the hub has shut down: no more lines are scheduled
}

// add counts a subscriber dropped for reason, stalled or lost, and logs
// it now or with the next line.
func (d *slowDrops) add(reason closeReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total.Add(1)
	if reason == stalled {
		d.stalled++
	} else {
		d.lost++
	}
	if d.flush != nil || d.stopped {
		return
	}
	wait := time.Until(d.last.Add(dropLogEvery))
	if wait <= 0 {
		d.logLocked()
		return
	}
	d.flush = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.flush = nil
		d.logLocked()
	})
}

// stop logs what is pending and schedules no more lines.
func (d *slowDrops) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.flush != nil {
		d.flush.Stop()
		d.flush = nil
	}
	d.logLocked()
}

// logLocked logs the drops since the last line, if any. d.mu is held.
func (d *slowDrops) logLocked() {
	n := d.stalled + d.lost
	if n == 0 {
		return
	}
	var why []string
	if d.stalled > 0 {
		why = append(why, fmt.Sprintf("stalled: a write did not finish in %v", d.timeout))
	}
	if d.lost > 0 {
		why = append(why, "fell behind the history")
	}
	if len(why) == 2 {
		why[0] += fmt.Sprintf(" (%d)", d.stalled)
		why[1] += fmt.Sprintf(" (%d)", d.lost)
	}
	d.logger.Warn("hub: dropped slow subscribers", "dropped", n, "reason", strings.Join(why, "; "), "total", d.total.Load())
	d.stalled, d.lost = 0, 0
	d.last = time.Now()
}
