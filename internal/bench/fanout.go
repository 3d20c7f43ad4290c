package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
)

// FanoutConfig is a fan-out run: subscribers spread over topics, events
// published by concurrent publishers, each event carrying its send time.
//
// Against the n nodes of a cluster (Target.Nodes), the subscribers of each
// topic spread over the nodes in turn (subscriber i, of topic i mod topics,
// subscribes to node ⌊i/topics⌋ mod n), and publisher p publishes to node
// p mod n, so that every event reaches most of its subscribers through
// another node than the one it was published to. The probes that make sure
// every subscription is live before the run go through the first node. The
// checks are the same as on one hub: every subscriber gets every event of
// its topic once, in the order each publisher published them.
type FanoutConfig struct {
	Target
	Subscribers int     // subscribers, spread round-robin over the topics (and the nodes)
	Topics      int     // topics
	Events      int     // events to publish, spread round-robin over the topics
	Publishers  int     // concurrent publishers, each waiting for its answer before its next event
	Rate        float64 // events per second in all; 0 publishes as fast as the hub answers
	// PIDs are the hub's processes (all the nodes' in a cluster), to read
	// the CPU time and memory they use, in all; none skips that.
	PIDs []int
	// RedisPID, when positive, is the process of the Redis server that the
	// nodes of a cluster share, whose CPU time is reported apart from the
	// hub's.
	RedisPID int
	Drain    time.Duration // how long deliveries may trail the last publication
	Progress io.Writer     // receives a progress line each second; nil for none
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
// one every KillEvery, at random, or all those of one node at once
// (CutNode), and come back with Last-Event-ID.
//
// A subscriber whose stream ends, however it ends, resumes on the next
// node of the cluster (node i+1 mod n after node i), passing over a node
// that has been cut, and tries the one after that when a node refuses it:
// every resumption so crosses nodes, which is what a cluster must get
// right. With one node, it resumes where it was.
type ReconnectConfig struct {
	FanoutConfig
	KillEvery time.Duration // between two random cuts; 0 for none, with a CutNode
	CutNode   *NodeCut      // a node cut off during the run; nil for none
}

// NodeCut is the loss of one node of a cluster during a reconnect run. At
// the moment At after the first publication, the publishers that publish
// to the node move to the next node (the cut waits for their publications
// in flight, so that no publication is lost with the node: what is
// measured is the subscribers' resumption), the node's process is killed
// with SIGKILL if PID is set, and every subscriber connected to the node
// has its connection closed. Each resumes on the next live node with
// Last-Event-ID. Without a PID the node keeps running: the cut is then
// the tool's alone, what a node that a load balancer gave up on looks like
// to its clients. A cut planned after the last delivery still comes: the
// run waits for it.
type NodeCut struct {
	Node int           // the index of the node in Target.Nodes
	At   time.Duration // after the first publication
	PID  int           // the node's process, killed with SIGKILL; 0 for none
}

// NodeCutResult is what a node cut measured. The events lost and
// duplicated are those of the whole run (FanoutResult.Missing and
// Duplicated).
type NodeCutResult struct {
	Node          int     `json:"node"`
	AtSeconds     float64 `json:"at_seconds"` // when the node was cut, from the first publication
	Killed        bool    `json:"killed"`     // its process was killed
	KillError     string  `json:"kill_error,omitempty"`
	Subscribers   int64   `json:"subscribers"`
	Resumed       int64   `json:"resumed"`        // on another node
	ResumeLatency Summary `json:"resume_latency"` // from the cut to the new stream's headers
	// CatchUpLatency runs from the cut until every event acknowledged
	// before the resumption has arrived.
	CatchUpLatency Summary `json:"catch_up_latency"`
}

// FanoutResult is what a fan-out run measured.
type FanoutResult struct {
	Protocol    Protocol `json:"protocol"`
	Nodes       int      `json:"nodes"`
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
	// NodeCut is set when the run cut a node off.
	NodeCut *NodeCutResult `json:"node_cut,omitempty"`

	HubCPUSeconds      float64 `json:"hub_cpu_seconds,omitempty"`
	HubCPUPerMillion   float64 `json:"hub_cpu_seconds_per_million_deliveries,omitempty"`
	HubRSSBytes        int64   `json:"hub_rss_bytes,omitempty"` // of the processes still running at the end
	RedisPID           int     `json:"redis_pid,omitempty"`     // the Redis server whose CPU time follows
	RedisCPUSeconds    float64 `json:"redis_cpu_seconds,omitempty"`
	RedisCPUPerMillion float64 `json:"redis_cpu_seconds_per_million_deliveries,omitempty"`
	ToolCPUSeconds     float64 `json:"tool_cpu_seconds"`
	ToolCPUPerMillion  float64 `json:"tool_cpu_seconds_per_million_deliveries"`
	ConnectSeconds     float64 `json:"connect_seconds"`
	SubscriberFailures int     `json:"subscriber_failures"` // connections lost (not cut by a reconnect run)
}

// Fanout runs the scenario.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	return runFanout(ctx, cfg, 0, nil)
}

// Reconnect runs a fan-out while cutting subscribers off.
func Reconnect(ctx context.Context, cfg ReconnectConfig) (*FanoutResult, error) {
	if cfg.KillEvery < 0 || cfg.KillEvery == 0 && cfg.CutNode == nil {
		return nil, errors.New("reconnect: the interval between cuts must be positive, or a node must be cut")
	}
	return runFanout(ctx, cfg.FanoutConfig, cfg.KillEvery, cfg.CutNode)
}

// node is one hub of a run, and how far a node cut has taken it out.
type node struct {
	*target
	// draining turns the publishers away from the node, and posts, which
	// each publication to the node holds for reading, lets the cut wait
	// for those in flight.
	draining atomic.Bool
	posts    sync.RWMutex
	// down turns the subscribers away from the node.
	down atomic.Bool
}

// run is the shared state of a fan-out run.
type run struct {
	cfg       FanoutConfig
	nodes     []*node // the first also carries the probes
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

	// A node cut: when it came (set before the node is down), the
	// subscribers it cut off and those of them that resumed elsewhere.
	cutAt                       time.Time
	nodeResumes, nodeCatchUp    Histogram
	nodeCutSubs, nodeCutResumed atomic.Int64
	killedPID                   int           // the node's process, once killed
	killErr                     string        // why it could not be killed
	killedCPU                   time.Duration // its CPU time just before
}

// newRun returns a run over the targets.
func newRun(cfg FanoutConfig, targets []*target, topics int) *run {
	r := &run{cfg: cfg, acked: make([]atomic.Int64, topics)}
	for _, t := range targets {
		r.nodes = append(r.nodes, &node{target: t})
	}
	return r
}

// liveAfter returns the first node after node i, in turn, that is not
// down; i itself when every other one is.
func (r *run) liveAfter(i int) int {
	for k := 1; k <= len(r.nodes); k++ {
		if j := (i + k) % len(r.nodes); !r.nodes[j].down.Load() {
			return j
		}
	}
	return i
}

func runFanout(ctx context.Context, cfg FanoutConfig, killEvery time.Duration, cut *NodeCut) (*FanoutResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	targets, err := cfg.Target.resolveNodes()
	if err != nil {
		return nil, err
	}
	if cut != nil && (len(targets) < 2 || cut.Node < 0 || cut.Node >= len(targets) || cut.At < 0) {
		return nil, fmt.Errorf("reconnect: node %d cut after %v: want a node of %d, at least two, and a moment from the start on",
			cut.Node, cut.At, len(targets))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newRun(cfg, targets, cfg.Topics)
	r.reconnect = killEvery > 0 || cut != nil
	res := &FanoutResult{Protocol: targets[0].Protocol, Nodes: len(targets), Subscribers: cfg.Subscribers, Topics: cfg.Topics,
		Events: cfg.Events, Publishers: cfg.Publishers, Rate: cfg.Rate, KillEvery: killEvery.Seconds()}

	// Subscribe, and make sure each subscription is live with a probe
	// event per topic before anything is measured.
	connectStart := time.Now()
	subs := make([]*subscriber, cfg.Subscribers)
	for i := range subs {
		subs[i] = newSubscriber(i%cfg.Topics, cfg)
		subs[i].node = i / cfg.Topics % len(r.nodes)
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
	var redisCPU0 time.Duration
	if cfg.RedisPID > 0 {
		redisCPU0, _ = ProcCPU(cfg.RedisPID)
	}
	toolCPU0 := selfCPU()
	start := time.Now()
	stopProgress := r.progress(subs, start)
	stopKiller := func() {}
	if killEvery > 0 {
		stopKiller = r.killer(ctx, subs, killEvery)
	}
	cutDone := make(chan struct{})
	if cut != nil {
		go func() {
			defer close(cutDone)
			select {
			case <-time.After(time.Until(start.Add(cut.At))):
				r.cutNode(subs, *cut)
			case <-ctx.Done():
			}
		}()
	} else {
		close(cutDone)
	}

	var posts Histogram
	var published, failed atomic.Int64
	var wg sync.WaitGroup
	for p := range cfg.Publishers {
		wg.Go(func() { r.publish(ctx, p, start, &posts, &published, &failed) })
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
	// A node cut planned after the deliveries' end still comes, and is
	// measured; the run's end stops one still to come.
	<-cutDone
	// A cut made just before the end gets its reconnection too, within the
	// drain, so that every cut is measured.
	for wait := time.Now().Add(cfg.Drain); (r.cutsPending.Load() > 0 || r.nodeCutResumed.Load() < r.nodeCutSubs.Load()) &&
		time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(time.Millisecond)
	}
	stopProgress()
	// A killed node's process counts with the CPU time it had used when
	// it was killed, and no longer for memory.
	alive := slices.DeleteFunc(slices.Clone(cfg.PIDs), func(pid int) bool { return pid == r.killedPID })
	hubCPU1, _ := hubCPU(alive)
	if len(alive) < len(cfg.PIDs) {
		hubCPU1 += r.killedCPU
	}
	var redisCPU1 time.Duration
	if cfg.RedisPID > 0 {
		redisCPU1, _ = ProcCPU(cfg.RedisPID)
	}
	toolCPU1 := selfCPU()
	if len(alive) > 0 {
		res.HubRSSBytes, _ = hubMemory(alive)
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
	if cut != nil {
		res.NodeCut = &NodeCutResult{Node: cut.Node, Killed: r.killedPID != 0, KillError: r.killErr, Subscribers: r.nodeCutSubs.Load(),
			Resumed: r.nodeCutResumed.Load(), ResumeLatency: r.nodeResumes.Summary(), CatchUpLatency: r.nodeCatchUp.Summary()}
		if !r.cutAt.IsZero() {
			res.NodeCut.AtSeconds = r.cutAt.Sub(start).Seconds()
		}
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
	if cfg.RedisPID > 0 {
		res.RedisPID = cfg.RedisPID
		res.RedisCPUSeconds = (redisCPU1 - redisCPU0).Seconds()
		res.RedisCPUPerMillion = perMillion(redisCPU1 - redisCPU0)
	}
	res.ToolCPUSeconds = (toolCPU1 - toolCPU0).Seconds()
	res.ToolCPUPerMillion = perMillion(toolCPU1 - toolCPU0)
	return res, nil
}

// publish publishes events p, p+n, p+2n… (n publishers), each once the hub
// has answered the one before. An event's data is "p seq sent", sent in
// nanoseconds since the epoch, followed by " " and r.pad if it is set.
// Publisher p publishes to node p mod n, or, once a cut has turned
// publishers away from that node, to the next live one.
func (r *run) publish(ctx context.Context, p int, start time.Time,
	posts *Histogram, published, failed *atomic.Int64) {
	cfg := r.cfg
	conns := make([]*rawConn, len(r.nodes)) // one per node, opened when first used
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	home := p % len(r.nodes)
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
		i := home
		n := r.nodes[i]
		n.posts.RLock() // a cut of the node waits for this publication
		if n.draining.Load() {
			// Checked under posts: a cut that began while this waited for
			// it is seen.
			n.posts.RUnlock()
			i = r.liveAfter(home)
			n = r.nodes[i]
			n.posts.RLock()
		}
		if conns[i] == nil {
			conns[i] = n.newPublisher()
		}
		var path string
		path, body = n.publication(topic, data, body[:0])
		status, _, err := conns[i].post(ctx, path, body)
		n.posts.RUnlock()
		if err != nil || !n.accepted(status) {
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
	n := r.nodes[0]
	conn := n.newPublisher()
	defer conn.close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for t := range r.cfg.Topics {
			path, body := n.publication(t, []byte("probe"), nil)
			status, resp, err := conn.post(ctx, path, body)
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			if !n.accepted(status) {
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
		if n := r.nodeCutSubs.Load(); n > 0 {
			line += fmt.Sprintf("; node cut: %d of %d resumed elsewhere", r.nodeCutResumed.Load(), n)
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

// cutNode cuts the node off, as NodeCut says: publishers first, then the
// process, then the subscribers.
func (r *run) cutNode(subs []*subscriber, c NodeCut) {
	n := r.nodes[c.Node]
	n.draining.Store(true)
	n.posts.Lock() // once the publications in flight to it are answered
	n.posts.Unlock()
	var cpu time.Duration
	var err error
	if c.PID > 0 {
		cpu, err = ProcCPU(c.PID)
	}
	r.cutAt = time.Now()
	n.down.Store(true)
	if c.PID > 0 {
		if err == nil {
			err = killProcess(c.PID)
		}
		if err != nil {
			r.killErr = fmt.Sprintf("killing process %d: %v", c.PID, err)
		} else {
			r.killedPID, r.killedCPU = c.PID, cpu
		}
	}
	for _, s := range subs {
		s.cutFromNode(r, c.Node)
	}
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
			st, err := r.nodes[s.node].subscribe(ctx, s.topic, "", nil)
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
	node     int      // the node it is subscribed to, or about to be; under mu once it runs
	topics   int      // topics in the run
	expected int      // events of its topic
	seen     []uint64 // a bit per event of its topic
	last     []int    // per publisher, the highest sequence number received
	lastID   string   // the last event ID received

	// A reconnect run: the catch-up under way, if catchTarget > 0, and
	// the histogram that gets its end.
	catchTarget int64
	catchSince  time.Time
	catchHist   *Histogram

	delivered, unique, dups, ooo, drops atomic.Int64
	probed                              chan struct{}
	complete                            chan struct{}
	stopped                             chan struct{}

	mu       sync.Mutex
	cur      *stream   // the open stream, for kill
	killedAt time.Time // when kill cut the stream
	nodeCut  bool      // a node cut took its node away, and it has not resumed elsewhere yet
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

// setStream makes st the subscriber's open stream, unless a cut has taken
// the stream's node down meanwhile: it then reports false.
func (s *subscriber) setStream(st *stream, r *run) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onDownNode(r) {
		return false
	}
	s.cur = st
	return true
}

// onDownNode reports whether the subscriber's node has been cut, and
// counts the subscriber among those the cut took, the first time. The
// subscriber that notices the cut first (its stream ended, or it was
// about to use the node) and the cut itself both call it: whichever comes
// first counts. The caller holds s.mu.
func (s *subscriber) onDownNode(r *run) bool {
	if !r.nodes[s.node].down.Load() {
		return false
	}
	if !s.nodeCut {
		s.nodeCut = true
		r.nodeCutSubs.Add(1)
	}
	return true
}

// cutFromNode closes the subscriber's stream if it is on node i, which a
// cut has taken down.
func (s *subscriber) cutFromNode(r *run, i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node != i || !s.onDownNode(r) {
		return
	}
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
}

// moveOn picks the node of the subscriber's next attempt to resume: the
// next live one after its own.
func (s *subscriber) moveOn(r *run) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onDownNode(r)
	s.node = r.liveAfter(s.node)
	return s.node
}

// resumed reports whether the subscriber was one that a node cut took,
// now resumed, and forgets it.
func (s *subscriber) resumed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.nodeCut
	s.nodeCut = false
	return was
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
// back with Last-Event-ID whenever the stream ends, on the next node.
func (s *subscriber) run(ctx context.Context, r *run, st *stream) {
	defer close(s.stopped)
	open := s.setStream(st, r)
	for {
		if open {
			stop := context.AfterFunc(ctx, st.close)
			s.read(st, r)
			stop()
		}
		st.close()
		if ctx.Err() != nil {
			return
		}
		since := s.cut()
		killed := !since.IsZero()
		s.mu.Lock()
		nodeCut := s.onDownNode(r)
		s.mu.Unlock()
		if !killed && !nodeCut {
			s.drops.Add(1) // not cut by the run: the hub dropped it
			if !r.reconnect {
				return
			}
			since = time.Now()
		}
		for {
			var err error
			st, err = r.nodes[s.moveOn(r)].subscribe(ctx, s.topic, s.lastID, nil)
			if err == nil {
				if s.setStream(st, r) {
					break
				}
				st.close() // its node was cut meanwhile
				continue
			}
			if ctx.Err() != nil {
				return
			}
			r.refails.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		open = true
		if killed {
			r.cutsPending.Add(-1)
		}
		// A subscriber that a node cut took counts as the cut's, however
		// else its stream ended.
		s.catchHist = &r.catchUp
		if s.resumed() {
			since, s.catchHist = r.cutAt, &r.nodeCatchUp
			r.nodeResumes.Record(time.Since(since))
			r.nodeCutResumed.Add(1)
		} else {
			r.reconnectCount.Add(1)
			r.reconnects.Record(time.Since(since))
		}
		s.catchSince, s.catchTarget = since, r.acked[s.topic].Load()
		s.caughtUp()
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
			s.caughtUp()
		}
	}
}

// caughtUp records the end of a catch-up, when it has ended.
func (s *subscriber) caughtUp() {
	if s.catchTarget > 0 && s.unique.Load() >= s.catchTarget {
		s.catchHist.Record(time.Since(s.catchSince))
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
