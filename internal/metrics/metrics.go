// Package metrics exposes a hub's counters to Prometheus. Start with
// Handler, which serves /metrics: the hub's counters (NewCollector), the
// Go runtime's and the process's. docs/metrics.md lists every metric.
//
// The hub keeps its counters itself, with atomics, and knows nothing of
// Prometheus; the collector reads them with Hub.Stats at each scrape and
// turns them into constant metrics, so that serving metrics costs the hub
// nothing between scrapes.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-sse/herald/hub"
)

// Source is what the collector reads: a *hub.Hub.
type Source interface {
	Stats() hub.Stats
}

// Handler serves the metrics of src, the Go runtime's (go_*) and the
// process's (process_*) in Prometheus' exposition formats.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("herald_"+name, help, labels, nil)
}

// The metrics of a hub. The help texts say what each counts; the hub's
// Stats documents the same numbers.
var (
	subscribersDesc = desc("subscribers",
		"Subscription streams open, by transport: http1.1 (an HTTP/1.1 connection the hub took over), http2, other.", "transport")
	openedDesc = desc("subscriptions_opened_total",
		"Subscription streams opened, by transport.", "transport")
	closedDesc = desc("subscriptions_closed_total",
		"Subscription streams closed, by reason: client_gone (a write failed), client_closed, stalled (a write outlasted the dispatch timeout), lifetime, token_expired, topics_ended, fell_behind (the history dropped events the subscriber had not read), shutdown.", "reason")
	droppedDesc = desc("slow_subscribers_dropped_total",
		"Subscribers disconnected for not keeping up: stalled, or fallen behind the history.")
	publishedDesc = desc("publications_total",
		"Publications accepted: appended to the history (over HTTP or from Go).")
	refusedDesc = desc("requests_refused_total",
		"Requests answered with an error, by request (publish, subscribe, other) and error code (docs/api.md).", "request", "code")
	deliveriesDesc = desc("deliveries_total",
		"Events written to subscribers: one per event per subscriber, once the write carrying it succeeded.")
	bytesDesc = desc("written_bytes_total",
		"Bytes of events and heartbeats written to subscribers, without HTTP framing.")
	appendDesc = desc("history_append_duration_seconds",
		"Time a publication waited for the history to append its event durably (group commit included).")
	commitDesc = desc("history_commit_events",
		"Events per commit of the history (group commit); only for the stores on disk.")
	retainedDesc = desc("history_events",
		"Events the history retains.")
	replayDesc = desc("history_replay_reads_total",
		"Reads of the history by subscribers catching up: resuming, starting, or fallen behind their live queue.")
	storeErrorsDesc = desc("store_errors_total",
		"Failed operations of the history: append, read, lookup and bounds as the hub called them, commit as the store ran them.", "operation")
	connsDesc = desc("connections",
		"Connections the hub's listener holds open, every kind counted (see -max-connections).")
	acceptedDesc = desc("connections_accepted_total",
		"Connections accepted, those then refused past -max-connections included.")
	acceptErrorsDesc = desc("accept_errors_total",
		"Failures to accept a connection (out of file descriptors, say), which the hub retries.")
)

// transports are the values of the transport label, each always exported.
var transports = []string{hub.TransportHTTP1, hub.TransportHTTP2, hub.TransportOther}

type collector struct{ src Source }

// NewCollector returns a collector of src's counters, read at each scrape.
func NewCollector(src Source) prometheus.Collector { return collector{src} }

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		subscribersDesc, openedDesc, closedDesc, droppedDesc, publishedDesc, refusedDesc, deliveriesDesc, bytesDesc,
		appendDesc, commitDesc, retainedDesc, replayDesc, storeErrorsDesc, connsDesc, acceptedDesc, acceptErrorsDesc,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, t := range transports {
		gauge(subscribersDesc, float64(st.Streams[t]), t)
		counter(openedDesc, st.StreamsOpened[t], t)
	}
	for reason, n := range st.StreamsClosed {
		counter(closedDesc, n, reason)
	}
	counter(droppedDesc, st.SlowDropped)
	counter(publishedDesc, st.Published)
	for r, n := range st.Refused {
		counter(refusedDesc, n, r.Request, r.Code)
	}
	counter(deliveriesDesc, st.Delivered)
	counter(bytesDesc, st.WrittenBytes)
	ch <- constHistogram(appendDesc, st.AppendLatency)
	gauge(retainedDesc, float64(st.Retained))
	counter(replayDesc, st.ReplayReads)
	for op, n := range st.StoreErrors {
		counter(storeErrorsDesc, n, op)
	}
	if st.Commits != nil {
		ch <- constHistogram(commitDesc, st.Commits.Sizes)
		counter(storeErrorsDesc, st.Commits.Failed, "commit")
	}
	gauge(connsDesc, float64(st.Connections))
	counter(acceptedDesc, st.ConnectionsAccepted)
	counter(acceptErrorsDesc, st.AcceptErrors)
}

// constHistogram turns a hub.Histogram, whose counts are per bucket, into
// Prometheus' cumulative buckets.
func constHistogram(d *prometheus.Desc, h hub.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}
