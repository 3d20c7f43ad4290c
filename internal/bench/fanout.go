package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	URL             string        // the hub, e.g. http://localhost:8080/.well-known/mercure
	Subscribers     int           // subscribers, spread round-robin over the topics
	Topics          int           // topics
	Events          int           // events to publish, spread round-robin over the topics
	Publishers      int           // concurrent publishers, each waiting for its answer before its next event
	Rate            float64       // events per second in all; 0 publishes as fast as the hub answers
	PublisherToken  string        // sent with each publication
	SubscriberToken string        // sent with each subscription; empty for anonymous
	TopicPrefix     string        // topics are TopicPrefix followed by a number
	PID             int           // the hub's process, to read its CPU time and memory; 0 skips that
	Drain           time.Duration // how long deliveries may trail the last publication
	Progress        io.Writer     // receives a progress line each second; nil for none
}

func (c *FanoutConfig) defaults() error {
	switch {
	case c.URL == "":
		return errors.New("no hub URL")
	case c.Subscribers < 0 || c.Topics < 1 || c.Events < 1 || c.Publishers < 1:
		return fmt.Errorf("need topics, events and publishers ≥ 1, and subscribers ≥ 0 (have %d, %d, %d, %d)",
			c.Topics, c.Events, c.Publishers, c.Subscribers)
	case c.Subscribers > 0 && c.Subscribers < c.Topics:
		return fmt.Errorf("%d subscribers cannot cover %d topics", c.Subscribers, c.Topics)
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "https://bench.herald.example/t/"
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	return nil
}

// FanoutResult is what a fan-out run measured.
type FanoutResult struct {
	Subscribers int     `json:"subscribers"`
	Topics      int     `json:"topics"`
	Events      int     `json:"events"`
	Publishers  int     `json:"publishers"`
	Rate        float64 `json:"rate"`

	Published      int     `json:"published"`       // acknowledged with 200
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

	HubCPUSeconds      float64 `json:"hub_cpu_seconds,omitempty"`
	HubCPUPerMillion   float64 `json:"hub_cpu_seconds_per_million_deliveries,omitempty"`
	HubRSSBytes        int64   `json:"hub_rss_bytes,omitempty"`
	ToolCPUSeconds     float64 `json:"tool_cpu_seconds"`
	ToolCPUPerMillion  float64 `json:"tool_cpu_seconds_per_million_deliveries"`
	ConnectSeconds     float64 `json:"connect_seconds"`
	SubscriberFailures int     `json:"subscriber_failures"`
}

// Fanout runs the scenario.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &FanoutResult{Subscribers: cfg.Subscribers, Topics: cfg.Topics, Events: cfg.Events,
		Publishers: cfg.Publishers, Rate: cfg.Rate}
	client := newClient(cfg.Publishers + cfg.Subscribers)

	// Subscribe, and make sure each subscription is live with a probe
	// event per topic before anything is measured.
	connectStart := time.Now()
	subs := make([]*subscriber, cfg.Subscribers)
	for i := range subs {
		subs[i] = newSubscriber(i%cfg.Topics, cfg)
	}
	var delivered Histogram
	if err := connectAll(ctx, client, cfg, subs, &delivered); err != nil {
		return nil, err
	}
	hubURL, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	if err := probe(ctx, hubURL, cfg, subs); err != nil {
		return nil, err
	}
	res.ConnectSeconds = time.Since(connectStart).Seconds()

	for _, s := range subs {
		res.Expected += int64(s.expected)
	}
	hubCPU0, _ := hubCPU(cfg.PID)
	toolCPU0 := selfCPU()
	start := time.Now()
	stopProgress := progress(cfg, subs, start)

	var posts Histogram
	var published, failed atomic.Int64
	var wg sync.WaitGroup
	for p := range cfg.Publishers {
		conn, err := newRawConn(hubURL, cfg.PublisherToken)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.close()
			publisher(ctx, conn, cfg, p, start, &posts, &published, &failed)
		}()
	}
	wg.Wait()
	publishEnd := time.Now()

	// Deliveries may trail: wait for every subscriber, within the drain.
	drain := time.NewTimer(cfg.Drain)
	defer drain.Stop()
	for _, s := range subs {
		select {
		case <-s.complete:
		case <-drain.C:
		case <-ctx.Done():
		}
	}
	end := time.Now()
	stopProgress()
	hubCPU1, _ := hubCPU(cfg.PID)
	toolCPU1 := selfCPU()
	if cfg.PID != 0 {
		res.HubRSSBytes, _ = procRSS(cfg.PID)
	}
	cancel()
	for _, s := range subs {
		<-s.stopped
	}

	res.Published, res.PublishErrors = int(published.Load()), int(failed.Load())
	res.PublishSeconds = publishEnd.Sub(start).Seconds()
	res.PublishRate = float64(res.Published) / res.PublishSeconds
	res.PostLatency = posts.Summary()
	for _, s := range subs {
		res.Delivered += s.delivered.Load()
		res.Duplicated += s.dups.Load()
		res.OutOfOrder += s.ooo.Load()
		res.Missing += int64(s.expected) - s.unique.Load()
		if s.unique.Load() < int64(s.expected) {
			res.Incomplete++
		}
		if s.failed.Load() {
			res.SubscriberFailures++
		}
	}
	res.DeliverySeconds = end.Sub(start).Seconds()
	res.DeliveryRate = float64(res.Delivered) / res.DeliverySeconds
	res.DeliveryLatency = delivered.Summary()
	perMillion := func(d time.Duration) float64 {
		if res.Delivered == 0 {
			return 0
		}
		return d.Seconds() * 1e6 / float64(res.Delivered)
	}
	if cfg.PID != 0 {
		res.HubCPUSeconds = (hubCPU1 - hubCPU0).Seconds()
		res.HubCPUPerMillion = perMillion(hubCPU1 - hubCPU0)
	}
	res.ToolCPUSeconds = (toolCPU1 - toolCPU0).Seconds()
	res.ToolCPUPerMillion = perMillion(toolCPU1 - toolCPU0)
	return res, nil
}

func hubCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	return procCPU(pid)
}

// newClient returns an HTTP client that keeps a connection per publisher
// and one per subscriber.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

func (c *FanoutConfig) topic(t int) string { return c.TopicPrefix + strconv.Itoa(t) }

// publisher publishes events p, p+n, p+2n… (n publishers), each once the
// hub has answered the one before.
func publisher(ctx context.Context, conn *rawConn, cfg FanoutConfig, p int, start time.Time,
	posts *Histogram, published, failed *atomic.Int64) {
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Publishers) / cfg.Rate)
	}
	var body []byte
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
		body = append(body[:0], "topic="...)
		body = append(body, url.QueryEscape(cfg.topic(seq%cfg.Topics))...)
		body = append(body, "&data="...)
		body = strconv.AppendInt(body, int64(p), 10)
		body = append(body, '+')
		body = strconv.AppendInt(body, int64(seq), 10)
		body = append(body, '+')
		body = strconv.AppendInt(body, sent.UnixNano(), 10)
		if status, _, err := conn.post(ctx, body); err != nil || status != http.StatusOK {
			failed.Add(1)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		posts.Record(time.Since(sent))
		published.Add(1)
	}
}

// probe publishes a probe event on each topic, again until every
// subscriber has seen one: from then on, every subscription is live.
func probe(ctx context.Context, hub *url.URL, cfg FanoutConfig, subs []*subscriber) error {
	conn, err := newRawConn(hub, cfg.PublisherToken)
	if err != nil {
		return err
	}
	defer conn.close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for t := range cfg.Topics {
			body := "topic=" + url.QueryEscape(cfg.topic(t)) + "&data=probe"
			status, resp, err := conn.post(ctx, []byte(body))
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			if status != http.StatusOK {
				return fmt.Errorf("probe: the hub answered %d: %s", status, resp)
			}
		}
		waiting := 0
		wait := time.After(200 * time.Millisecond)
		for _, s := range subs {
			select {
			case <-s.probed:
			case <-wait:
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe: %d subscribers did not receive it in a minute", waiting)
		}
	}
}

// progress prints a line a second until stopped.
func progress(cfg FanoutConfig, subs []*subscriber, start time.Time) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var got int64
				for _, s := range subs {
					got += s.delivered.Load()
				}
				fmt.Fprintf(cfg.Progress, "  %5.1fs  delivered %d\n", time.Since(start).Seconds(), got)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// subscriber is one subscription and what it has received.
type subscriber struct {
	topic    int
	topics   int      // topics in the run
	expected int      // events of its topic
	seen     []uint64 // a bit per event of its topic
	last     []int    // per publisher, the highest sequence number received

	delivered, unique, dups, ooo atomic.Int64
	failed                       atomic.Bool
	probed                       chan struct{}
	complete                     chan struct{}
	stopped                      chan struct{}
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

// connectAll opens the subscriptions, a bounded number at a time, and
// starts reading them.
func connectAll(ctx context.Context, client *http.Client, cfg FanoutConfig, subs []*subscriber, lat *Histogram) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(subs))
	for _, s := range subs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			body, err := subscribe(ctx, client, cfg, s.topic)
			if err != nil {
				close(s.stopped)
				errs <- err
				return
			}
			go s.read(ctx, body, lat)
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

func subscribe(ctx context.Context, client *http.Client, cfg FanoutConfig, topic int) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL+"?topic="+url.QueryEscape(cfg.topic(topic)), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if cfg.SubscriberToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.SubscriberToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return resp.Body, nil
}

// read consumes the stream until the run ends.
func (s *subscriber) read(ctx context.Context, body io.ReadCloser, lat *Histogram) {
	defer close(s.stopped)
	stop := context.AfterFunc(ctx, func() { body.Close() })
	defer stop()
	d := sse.NewDecoder(body)
	var ev sse.Event
	for {
		if err := d.Decode(&ev); err != nil {
			if ctx.Err() == nil {
				s.failed.Store(true)
			}
			return
		}
		now := time.Now()
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
		lat.Record(now.Sub(time.Unix(0, sent)))
		s.record(p, seq)
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

// parseData reads "publisher+sequence+sent" (a form's + is a space).
func parseData(data string) (p, seq int, sent int64, ok bool) {
	f := strings.Fields(data)
	if len(f) != 3 {
		return 0, 0, 0, false
	}
	var e1, e2, e3 error
	p, e1 = strconv.Atoi(f[0])
	seq, e2 = strconv.Atoi(f[1])
	sent, e3 = strconv.ParseInt(f[2], 10, 64)
	return p, seq, sent, e1 == nil && e2 == nil && e3 == nil
}
