package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
)

// FanoutConfig is a fan-out run: subscribers spread over topics, events
// published by concurrent publishers, each event carrying its send time.
type FanoutConfig struct {
	Target
	Subscribers int           // subscribers, spread round-robin over the topics
	Topics      int           // topics
	Events      int           // events to publish, spread round-robin over the topics
	Publishers  int           // concurrent publishers, each waiting for its answer before its next event
	Rate        float64       // events per second in all; 0 publishes as fast as the hub answers
	PIDs        []int         // the hub's processes, to read their CPU time and memory; none skips that
	Drain       time.Duration // how long deliveries may trail the last publication
	Progress    io.Writer     // receives a progress line each second; nil for none
}

func (c *FanoutConfig) check() error {
	switch {
	case c.Subscribers < 0 || c.Topics < 1 || c.Events < 1 || c.Publishers < 1:
		return fmt.Errorf("need topics, events and publishers ≥ 1, and subscribers ≥ 0 (have %d, %d, %d, %d)",
			c.Topics, c.Events, c.Publishers, c.Subscribers)
	case c.Subscribers > 0 && c.Subscribers < c.Topics:
		return fmt.Errorf("%d subscribers cannot cover %d topics", c.Subscribers, c.Topics)
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	return nil
}

// ReconnectConfig is a fan-out run during which subscribers are cut off,
// one every KillEvery, at random, and come back with Last-Event-ID.
type ReconnectConfig struct {
	FanoutConfig
	KillEvery time.Duration
}

// FanoutResult is what a fan-out run measured.
type FanoutResult struct {
	Protocol    Protocol `json:"protocol"`
	Subscribers int      `json:"subscribers"`
	Topics      int      `json:"topics"`
	Events      int      `json:"events"`
	Publishers  int      `json:"publishers"`
	Rate        float64  `json:"rate"`

	Published      int     `json:"published"`       // acknowledged
	PublishErrors  int     `json:"publish_errors"`  // refused or failed
	PublishSeconds float64 `json:"publish_seconds"` // from the first publication to the last answer
	PublishRate    float64 `json:"publish_rate"`    // acknowledged publications per second
	PostLatency    Summary `json:"post_latency"`

	Expected        int64   `json:"expected"`  // deliveries the subscribers should get
	Delivered       int64   `json:"delivered"` // deliveries they got, duplicates included
	DeliverySeconds float64 `json:"delivery_seconds"`
	DeliveryRate    float64 `json:"delivery_rate"`
	DeliveryLatency Summary `json:"delivery_latency"` // from before the POST to the subscriber's read

	Missing    int64 `json:"missing"`
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"` // against the order each publisher published in
	Incomplete int   `json:"incomplete_subscribers"`

	// Reconnect runs only.
	KillEvery         float64  `json:"kill_every_seconds,omitempty"`
	Kills             int64    `json:"kills,omitempty"`
	Reconnects        int64    `json:"reconnects,omitempty"`
	ReconnectFailures int64    `json:"reconnect_failures,omitempty"`
	ReconnectLatency  *Summary `json:"reconnect_latency,omitempty"` // from the cut to the new stream's headers
	CatchUpLatency    *Summary `json:"catch_up_latency,omitempty"`  // from the cut until every event acknowledged before the reconnection has arrived

	HubCPUSeconds      float64 `json:"hub_cpu_seconds,omitempty"`
	HubCPUPerMillion   float64 `json:"hub_cpu_seconds_per_million_deliveries,omitempty"`
	HubRSSBytes        int64   `json:"hub_rss_bytes,omitempty"`
	ToolCPUSeconds     float64 `json:"tool_cpu_seconds"`
	ToolCPUPerMillion  float64 `json:"tool_cpu_seconds_per_million_deliveries"`
	ConnectSeconds     float64 `json:"connect_seconds"`
	SubscriberFailures int     `json:"subscriber_failures"` // connections lost (not cut by a reconnect run)
}

// Fanout runs the scenario.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	return runFanout(ctx, cfg, 0)
}

// Reconnect runs a fan-out while cutting subscribers off.
func Reconnect(ctx context.Context, cfg ReconnectConfig) (*FanoutResult, error) {
	if cfg.KillEvery <= 0 {
		return nil, errors.New("reconnect: the interval between cuts must be positive")
	}
	return runFanout(ctx, cfg.FanoutConfig, cfg.KillEvery)
}

// run is the shared state of a fan-out run.
type run struct {
	cfg       FanoutConfig
	t         *target
	reconnect bool
	acked     []atomic.Int64 // per topic, the events acknowledged

	delivered, reconnects, catchUp Histogram
	// recent, when set, also gets each delivery's latency (slow runs).
	recent *windowMax
	// pad, when set, ends each event's data after a space: the size of
	// events (slow runs).
	pad                            []byte
	kills, reconnectCount, refails atomic.Int64
	// cutsPending counts the cuts whose reconnection has not happened yet.
	cutsPending atomic.Int64
}

func runFanout(ctx context.Context, cfg FanoutConfig, killEvery time.Duration) (*FanoutResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t, err := cfg.Target.resolve()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{cfg: cfg, t: t, reconnect: killEvery > 0, acked: make([]atomic.Int64, cfg.Topics)}
	res := &FanoutResult{Protocol: t.Protocol, Subscribers: cfg.Subscribers, Topics: cfg.Topics, Events: cfg.Events,
		Publishers: cfg.Publishers, Rate: cfg.Rate, KillEvery: killEvery.Seconds()}

	// Subscribe, and make sure each subscription is live with a probe
	// event per topic before anything is measured.
	connectStart := time.Now()
	subs := make([]*subscriber, cfg.Subscribers)
	for i := range subs {
		subs[i] = newSubscriber(i%cfg.Topics, cfg)
	}
	if err := r.connectAll(ctx, subs, func(s *subscriber, st *stream) { s.run(ctx, r, st) }); err != nil {
		return nil, err
	}
	if err := r.probe(ctx, subs); err != nil {
		return nil, err
	}
	res.ConnectSeconds = time.Since(connectStart).Seconds()

	for _, s := range subs {
		res.Expected += int64(s.expected)
	}
	hubCPU0, _ := hubCPU(cfg.PIDs)
	toolCPU0 := selfCPU()
	start := time.Now()
	stopProgress := r.progress(subs, start)
	stopKiller := func() {}
	if killEvery > 0 {
		stopKiller = r.killer(ctx, subs, killEvery)
	}

	var posts Histogram
	var published, failed atomic.Int64
	var wg sync.WaitGroup
	for p := range cfg.Publishers {
		conn := t.newPublisher()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.close()
			r.publish(ctx, conn, p, start, &posts, &published, &failed)
		}()
	}
	wg.Wait()
	publishEnd := time.Now()

	// Deliveries may trail: wait for every subscriber, within the drain.
	drain, stopDrain := context.WithTimeout(ctx, cfg.Drain)
	defer stopDrain()
	for _, s := range subs {
		select {
		case <-s.complete:
		case <-drain.Done(): // closed for good: the other waits end at once
		}
	}
	end := time.Now()
	stopKiller()
	// A cut made just before the end gets its reconnection too, within the
	// drain, so that every cut is measured.
	for wait := time.Now().Add(cfg.Drain); r.cutsPending.Load() > 0 && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(time.Millisecond)
	}
	stopProgress()
	hubCPU1, _ := hubCPU(cfg.PIDs)
	toolCPU1 := selfCPU()
	if len(cfg.PIDs) > 0 {
		res.HubRSSBytes, _ = hubMemory(cfg.PIDs)
	}
	cancel()
	for _, s := range subs {
		<-s.stopped
	}

	res.Published, res.PublishErrors = int(published.Load()), int(failed.Load())
	res.PublishSeconds = publishEnd.Sub(start).Seconds()
	res.PublishRate = float64(res.Published) / res.PublishSeconds
	res.PostLatency = posts.Summary()
	res.Delivered, res.Duplicated, res.OutOfOrder, res.Missing, res.Incomplete, res.SubscriberFailures = tally(subs)
	res.DeliverySeconds = end.Sub(start).Seconds()
	res.DeliveryRate = float64(res.Delivered) / res.DeliverySeconds
	res.DeliveryLatency = r.delivered.Summary()
	if r.reconnect {
		res.Kills, res.Reconnects, res.ReconnectFailures = r.kills.Load(), r.reconnectCount.Load(), r.refails.Load()
		rl, cu := r.reconnects.Summary(), r.catchUp.Summary()
		res.ReconnectLatency, res.CatchUpLatency = &rl, &cu
	}
	perMillion := func(d time.Duration) float64 {
		if res.Delivered == 0 {
			return 0
		}
		return d.Seconds() * 1e6 / float64(res.Delivered)
	}
	if len(cfg.PIDs) > 0 {
		res.HubCPUSeconds = (hubCPU1 - hubCPU0).Seconds()
		res.HubCPUPerMillion = perMillion(hubCPU1 - hubCPU0)
	}
	res.ToolCPUSeconds = (toolCPU1 - toolCPU0).Seconds()
	res.ToolCPUPerMillion = perMillion(toolCPU1 - toolCPU0)
	return res, nil
}

// publish publishes events p, p+n, p+2n… (n publishers), each once the hub
// has answered the one before. An event's data is "p seq sent", sent in
// nanoseconds since the epoch, followed by " " and r.pad if it is set.
func (r *run) publish(ctx context.Context, conn *rawConn, p int, start time.Time,
	posts *Histogram, published, failed *atomic.Int64) {
	cfg := r.cfg
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Publishers) / cfg.Rate)
	}
	var data, body []byte
	for k, seq := 0, p; seq < cfg.Events; k, seq = k+1, seq+cfg.Publishers {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
		}
		sent := time.Now()
		data = strconv.AppendInt(data[:0], int64(p), 10)
		data = append(data, ' ')
		data = strconv.AppendInt(data, int64(seq), 10)
		data = append(data, ' ')
		data = strconv.AppendInt(data, sent.UnixNano(), 10)
		if len(r.pad) > 0 {
			data = append(append(data, ' '), r.pad...)
		}
		topic := seq % cfg.Topics
		var path string
		path, body = r.t.publication(topic, data, body[:0])
		if status, _, err := conn.post(ctx, path, body); err != nil || !r.t.accepted(status) {
			failed.Add(1)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		r.acked[topic].Add(1)
		posts.Record(time.Since(sent))
		published.Add(1)
	}
}

// probe publishes a probe event on each topic, again until every
// subscriber has seen one: from then on, every subscription is live.
func (r *run) probe(ctx context.Context, subs []*subscriber) error {
	conn := r.t.newPublisher()
	defer conn.close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for t := range r.cfg.Topics {
			path, body := r.t.publication(t, []byte("probe"), nil)
			status, resp, err := conn.post(ctx, path, body)
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			if !r.t.accepted(status) {
				return fmt.Errorf("probe: the hub answered %d: %s", status, resp)
			}
		}
		waiting := 0
		wait, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		for _, s := range subs {
			select {
			case <-s.probed:
			case <-wait.Done():
				waiting++
			}
		}
		stop()
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe: %d subscribers did not receive it in a minute", waiting)
		}
	}
}

// progress prints a line a second until stopped.
func (r *run) progress(subs []*subscriber, start time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	return ticker(time.Second, func() {
		var got int64
		for _, s := range subs {
			got += s.delivered.Load()
		}
		line := fmt.Sprintf("  %5.1fs  delivered %d", time.Since(start).Seconds(), got)
		if r.reconnect {
			line += fmt.Sprintf(", %d cut, %d reconnected", r.kills.Load(), r.reconnectCount.Load())
		}
		fmt.Fprintln(r.cfg.Progress, line)
	})
}

// ticker calls f every d until stopped.
func ticker(d time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// killer cuts a random subscriber's connection every d.
func (r *run) killer(ctx context.Context, subs []*subscriber, d time.Duration) (stop func()) {
	return ticker(d, func() {
		if ctx.Err() != nil || len(subs) == 0 {
			return
		}
		r.cutsPending.Add(1) // before the cut, which the reconnection may follow at once
		if subs[rand.IntN(len(subs))].kill() {
			r.kills.Add(1)
		} else {
			r.cutsPending.Add(-1)
		}
	})
}

// connectAll opens the subscriptions, a bounded number at a time, and
// starts reading each one in a goroutine that runs start.
func (r *run) connectAll(ctx context.Context, subs []*subscriber, start func(*subscriber, *stream)) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(subs))
	for _, s := range subs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			st, err := r.t.subscribe(ctx, s.topic, "", nil)
			if err != nil {
				close(s.stopped)
				errs <- err
				return
			}
			go start(s, st)
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	select {
	case err := <-errs:
		return fmt.Errorf("subscribe: %w", err)
	default:
		return nil
	}
}

// subscriber is one subscription and what it has received.
type subscriber struct {
	topic    int
	topics   int      // topics in the run
	expected int      // events of its topic
	seen     []uint64 // a bit per event of its topic
	last     []int    // per publisher, the highest sequence number received
	lastID   string   // the last event ID received

	// A reconnect run: the catch-up under way, if catchTarget > 0.
	catchTarget int64
	catchSince  time.Time

	delivered, unique, dups, ooo, drops atomic.Int64
	probed                              chan struct{}
	complete                            chan struct{}
	stopped                             chan struct{}

	mu       sync.Mutex
	cur      *stream   // the open stream, for kill
	killedAt time.Time // when kill cut the stream
}

func newSubscriber(topic int, cfg FanoutConfig) *subscriber {
	n := 0
	if topic < cfg.Events {
		n = (cfg.Events-1-topic)/cfg.Topics + 1
	}
	s := &subscriber{topic: topic, topics: cfg.Topics, expected: n, seen: make([]uint64, (n+63)/64), last: make([]int, cfg.Publishers),
		probed: make(chan struct{}), complete: make(chan struct{}), stopped: make(chan struct{})}
	for i := range s.last {
		s.last[i] = -1
	}
	if n == 0 {
		close(s.complete)
	}
	return s
}

// kill cuts the subscriber's connection, if it has one open.
func (s *subscriber) kill() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return false
	}
	s.killedAt = time.Now()
	s.cur.close()
	s.cur = nil
	return true
}

func (s *subscriber) setStream(st *stream) {
	s.mu.Lock()
	s.cur = st
	s.mu.Unlock()
}

// cut returns when kill cut the current stream, or the zero time.
func (s *subscriber) cut() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.killedAt
	s.killedAt, s.cur = time.Time{}, nil
	return at
}

// run reads the stream until the run ends; in a reconnect run, it comes
// back with Last-Event-ID whenever the stream is cut.
func (s *subscriber) run(ctx context.Context, r *run, st *stream) {
	defer close(s.stopped)
	for {
		s.setStream(st)
		stop := context.AfterFunc(ctx, st.close)
		s.read(st, r)
		stop()
		st.close()
		if ctx.Err() != nil {
			return
		}
		since := s.cut()
		killed := !since.IsZero()
		if !killed {
			s.drops.Add(1) // not cut by the run: the hub dropped it
			if !r.reconnect {
				return
			}
			since = time.Now()
		}
		for {
			var err error
			st, err = r.t.subscribe(ctx, s.topic, s.lastID, nil)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			r.refails.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		r.reconnectCount.Add(1)
		r.reconnects.Record(time.Since(since))
		if killed {
			r.cutsPending.Add(-1)
		}
		s.catchSince, s.catchTarget = since, r.acked[s.topic].Load()
		s.caughtUp(&r.catchUp)
	}
}

// read consumes a stream until it ends.
func (s *subscriber) read(st *stream, r *run) {
	var ev sse.Event
	for {
		if err := st.dec.Decode(&ev); err != nil {
			return
		}
		now := time.Now()
		s.lastID = ev.ID
		if ev.Data == "probe" {
			select {
			case <-s.probed:
			default:
				close(s.probed)
			}
			continue
		}
		p, seq, sent, ok := parseData(ev.Data)
		if !ok {
			continue
		}
		s.delivered.Add(1)
		r.delivered.Record(now.Sub(time.Unix(0, sent)))
		if r.recent != nil {
			r.recent.record(now.Sub(time.Unix(0, sent)))
		}
		s.record(p, seq)
		if s.catchTarget > 0 {
			s.caughtUp(&r.catchUp)
		}
	}
}

// caughtUp records the end of a catch-up, when it has ended.
func (s *subscriber) caughtUp(h *Histogram) {
	if s.catchTarget > 0 && s.unique.Load() >= s.catchTarget {
		h.Record(time.Since(s.catchSince))
		s.catchTarget = 0
	}
}

// record notes event seq from publisher p. The events of the subscriber's
// topic are seq = topic, topic+topics, topic+2·topics…: bit seq/topics.
func (s *subscriber) record(p, seq int) {
	if p < 0 || p >= len(s.last) || seq < 0 || seq%s.topics != s.topic {
		return
	}
	k := seq / s.topics
	if k >= s.expected {
		return
	}
	if s.seen[k/64]&(1<<(k%64)) != 0 {
		s.dups.Add(1)
		return
	}
	s.seen[k/64] |= 1 << (k % 64)
	if seq < s.last[p] {
		s.ooo.Add(1)
	}
	s.last[p] = max(s.last[p], seq)
	if s.unique.Add(1) == int64(s.expected) {
		close(s.complete)
	}
}

// tally sums what the subscribers received: deliveries (duplicates
// included), duplicates, events out of order and missing, the subscribers
// that missed any, and the connections the hub dropped.
func tally(subs []*subscriber) (delivered, dups, ooo, missing int64, incomplete, dropped int) {
	for _, s := range subs {
		delivered += s.delivered.Load()
		dups += s.dups.Load()
		ooo += s.ooo.Load()
		missing += int64(s.expected) - s.unique.Load()
		if s.unique.Load() < int64(s.expected) {
			incomplete++
		}
		dropped += int(s.drops.Load())
	}
	return
}

// parseData reads "publisher sequence sent", which padding may follow.
func parseData(data string) (p, seq int, sent int64, ok bool) {
	f := strings.SplitN(data, " ", 4)
	if len(f) < 3 {
		return 0, 0, 0, false
	}
	var e1, e2, e3 error
	p, e1 = strconv.Atoi(f[0])
	seq, e2 = strconv.Atoi(f[1])
	sent, e3 = strconv.ParseInt(f[2], 10, 64)
	return p, seq, sent, e1 == nil && e2 == nil && e3 == nil
}
