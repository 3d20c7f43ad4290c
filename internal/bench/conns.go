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
}

// ConnsResult is what a connection run measured.
type ConnsResult struct {
	Protocol       Protocol       `json:"protocol"`
	Subscribers    int            `json:"subscribers"`
	Topics         int            `json:"topics"`
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
	HubRSSHeld       int64   `json:"hub_rss_held_bytes,omitempty"` // at the end of the hold, before the probe
	HubBytesPerConn  float64 `json:"hub_bytes_per_connection,omitempty"`
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
		HoldSeconds: cfg.Hold.Seconds(), Failures: map[string]int{}}
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
			var st *stream
			st, err := t.subscribe(ctx, h.topic, "", func(string) {
				if time.Since(h.opened) > time.Second {
					h.heartbeats.Add(1)
				}
			})
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
	cancel()
	for _, st := range streams {
		st.close()
	}
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
