package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/metrics"
	"github.com/herald-sse/herald/sse"
)

var testKey = []byte("the metrics tests' key, long enough for HS256")

// wait bounds a wait for something that must happen.
const wait = 20 * time.Second

// scrape fetches and parses the metrics at u.
func scrape(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return mfs
}

// value returns the value of the sample of family name with the labels
// given (name, value pairs), 0 when there is none, and the count of a
// histogram.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// reader reads one subscription's stream and counts its events.
type reader struct {
	resp   *http.Response
	mu     sync.Mutex
	events []sse.Event
	done   chan struct{}
}

func (r *reader) read() {
	defer close(r.done)
	for ev, err := range sse.NewDecoder(r.resp.Body).Events() {
		if err != nil {
			return
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The metrics scraped during and after a fan-out over real connections
// agree exactly with what the test published, received and was refused.
func TestMetricsAgreeWithAFanout(t *testing.T) {
	t.Parallel()
	const subscribers, publications, leaving = 20, 50, 5
	key, err := hub.NewKey("HS256", testKey)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{PublisherKey: key, Heartbeat: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- h.Serve(srv, ln) }()
	ms := httptest.NewServer(metrics.Handler(h))
	t.Cleanup(func() {
		_ = h.Close()
		_ = srv.Close()
		<-served
		ms.Close()
	})
	hubURL := "http://" + ln.Addr().String() + hub.Path
	metricsURL := ms.URL + "/metrics"

	// N subscribers, each on a connection of its own.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	readers := make([]*reader, subscribers)
	for i := range readers {
		resp, err := client.Get(hubURL + "?topic=" + url.QueryEscape("https://example.com/books/{id}"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %s", resp.Status)
		}
		readers[i] = &reader{resp: resp, done: make(chan struct{})}
		go readers[i].read()
	}
	t.Cleanup(func() {
		for _, r := range readers {
			r.resp.Body.Close()
		}
	})
	waitFor(t, "the streams", func() bool { return h.Stats().Streams[hub.TransportHTTP1] == subscribers })

	// Scrapes run all along the publications: the counters never go
	// back.
	stopScraping := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		var last float64
		for {
			select {
			case <-stopScraping:
				scraped <- nil
				return
			default:
			}
			resp, err := http.Get(metricsURL)
			if err != nil {
				scraped <- err
				return
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			mfs, err := p.TextToMetricFamilies(resp.Body)
			resp.Body.Close()
			if err != nil {
				scraped <- err
				return
			}
			v := value(mfs, "herald_deliveries_total")
			if v < last {
				scraped <- fmt.Errorf("deliveries went from %v to %v", last, v)
				return
			}
			last = v
		}
	}()

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values, tok string) int {
		req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range publications {
		form := url.Values{"topic": {fmt.Sprintf("https://example.com/books/%d", i)}, "data": {strings.Repeat("x", i)}}
		if status := post(form, tok); status != http.StatusOK {
			t.Fatalf("publication %d: %d", i, status)
		}
	}
	// Refusals, through the plain path's handover and the handler.
	refusals := []struct {
		status int
		do     func() int
	}{
		{401, func() int { return post(url.Values{"topic": {"a"}}, "") }},
		{401, func() int { return post(url.Values{"topic": {"a"}}, "not a token") }},
		{400, func() int { return post(url.Values{"data": {"no topic"}}, tok) }},
		{400, func() int {
			resp, err := client.Get(hubURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}},
		{404, func() int {
			resp, err := client.Get(strings.TrimSuffix(hubURL, hub.Path) + "/nowhere")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}},
	}
	for i, r := range refusals {
		if got := r.do(); got != r.status {
			t.Fatalf("refusal %d: %d, want %d", i, got, r.status)
		}
	}
	waitFor(t, "every event at every subscriber", func() bool {
		for _, r := range readers {
			if r.count() < publications {
				return false
			}
		}
		return true
	})
	close(stopScraping)
	if err := <-scraped; err != nil {
		t.Fatal(err)
	}

	var wire int
	readers[0].mu.Lock()
	defer readers[0].mu.Unlock()
	for _, ev := range readers[0].events {
		b, err := sse.Event{ID: ev.ID, Data: ev.Data}.AppendText(nil)
		if err != nil {
			t.Fatal(err)
		}
		wire += len(b)
	}
	mfs := scrape(t, metricsURL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"herald_publications_total", nil, publications},
		{"herald_deliveries_total", nil, publications * subscribers},
		{"herald_written_bytes_total", nil, float64(wire * subscribers)},
		{"herald_subscribers", []string{"transport", "http1.1"}, subscribers},
		{"herald_subscribers", []string{"transport", "http2"}, 0},
		{"herald_subscriptions_opened_total", []string{"transport", "http1.1"}, subscribers},
		{"herald_history_events", nil, publications},
		{"herald_history_append_duration_seconds", nil, publications},
		{"herald_requests_refused_total", []string{"request", "publish", "code", "missing_token"}, 1},
		{"herald_requests_refused_total", []string{"request", "publish", "code", "invalid_token"}, 1},
		{"herald_requests_refused_total", []string{"request", "publish", "code", "missing_topic"}, 1},
		{"herald_requests_refused_total", []string{"request", "subscribe", "code", "missing_topic"}, 1},
		{"herald_requests_refused_total", []string{"request", "other", "code", "not_found"}, 1},
		{"herald_slow_subscribers_dropped_total", nil, 0},
		{"herald_accept_errors_total", nil, 0},
	} {
		if got := value(mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(mfs["herald_requests_refused_total"].GetMetric()); n != len(refusals) {
		t.Errorf("%d kinds of refusal exported, want %d", n, len(refusals))
	}
	if got := value(mfs, "herald_history_replay_reads_total"); got < subscribers {
		t.Errorf("%v replay reads, want one per subscriber at least", got)
	}
	if got := value(mfs, "herald_connections"); got < subscribers {
		t.Errorf("%v connections, want the %d subscribers' at least", got, subscribers)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}

	// Some clients leave, then the hub shuts down: each close is counted
	// under its reason.
	for _, r := range readers[:leaving] {
		r.resp.Body.Close()
	}
	waitFor(t, "the clients' closes", func() bool { return h.Stats().StreamsClosed["client_closed"] == leaving })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil && !errors.Is(err, hub.ErrClosed) {
		t.Fatal(err)
	}
	mfs = scrape(t, metricsURL)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"reason", "client_closed"}, leaving},
		{[]string{"reason", "shutdown"}, subscribers - leaving},
	} {
		if got := value(mfs, "herald_subscriptions_closed_total", c.labels...); got != c.want {
			t.Errorf("closed%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := value(mfs, "herald_subscribers", "transport", "http1.1"); got != 0 {
		t.Errorf("%v subscribers after the shutdown", got)
	}
}
