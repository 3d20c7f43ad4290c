package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
)

// SlowConfig is a run with subscribers that stop reading: Slow subscribers
// connect, read the probe and then nothing more, while Fast ones, on the
// same topic, read everything, and a publisher sends Volume bytes in events
// of EventSize bytes at Rate. It measures what the stuck subscribers cost
// the others: the fast subscribers' delivery latency, that each got every
// event once and in order, and how many slow subscribers the hub dropped,
// and when.
type SlowConfig struct {
	Target
	Slow      int     // subscribers that stop reading once they have the probe, on topic 0
	Fast      int     // subscribers that read everything, on topic 0
	Others    int     // subscribers that read everything on topic 1, which then gets every other event; 0 for none
	Volume    int64   // bytes of event data to publish, in all
	EventSize int     // bytes of data per event, at least minEventSize
	Rate      float64 // events per second; 0 publishes as fast as the hub answers
	// Wait bounds how long after the last publication the fast
	// subscribers have to receive every event and the hub to drop the
	// slow ones. Zero means 15 seconds.
	Wait     time.Duration
	PIDs     []int     // the hub's processes, to read their CPU time and memory; none skips that
	Progress io.Writer // receives a progress line each second; nil for none
}

// minEventSize leaves room in an event's data for "publisher sequence
// sent " before the padding.
const minEventSize = 64

func (c *SlowConfig) check() error {
	switch {
	case c.Slow < 0 || c.Fast < 1 || c.Others < 0:
		return fmt.Errorf("slow: need fast subscribers ≥ 1, slow and other subscribers ≥ 0 (have %d, %d, %d)", c.Fast, c.Slow, c.Others)
	case c.EventSize < minEventSize:
		return fmt.Errorf("slow: events of %d bytes: at least %d", c.EventSize, minEventSize)
	case c.Volume < int64(c.EventSize):
		return fmt.Errorf("slow: a volume of %d bytes is less than one event", c.Volume)
	}
	if c.Wait <= 0 {
		c.Wait = 15 * time.Second
	}
	return nil
}

// events returns the number of events that make up the volume.
func (c *SlowConfig) events() int {
	return int((c.Volume + int64(c.EventSize) - 1) / int64(c.EventSize))
}

// SlowResult is what a slow run measured.
type SlowResult struct {
	Protocol  Protocol `json:"protocol"`
	Slow      int      `json:"slow_subscribers"`
	Fast      int      `json:"fast_subscribers"`
	Others    int      `json:"other_subscribers"`
	Events    int      `json:"events"`
	EventSize int      `json:"event_size"`
	Rate      float64  `json:"rate"`

	Published      int     `json:"published"`       // acknowledged
	PublishErrors  int     `json:"publish_errors"`  // refused or failed
	PublishSeconds float64 `json:"publish_seconds"` // from the first publication to the last answer
	PostLatency    Summary `json:"post_latency"`

	FastLatency  Summary  `json:"fast_latency"`            // topic 0: from before the POST to the fast subscriber's read
	OtherLatency *Summary `json:"other_latency,omitempty"` // topic 1, with other subscribers
	Expected     int64    `json:"expected"`                // deliveries the fast and other subscribers should get
	Delivered    int64    `json:"delivered"`               // deliveries they got, duplicates included
	Missing      int64    `json:"missing"`
	Duplicated   int64    `json:"duplicated"`
	OutOfOrder   int64    `json:"out_of_order"`
	Incomplete   int      `json:"incomplete_subscribers"`
	ReadersLost  int      `json:"readers_lost"` // fast or other subscribers whose stream the hub ended

	// Watched reports whether the kernel's TCP table could be read: the
	// figures on slow subscribers below need it.
	Watched     bool    `json:"watched"`
	Dropped     int     `json:"slow_dropped"`           // slow subscribers whose connection the hub closed
	FirstDrop   float64 `json:"first_drop_seconds"`     // from the first publication; 0 without drops
	MedianDrop  float64 `json:"median_drop_seconds"`    // the same
	LastDrop    float64 `json:"last_drop_seconds"`      // the same
	QueuedPeak  int64   `json:"slow_queued_peak_bytes"` // the most bytes the kernel held at once for the slow connections
	RunSeconds  float64 `json:"run_seconds"`            // from the first publication to the end of the run
	HubCPU      float64 `json:"hub_cpu_seconds,omitempty"`
	HubRSSBytes int64   `json:"hub_rss_bytes,omitempty"`
	ToolCPU     float64 `json:"tool_cpu_seconds"`
	ConnectSecs float64 `json:"connect_seconds"`
}

// publishGrace is the time a run gives its publications beyond twice what
// they take at the configured rate (or, at no rate, in all).
const publishGrace = 30 * time.Second

// publishBound returns how long the publications of a run may take.
func (c *SlowConfig) publishBound(events int) time.Duration {
	if c.Rate <= 0 {
		return 10 * publishGrace
	}
	return 2*time.Duration(float64(events)/c.Rate*float64(time.Second)) + publishGrace
}

// Slow runs the scenario of SlowConfig. It ends within the publications'
// bound (publishBound) and Wait once the subscribers are connected: a hub
// that stops answering publications or delivering has its run cut there,
// with what it did.
func Slow(ctx context.Context, cfg SlowConfig) (*SlowResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t, err := cfg.Target.resolve()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topics := 1
	if cfg.Others > 0 {
		topics = 2
	}
	fc := FanoutConfig{Target: cfg.Target, Subscribers: cfg.Slow + cfg.Fast + cfg.Others, Topics: topics,
		Events: cfg.events(), Publishers: 1, Rate: cfg.Rate}
	pad := bytes.Repeat([]byte("x"), cfg.EventSize-minEventSize/2)
	fast := newRun(fc, []*target{t}, topics)
	fast.pad, fast.recent = pad, &windowMax{}
	other := newRun(fc, []*target{t}, topics)
	other.recent = &windowMax{}
	res := &SlowResult{Protocol: t.Protocol, Slow: cfg.Slow, Fast: cfg.Fast, Others: cfg.Others, Events: fc.Events,
		EventSize: cfg.EventSize, Rate: cfg.Rate}

	// The readers first, then the slow subscribers; every one must have
	// the probe before anything is measured.
	connectStart := time.Now()
	readers := make([]*subscriber, cfg.Fast+cfg.Others)
	for i := range readers {
		readers[i] = newSubscriber(min(i/max(cfg.Fast, 1), 1), fc)
	}
	slow := make([]*subscriber, cfg.Slow)
	for i := range slow {
		slow[i] = newSubscriber(0, fc)
	}
	defer func() {
		for _, s := range slow {
			s.kill()
		}
	}()
	if err := fast.connectAll(ctx, readers[:cfg.Fast], func(s *subscriber, st *stream) { s.run(ctx, fast, st) }); err != nil {
		return nil, err
	}
	if err := other.connectAll(ctx, readers[cfg.Fast:], func(s *subscriber, st *stream) { s.run(ctx, other, st) }); err != nil {
		return nil, err
	}
	if err := fast.connectAll(ctx, slow, func(s *subscriber, st *stream) { s.readProbe(st, fast) }); err != nil {
		return nil, err
	}
	if err := fast.probe(ctx, append(slices.Clip(readers), slow...)); err != nil {
		return nil, err
	}
	res.ConnectSecs = time.Since(connectStart).Seconds()
	for _, s := range readers {
		res.Expected += int64(s.expected)
	}

	hubCPU0, _ := hubCPU(cfg.PIDs)
	toolCPU0 := selfCPU()
	start := time.Now()
	w := newSlowWatch(slow, start)
	res.Watched = w.scan() == nil
	stopWatch := func() {}
	if res.Watched {
		stopWatch = ticker(slowWatchEvery, func() { _ = w.scan() })
	}
	var posts Histogram
	var published, failed atomic.Int64
	stopProgress := func() {}
	if cfg.Progress != nil {
		stopProgress = ticker(time.Second, func() {
			var got int64
			for _, s := range readers {
				got += s.delivered.Load()
			}
			line := fmt.Sprintf("  %5.1fs  published %d; read %d, latency max %s in the last second",
				time.Since(start).Seconds(), published.Load(), got, fast.recent.take().Round(time.Millisecond))
			if cfg.Others > 0 {
				line += fmt.Sprintf(" (other topic %s)", other.recent.take().Round(time.Millisecond))
			}
			if res.Watched {
				dropped, queued := w.now()
				line += fmt.Sprintf("; slow: %d dropped, %.0f MiB queued in the kernel", dropped, float64(queued)/(1<<20))
			}
			fmt.Fprintln(cfg.Progress, line)
		})
	}

	// A hub that stops answering publications under the load is a
	// result, not a hang: the publications get their expected time twice
	// over, and a grace.
	pubCtx, pubCancel := context.WithDeadline(ctx, start.Add(cfg.publishBound(fc.Events)))
	fast.publish(pubCtx, 0, start, &posts, &published, &failed)
	pubCancel()
	publishEnd := time.Now()

	// Deliveries may trail, and drops come a dispatch timeout after a
	// subscriber stopped taking bytes: wait for both, within the bound.
	for deadline := publishEnd.Add(cfg.Wait); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		dropped, _ := w.now()
		if complete(readers) && (!res.Watched || dropped == cfg.Slow) {
			break
		}
	}
	end := time.Now()
	stopWatch()
	if res.Watched {
		_ = w.scan()
	}
	stopProgress()
	hubCPU1, _ := hubCPU(cfg.PIDs)
	toolCPU1 := selfCPU()
	if len(cfg.PIDs) > 0 {
		res.HubRSSBytes, _ = hubMemory(cfg.PIDs)
		res.HubCPU = (hubCPU1 - hubCPU0).Seconds()
	}
	res.ToolCPU = (toolCPU1 - toolCPU0).Seconds()
	cancel()
	for _, s := range readers {
		<-s.stopped
	}

	res.Published, res.PublishErrors = int(published.Load()), int(failed.Load())
	res.PublishSeconds = publishEnd.Sub(start).Seconds()
	res.PostLatency = posts.Summary()
	res.RunSeconds = end.Sub(start).Seconds()
	res.FastLatency = fast.delivered.Summary()
	if cfg.Others > 0 {
		s := other.delivered.Summary()
		res.OtherLatency = &s
	}
	res.Delivered, res.Duplicated, res.OutOfOrder, res.Missing, res.Incomplete, res.ReadersLost = tally(readers)
	if drops := w.drops(); len(drops) > 0 {
		res.Dropped = len(drops)
		res.FirstDrop, res.MedianDrop, res.LastDrop = drops[0].Seconds(), drops[len(drops)/2].Seconds(), drops[len(drops)-1].Seconds()
	}
	res.QueuedPeak = w.peak
	return res, nil
}

// complete reports whether every subscriber has received every event.
func complete(subs []*subscriber) bool {
	for _, s := range subs {
		select {
		case <-s.complete:
		default:
			return false
		}
	}
	return true
}

// readProbe reads a slow subscriber's stream until the probe, then stops
// reading: the connection stays open, unread, until the run ends.
func (s *subscriber) readProbe(st *stream, r *run) {
	defer close(s.stopped)
	s.setStream(st, r)
	var ev sse.Event
	for {
		if err := st.dec.Decode(&ev); err != nil {
			return
		}
		if ev.Data == "probe" {
			close(s.probed)
			return
		}
	}
}

// slowWatchEvery is how often the slow subscribers' connections are looked
// up in the kernel's TCP table: the resolution of the drop times, at the
// cost of reading a table of every socket of the machine each time.
const slowWatchEvery = 250 * time.Millisecond

// slowWatch finds out, from the kernel's TCP table, when the hub closes the
// connections of subscribers that read nothing: they cannot see it
// themselves without reading. A connection counts as closed by the hub
// once the hub's end of it has left the established state (it sent a FIN,
// behind the data the subscriber never read, or a reset) or is gone, or the
// subscriber's end has (a reset reached it).
type slowWatch struct {
	start time.Time
	hub   netip.AddrPort         // the hub's address, as the subscribers' connections see it
	index map[netip.AddrPort]int // a slow subscriber's local address → its number

	mu        sync.Mutex
	hubSeen   []bool          // the hub's end was found established once
	droppedAt []time.Duration // when its connection was found closed, from start; 0 while open
	dropped   int
	queued    int64 // bytes the kernel held for the slow connections at the last look
	peak      int64
}

func newSlowWatch(slow []*subscriber, start time.Time) *slowWatch {
	w := &slowWatch{start: start, index: make(map[netip.AddrPort]int, len(slow)),
		hubSeen: make([]bool, len(slow)), droppedAt: make([]time.Duration, len(slow))}
	for i, s := range slow {
		s.mu.Lock()
		st := s.cur
		s.mu.Unlock()
		if st == nil {
			continue
		}
		local, remote := addrPort(st.conn.LocalAddr()), addrPort(st.conn.RemoteAddr())
		w.index[local], w.hub = i, remote
	}
	return w
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

var errNoSlowConns = errors.New("no slow connection to watch")

// scan reads the kernel's table once and notes the connections found closed.
func (w *slowWatch) scan() error {
	if len(w.index) == 0 {
		return errNoSlowConns
	}
	n := len(w.droppedAt)
	hubOpen, clientOpen := make([]bool, n), make([]bool, n)
	var queued int64
	err := readTCPTable(func(e tcpEntry) {
		switch {
		case e.local == w.hub:
			if i, ok := w.index[e.remote]; ok {
				hubOpen[i] = e.state == tcpEstablished
				queued += e.txQueue
			}
		case e.remote == w.hub:
			if i, ok := w.index[e.local]; ok {
				clientOpen[i] = e.state == tcpEstablished
				queued += e.rxQueue
			}
		}
	})
	if err != nil {
		return err
	}
	at := time.Since(w.start)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range n {
		if w.droppedAt[i] != 0 {
			continue
		}
		if hubOpen[i] {
			w.hubSeen[i] = true
		}
		if !clientOpen[i] || (w.hubSeen[i] && !hubOpen[i]) {
			w.droppedAt[i] = max(at, 1)
			w.dropped++
		}
	}
	w.queued = queued
	w.peak = max(w.peak, queued)
	return nil
}

// now returns the connections found closed so far and the bytes queued.
func (w *slowWatch) now() (dropped int, queued int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped, w.queued
}

// drops returns the times the connections were found closed, in order.
func (w *slowWatch) drops() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ds []time.Duration
	for _, d := range w.droppedAt {
		if d != 0 {
			ds = append(ds, d)
		}
	}
	slices.Sort(ds)
	return ds
}

// windowMax is the longest duration recorded since it was last taken. It
// is safe for concurrent use.
type windowMax struct{ v atomic.Int64 }

func (w *windowMax) record(d time.Duration) {
	for {
		m := w.v.Load()
		if int64(d) <= m || w.v.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// take returns the longest duration recorded and starts a new window.
func (w *windowMax) take() time.Duration { return time.Duration(w.v.Swap(0)) }
