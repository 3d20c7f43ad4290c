package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/sse"
)

// ConnsConfig is a connection run: subscribers opened at a given rate and
// held, each of which must then receive a probe event.
type ConnsConfig struct {
	Target
	Subscribers int           // connections to open
	Topics      int           // topics they spread over, round-robin
	Rate        float64       // connections opened per second; 0 for as fast as they are answered
	Hold        time.Duration // how long to hold them once opened, idle but for heartbeats
	Probe       time.Duration // how long every connection has to receive the probe
	PIDs        []int         // the hub's processes, to read their memory and CPU time; none skips that
	Progress    io.Writer     // receives a progress line each second; nil for none

	// HTTP2 opens the subscriptions as HTTP/2 streams with prior
	// knowledge (h2c), StreamsPerConn on each connection (0 for 1, at most
	// MaxStreamsPerConn); the hub must accept h2c (herald serve -h2c).
	HTTP2          bool
	StreamsPerConn int
}

// ConnsResult is what a connection run measured.
type ConnsResult struct {
	Protocol       Protocol       `json:"protocol"`
	Subscribers    int            `json:"subscribers"`
	Topics         int            `json:"topics"`
	HTTP2          bool           `json:"http2,omitempty"`
	StreamsPerConn int            `json:"streams_per_connection,omitempty"` // over HTTP/2
	Connections    int            `json:"connections"`                      // the TCP connections the subscribers held
	Rate           float64        `json:"rate"`
	HoldSeconds    float64        `json:"hold_seconds"`
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	Failures       map[string]int `json:"failures,omitempty"` // by kind
	ConnectSeconds float64        `json:"connect_seconds"`
	ConnectLatency Summary        `json:"connect_latency"` // from the dial to the response's headers
	Dropped        int            `json:"dropped"`         // connections the hub closed while held
	Heartbeats     int64          `json:"heartbeats"`      // comments received after the first second of each connection
	Heartbeating   int            `json:"heartbeating"`    // connections that received one
	ProbeReceived  int            `json:"probe_received"`
	ProbeMissing   int            `json:"probe_missing"` // held connections that did not receive it
	ProbeLatency   Summary        `json:"probe_latency"` // from the publication to each reception

	HubRSSBefore     int64   `json:"hub_rss_before_bytes,omitempty"`
	HubRSSHeld       int64   `json:"hub_rss_held_bytes,omitempty"`       // at the end of the hold, before the probe
	HubBytesPerConn  float64 `json:"hub_bytes_per_connection,omitempty"` // per subscriber: per HTTP/2 stream
	HubBytesPerTCP   float64 `json:"hub_bytes_per_tcp_connection,omitempty"`
	HubCPUSeconds    float64 `json:"hub_cpu_seconds,omitempty"`
	ToolCPUSeconds   float64 `json:"tool_cpu_seconds"`
	ToolRSSHeldBytes int64   `json:"tool_rss_held_bytes"`
}

func (c *ConnsConfig) check() error {
	if c.Subscribers < 1 {
		return errors.New("conns: at least one subscriber")
	}
	if c.Topics < 1 {
		c.Topics = 1
	}
	if c.Probe <= 0 {
		c.Probe = 30 * time.Second
	}
	if c.StreamsPerConn < 1 {
		c.StreamsPerConn = 1
	}
	if c.HTTP2 && c.StreamsPerConn > MaxStreamsPerConn {
		return fmt.Errorf("conns: at most %d streams per HTTP/2 connection, the server's default limit", MaxStreamsPerConn)
	}
	return nil
}

// held is one held connection.
type held struct {
	topic      int
	opened     time.Time
	heartbeats atomic.Int64
	probedAt   atomic.Int64 // unix nanoseconds; 0 until the probe came
	dropped    atomic.Bool
	done       chan struct{}
}

// Conns runs the scenario.
func Conns(ctx context.Context, cfg ConnsConfig) (*ConnsResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	t, err := cfg.Target.resolve()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &ConnsResult{Protocol: t.Protocol, Subscribers: cfg.Subscribers, Topics: cfg.Topics, Rate: cfg.Rate,
		HoldSeconds: cfg.Hold.Seconds(), Failures: map[string]int{}, HTTP2: cfg.HTTP2}
	// Over HTTP/2, subscriber i is a stream on connection i/StreamsPerConn.
	var h2conns []*h2Conn
	var h2used []atomic.Bool
	if cfg.HTTP2 {
		res.StreamsPerConn = cfg.StreamsPerConn
		h2conns = make([]*h2Conn, (cfg.Subscribers+cfg.StreamsPerConn-1)/cfg.StreamsPerConn)
		h2used = make([]atomic.Bool, len(h2conns))
		for i := range h2conns {
			h2conns[i] = t.newH2Conn()
		}
		defer func() {
			for _, c := range h2conns {
				c.close()
			}
		}()
	}
	hubCPU0, _ := hubCPU(cfg.PIDs)
	toolCPU0 := selfCPU()
	if len(cfg.PIDs) > 0 {
		res.HubRSSBefore, _ = hubMemory(cfg.PIDs)
	}

	var (
		mu      sync.Mutex
		conns   []*held
		streams []*stream
		connect Histogram
		wg      sync.WaitGroup
	)
	// Every connection is closed when the run ends, however it ends: a
	// reader that had its probe no longer watches ctx, and a connection
	// left open would hold its handler, and a test server's Close, forever.
	defer func() {
		mu.Lock()
		for _, st := range streams {
			st.close()
		}
		mu.Unlock()
	}()
	var opened, failed atomic.Int64
	stopProgress := func() {}
	phase := atomic.Value{}
	phase.Store("connecting")
	if cfg.Progress != nil {
		start := time.Now()
		stopProgress = ticker(time.Second, func() {
			var hb int64
			mu.Lock()
			for _, h := range conns {
				hb += h.heartbeats.Load()
			}
			mu.Unlock()
			fmt.Fprintf(cfg.Progress, "  %5.1fs  %s: %d open, %d failed, %d heartbeats\n",
				time.Since(start).Seconds(), phase.Load(), opened.Load(), failed.Load(), hb)
		})
	}
	defer stopProgress()

	// Open the connections at the rate, a bounded number at a time.
	start := time.Now()
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	sem := make(chan struct{}, 256)
	for i := range cfg.Subscribers {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h := &held{topic: i % cfg.Topics, done: make(chan struct{})}
			t0 := time.Now()
			onComment := func(string) {
				if time.Since(h.opened) > time.Second {
					h.heartbeats.Add(1)
				}
			}
			var st *stream
			var err error
			if cfg.HTTP2 {
				g := i / cfg.StreamsPerConn
				if st, err = t.subscribeH2(ctx, h2conns[g], h.topic, onComment); err == nil {
					h2used[g].Store(true)
				}
			} else {
				st, err = t.subscribe(ctx, h.topic, "", onComment)
			}
			if err != nil {
				failed.Add(1)
				mu.Lock()
				res.Failures[failureKind(err)]++
				mu.Unlock()
				return
			}
			h.opened = time.Now()
			connect.Record(h.opened.Sub(t0))
			opened.Add(1)
			mu.Lock()
			conns = append(conns, h)
			streams = append(streams, st)
			mu.Unlock()
			go h.read(ctx, st)
		}()
	}
	wg.Wait()
	res.ConnectSeconds = time.Since(start).Seconds()
	res.Connected, res.Failed = int(opened.Load()), int(failed.Load())
	res.Connections = res.Connected
	if cfg.HTTP2 {
		res.Connections = 0
		for i := range h2used {
			if h2used[i].Load() {
				res.Connections++
			}
		}
	}
	res.ConnectLatency = connect.Summary()

	// Hold them, then measure the memory they cost.
	phase.Store("holding")
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(cfg.PIDs) > 0 {
		res.HubRSSHeld, _ = hubMemory(cfg.PIDs)
		if res.Connected > 0 {
			res.HubBytesPerConn = float64(res.HubRSSHeld-res.HubRSSBefore) / float64(res.Connected)
			res.HubBytesPerTCP = float64(res.HubRSSHeld-res.HubRSSBefore) / float64(res.Connections)
		}
	}
	res.ToolRSSHeldBytes, _ = procRSS(os.Getpid())

	// The probe: one publication per topic, which every connection still
	// open must receive.
	phase.Store("probing")
	pub := t.newPublisher()
	sent := time.Now()
	for topic := range min(cfg.Topics, cfg.Subscribers) {
		path, body := t.publication(topic, []byte("probe"), nil)
		status, resp, err := pub.post(ctx, path, body)
		if err != nil || !t.accepted(status) {
			pub.close()
			return nil, fmt.Errorf("probe: %d %s %v", status, resp, err)
		}
	}
	pub.close()
	var probe Histogram
	deadline, stopDeadline := context.WithTimeout(ctx, cfg.Probe)
	defer stopDeadline()
	for _, h := range conns {
		select {
		case <-h.done:
		case <-deadline.Done(): // closed for good: the other waits end at once
		}
	}
	for _, h := range conns {
		switch at := h.probedAt.Load(); {
		case at != 0:
			res.ProbeReceived++
			probe.Record(time.Unix(0, at).Sub(sent))
		case h.dropped.Load():
			res.Dropped++
		default:
			res.ProbeMissing++
		}
		if n := h.heartbeats.Load(); n > 0 {
			res.Heartbeats += n
			res.Heartbeating++
		}
	}
	res.ProbeLatency = probe.Summary()
	hubCPU1, _ := hubCPU(cfg.PIDs)
	if len(cfg.PIDs) > 0 {
		res.HubCPUSeconds = (hubCPU1 - hubCPU0).Seconds()
	}
	res.ToolCPUSeconds = (selfCPU() - toolCPU0).Seconds()
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res, nil
}

// read waits for the probe on a held connection.
func (h *held) read(ctx context.Context, st *stream) {
	defer close(h.done)
	stop := context.AfterFunc(ctx, st.close)
	defer stop()
	var ev sse.Event
	for {
		if err := st.dec.Decode(&ev); err != nil {
			if ctx.Err() == nil && h.probedAt.Load() == 0 {
				h.dropped.Store(true)
			}
			return
		}
		if ev.Data == "probe" {
			h.probedAt.Store(time.Now().UnixNano())
			return // the connection is held until the run ends
		}
	}
}

// FailureKinds returns the kinds of failure in a stable order.
func (r *ConnsResult) FailureKinds() []string { return slices.Sorted(maps.Keys(r.Failures)) }
