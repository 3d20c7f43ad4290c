// Command compare measures herald beside other hubs on this machine, in one
// run: it builds them, starts each in turn with equivalent settings, drives
// them with the same "herald bench" scenarios, alternating hubs round after
// round, and prints the medians and the ratios as Markdown.
//
//	go run ./cmd/compare -suite fanout -rounds 3
//
// With -write FILE it also puts the tables in FILE, in place of the block
// that starts with the line <!-- peers:SUITE --> and ends with the line
// <!-- /peers:SUITE -->, so that a rerun updates BENCHMARKS.md; bench/peers.sh
// does so. A suite with a chart writes it to -chart.
//
// Run it from the bench directory. Mercure is built from the Go module
// proxy (bench/peers/mercure), nchan is Debian's nginx module
// (libnginx-mod-nchan); nothing of either is part of herald.
//
// Every hub keeps a history (herald's and Mercure's on disk unless the
// hub's name says memory, nchan's in memory), sends a heartbeat every 15 s
// and logs errors only. The fan-out and reconnection suites also run the
// floor (cmd/fanfloor), no hub but a server that makes one write per
// delivery and nothing else: the least a hub that writes each event to each
// subscriber can spend. The tables give herald's ratios to the best peer and to the
// floor, and the floor's to the best peer.
//
// The cluster suites run herald on Redis (herald serve -redis): herald-redis
// is one node, herald-redisN N nodes, each its own process on its own port,
// all on one database of the Redis server at -redis-addr (-redis-db, 15 by
// default), which the runner empties (FLUSHDB) before each run. The load
// tool spreads its subscribers and publishers over the nodes and reads the
// Redis server's CPU time from /proc, with the process ID the server gives
// in INFO.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const key = "a benchmark key, the same for every hub"

// A hub is a server under test.
type hub struct {
	name string
	// start returns the command that runs the hub (a node of it) on the
	// port, with its files in dir.
	start func(dir string, port int) *exec.Cmd
	// nodes is the number of processes that make up a cluster, each
	// started with start on its own port; 0 means one.
	nodes int
	// target gives the load tool the hub's address (its nodes', in turn)
	// and protocol.
	target func(ports []int) []string
	// pids lists the processes whose CPU time and memory are the hub's,
	// those of the node that cmd runs.
	pids func(cmd *exec.Cmd) ([]int, error)
	// bin and extra are a herald hub's binary, and the flags it adds to
	// the common ones.
	bin   string
	extra []string
	// redis is the Redis server of a herald on Redis; nil for none.
	redis *redisServer
}

// redisServer is the Redis server that herald-redis hubs share: the
// database they use, which each run empties first, and the server's
// process, whose CPU time the load tool reads.
type redisServer struct {
	addr string
	db   int
	pid  int
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://%s/%d", r.addr, r.db) }

// A scenario is one "herald bench" run.
type scenario struct {
	name    string
	args    []string
	metrics []metric
	x       float64 // its abscissa on the chart of a sweep
}

// A metric is one column of a scenario's table.
type metric struct {
	label  string
	path   []string // in the tool's JSON result
	scale  float64  // the value shown is the result's times this; 0 for 1
	format string   // for the value shown
	higher bool     // higher is better
}

func (m metric) value(run map[string]any) (float64, bool) {
	// Redis's figures are measured only for a hub on Redis: elsewhere
	// they are missing, not zero.
	if len(m.path) > 0 && strings.HasPrefix(m.path[0], "redis_") && run["redis_pid"] == nil {
		return 0, false
	}
	var v any = run
	for _, p := range m.path {
		obj, ok := v.(map[string]any)
		if !ok {
			return 0, false
		}
		v = obj[p]
	}
	f, ok := v.(float64)
	if !ok {
		if v == nil && len(m.path) > 0 { // omitted from the JSON: zero
			return 0, true
		}
		return 0, false
	}
	if m.scale != 0 {
		f *= m.scale
	}
	return f, true
}

var (
	publishMetrics = []metric{
		{"acknowledged/s", []string{"publish_rate"}, 0, "%.0f", true},
		{"POST p50", []string{"post_latency", "p50_ms"}, 0, "%.2f ms", false},
		{"POST p99", []string{"post_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"hub CPU per event", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.0f µs", false},
	}
	fanoutMetrics = []metric{
		{"hub CPU s per million deliveries", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
		{"delivery p50", []string{"delivery_latency", "p50_ms"}, 0, "%.1f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"deliveries/s", []string{"delivery_rate"}, 0, "%.0f", true},
		{"publications/s", []string{"publish_rate"}, 0, "%.0f", true},
		{"hub RSS", []string{"hub_rss_bytes"}, 1.0 / (1 << 20), "%.0f MiB", false},
		{"tool CPU s per million", []string{"tool_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
	}
	connsMetrics = []metric{
		{"KiB per connection", []string{"hub_bytes_per_connection"}, 1.0 / 1024, "%.2f", false},
		{"connect p50", []string{"connect_latency", "p50_ms"}, 0, "%.2f ms", false},
		{"connect p99", []string{"connect_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"held", []string{"connected"}, 0, "%.0f", true},
		{"heartbeating", []string{"heartbeating"}, 0, "%.0f", true},
		{"probe received", []string{"probe_received"}, 0, "%.0f", true},
		{"probe p99", []string{"probe_latency", "p99_ms"}, 0, "%.0f ms", false},
		{"hub CPU s", []string{"hub_cpu_seconds"}, 0, "%.2f", false},
	}
	h2Metrics = append([]metric{
		{"KiB per stream", []string{"hub_bytes_per_connection"}, 1.0 / 1024, "%.2f", false},
		{"KiB per TCP connection", []string{"hub_bytes_per_tcp_connection"}, 1.0 / 1024, "%.2f", false},
	}, connsMetrics[1:]...)
	reconnectMetrics = []metric{
		{"lost", []string{"missing"}, 0, "%.0f", false},
		{"duplicated", []string{"duplicated"}, 0, "%.0f", false},
		{"kills", []string{"kills"}, 0, "%.0f", true},
		{"reconnect p50", []string{"reconnect_latency", "p50_ms"}, 0, "%.2f ms", false},
		{"reconnect p99", []string{"reconnect_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"catch-up p99", []string{"catch_up_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"hub CPU s per million deliveries", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
	}
	slowMetrics = []metric{
		{"readers' delivery p50", []string{"fast_latency", "p50_ms"}, 0, "%.1f ms", false},
		{"readers' delivery p99", []string{"fast_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"readers' delivery max", []string{"fast_latency", "max_ms"}, 0, "%.0f ms", false},
		{"readers' events missing", []string{"missing"}, 0, "%.0f", false},
		{"non-readers dropped", []string{"slow_dropped"}, 0, "%.0f", true},
		{"last drop", []string{"last_drop_seconds"}, 0, "%.1f s", false},
		{"kernel queue peak", []string{"slow_queued_peak_bytes"}, 1.0 / (1 << 20), "%.0f MiB", false},
		{"hub CPU s", []string{"hub_cpu_seconds"}, 0, "%.2f", false},
	}
	clusterMetrics = []metric{
		{"deliveries/s", []string{"delivery_rate"}, 0, "%.0f", true},
		{"publications/s", []string{"publish_rate"}, 0, "%.0f", true},
		{"delivery p50", []string{"delivery_latency", "p50_ms"}, 0, "%.1f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"hub CPU s per million deliveries", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
		{"Redis CPU s per million deliveries", []string{"redis_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
		{"Redis CPU s", []string{"redis_cpu_seconds"}, 0, "%.2f", false},
		{"hub RSS", []string{"hub_rss_bytes"}, 1.0 / (1 << 20), "%.0f MiB", false},
	}
	clusterPublishMetrics = []metric{
		{"acknowledged/s", []string{"publish_rate"}, 0, "%.0f", true},
		{"POST p50", []string{"post_latency", "p50_ms"}, 0, "%.2f ms", false},
		{"POST p99", []string{"post_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.2f ms", false},
		{"hub CPU per event", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.0f µs", false},
		{"Redis CPU per event", []string{"redis_cpu_seconds_per_million_deliveries"}, 0, "%.0f µs", false},
	}
	nodeKillMetrics = []metric{
		{"lost", []string{"missing"}, 0, "%.0f", false},
		{"duplicated", []string{"duplicated"}, 0, "%.0f", false},
		{"subscribers of the killed node", []string{"node_cut", "subscribers"}, 0, "%.0f", true},
		{"resumed elsewhere", []string{"node_cut", "resumed"}, 0, "%.0f", true},
		{"resume p50", []string{"node_cut", "resume_latency", "p50_ms"}, 0, "%.1f ms", false},
		{"resume p99", []string{"node_cut", "resume_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"catch-up p99", []string{"node_cut", "catch_up_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"Redis CPU s", []string{"redis_cpu_seconds"}, 0, "%.2f", false},
	}
	sweepMetrics = []metric{
		{"hub CPU s per million deliveries", []string{"hub_cpu_seconds_per_million_deliveries"}, 0, "%.2f", false},
		{"hub CPU s", []string{"hub_cpu_seconds"}, 0, "%.2f", false},
		{"delivery p99", []string{"delivery_latency", "p99_ms"}, 0, "%.1f ms", false},
		{"hub RSS", []string{"hub_rss_bytes"}, 1.0 / (1 << 20), "%.0f MiB", false},
	}
)

// A suite is a set of scenarios and the hubs they compare by default.
type suite struct {
	hubs      string
	scenarios []scenario
	chart     bool // write an SVG chart of the sweeps
}

var suites = map[string]suite{
	// Durable publication: acknowledged publications per second, one
	// subscriber that must receive them all.
	"publish": {"herald,herald-bolt,mercure", []scenario{
		{name: "1 publisher", args: []string{"fanout", "-subscribers", "1", "-publishers", "1", "-events", "8000"}, metrics: publishMetrics},
		{name: "16 publishers", args: []string{"fanout", "-subscribers", "1", "-publishers", "16", "-events", "40000"}, metrics: publishMetrics},
	}, false},
	// Publication without a disk, against nchan's memory.
	"publish-memory": {"herald-memory,nchan", []scenario{
		{name: "1 publisher, memory", args: []string{"fanout", "-subscribers", "1", "-publishers", "1", "-events", "20000"}, metrics: publishMetrics},
		{name: "16 publishers, memory", args: []string{"fanout", "-subscribers", "1", "-publishers", "16", "-events", "80000"}, metrics: publishMetrics},
	}, false},
	// Idle connections: memory per connection, heartbeats, a probe.
	"conns": {"herald,nchan,mercure", []scenario{
		{name: "10,000 connections held 20 s", args: []string{"conns", "-subscribers", "10000", "-rate", "2000", "-hold", "20s"}, metrics: connsMetrics},
	}, false},
	// The idle cost of an HTTP/2 subscriber beside HTTP/1.1's, on one hub
	// that accepts both (h2c): a stream per connection, and 100 streams
	// on each connection.
	"h2": {"herald-h2c", []scenario{
		{name: "HTTP/1.1: 10,000 connections held 20 s", args: []string{"conns", "-subscribers", "10000", "-rate", "2000", "-hold", "20s"}, metrics: connsMetrics},
		{name: "HTTP/2 (h2c): 10,000 streams, one per connection, held 20 s", args: []string{"conns", "-h2", "-streams-per-conn", "1", "-subscribers", "10000", "-rate", "2000", "-hold", "20s"}, metrics: h2Metrics},
		{name: "HTTP/2 (h2c): 10,000 streams, 100 per connection, held 20 s", args: []string{"conns", "-h2", "-streams-per-conn", "100", "-subscribers", "10000", "-rate", "2000", "-hold", "20s"}, metrics: h2Metrics},
	}, false},
	// As many subscribers as the file-descriptor limit allows.
	// Subscribers that never read beside a few that read everything.
	"slow": {"herald,nchan,mercure", []scenario{
		{name: "2,000 non-reading subscribers, 3 readers, 20 MiB at 1,000 events/s", args: []string{"slow", "-slow", "2000", "-fast", "3", "-volume", "20MiB"}, metrics: slowMetrics},
	}, false},
	// Past the default max-connections (90 % of the limit on open files).
	"max": {"herald+max-connections=0", []scenario{
		{name: "19,950 connections held 20 s", args: []string{"conns", "-subscribers", "19950", "-rate", "2000", "-hold", "20s"}, metrics: connsMetrics},
	}, false},
	// Fan-out: CPU per delivery and latency.
	// The floor (cmd/fanfloor) shows the least any hub that writes each
	// event to each subscriber can spend, and how soon it answers.
	"fanout": {"herald,nchan,mercure,herald-memory,floor", []scenario{
		{name: "saturating: 1,000 subscribers, 2,000 events, 4 publishers", args: []string{"fanout", "-subscribers", "1000", "-events", "2000", "-publishers", "4"}, metrics: fanoutMetrics},
		{name: "paced: 100 events/s to 1,000 subscribers, 15 s", args: []string{"fanout", "-subscribers", "1000", "-events", "1500", "-rate", "100"}, metrics: fanoutMetrics},
	}, false},
	// Subscribers cut at random and resuming with Last-Event-ID.
	"reconnect": {"herald,nchan,mercure,floor", []scenario{
		{name: "reconnect storm: 500 subscribers, one cut every 20 ms, 3,000 events at 200/s", args: []string{"reconnect", "-subscribers", "500", "-events", "3000", "-rate", "200", "-kill-every", "20ms"}, metrics: reconnectMetrics},
	}, false},
	// How cost grows with subscribers and with topics.
	"scale": {"herald,nchan,mercure", sweeps(), true},
	// One node on its embedded store beside one, two and three nodes on
	// Redis, under the same load: what the cluster costs and gives.
	"cluster": {"herald,herald-redis,herald-redis2,herald-redis3", []scenario{
		{name: "1 publisher", args: []string{"fanout", "-subscribers", "1", "-publishers", "1", "-events", "8000"}, metrics: clusterPublishMetrics},
		{name: "16 publishers", args: []string{"fanout", "-subscribers", "1", "-publishers", "16", "-events", "40000"}, metrics: clusterPublishMetrics},
		{name: "saturating: 1,000 subscribers, 2,000 events, 4 publishers", args: []string{"fanout", "-subscribers", "1000", "-events", "2000", "-publishers", "4"}, metrics: clusterMetrics},
		{name: "paced: 100 events/s to 1,000 subscribers, 15 s", args: []string{"fanout", "-subscribers", "1000", "-events", "1500", "-rate", "100"}, metrics: clusterMetrics},
	}, false},
	// A node killed (SIGKILL) in the middle of a run: every subscriber it
	// held resumes on the next node with Last-Event-ID. Then random cuts,
	// each subscriber resuming on another node than its own.
	"cluster-kill": {"herald-redis2,herald-redis3", []scenario{
		{name: "node 1 killed at 5 s: 2,000 subscribers, 3,000 events at 200/s", args: []string{"reconnect", "-subscribers", "2000", "-events", "3000", "-rate", "200", "-kill-every", "0", "-cut-node", "1", "-cut-at", "5s"}, metrics: nodeKillMetrics},
		{name: "reconnect storm across nodes: 500 subscribers, one cut every 20 ms, 3,000 events at 200/s", args: []string{"reconnect", "-subscribers", "500", "-events", "3000", "-rate", "200", "-kill-every", "20ms"}, metrics: reconnectMetrics},
	}, false},
}

func sweeps() []scenario {
	var out []scenario
	for _, n := range []int{1000, 2000, 5000, 10000, 19000} {
		out = append(out, scenario{name: fmt.Sprintf("subscribers=%d", n), x: float64(n), metrics: sweepMetrics,
			args: []string{"fanout", "-subscribers", fmt.Sprint(n), "-events", "60", "-rate", "5"}})
	}
	for _, t := range []int{1, 10, 100, 1000, 10000} {
		out = append(out, scenario{name: fmt.Sprintf("topics=%d", t), x: float64(t), metrics: sweepMetrics,
			args: []string{"fanout", "-subscribers", "10000", "-topics", fmt.Sprint(t), "-events", "120", "-rate", "10"}})
	}
	return out
}

func main() {
	suiteFlag := flag.String("suite", "publish", "the scenarios to run: "+strings.Join(sortedKeys(suites), ", "))
	rounds := flag.Int("rounds", 3, "rounds; each runs every scenario on every hub")
	hubsFlag := flag.String("hubs", "", "the hubs, in order, the first the one others are compared with: herald, herald-bolt, herald-memory, mercure, nchan, floor (cmd/fanfloor: one write per delivery and nothing else), herald-redis (one node on Redis) and herald-redisN (N nodes, 2 to 9, on one Redis), herald at another commit as herald@REV (e.g. herald@d9e327c, for a before and after), or herald with other flags as herald+flag=value, e.g. herald+batch-interval=20ms, herald@d9e327c+store=memory or herald-redis3+batch-interval=20ms (default: the suite's)")
	redisAddr := flag.String("redis-addr", "127.0.0.1:6379", "the Redis server of the herald-redis hubs (host:port), on this machine")
	redisDB := flag.Int("redis-db", 15, "the Redis database the herald-redis hubs use, emptied (FLUSHDB) before each run")
	out := flag.String("out", "results", "the directory for the raw results and charts")
	write := flag.String("write", "", "a Markdown file whose <!-- peers:SUITE --> block the tables replace, e.g. ../BENCHMARKS.md")
	chartPath := flag.String("chart", "", "where a suite with a chart writes it (default: in -out, named after the time)")
	flag.Parse()
	log.SetFlags(0)
	s, ok := suites[*suiteFlag]
	if !ok {
		log.Fatalf("no suite %q; there are %s", *suiteFlag, strings.Join(sortedKeys(suites), ", "))
	}
	names := strings.Split(cmpOr(*hubsFlag, s.hubs), ",")

	work, err := os.MkdirTemp("", "herald-compare-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	herald := filepath.Join(work, "herald")
	build(herald, "..", "./cmd/herald")
	commit := heraldCommit()
	all := map[string]hub{
		"herald":        heraldHub("herald", herald, 1, nil),
		"herald-bolt":   heraldHub("herald-bolt", herald, 1, nil, "-store", "bolt"),
		"herald-memory": heraldHub("herald-memory", herald, 1, nil, "-store", "memory"),
		"herald-h2c":    heraldHub("herald-h2c", herald, 1, nil, "-h2c"),
	}
	if slices.Contains(names, "mercure") {
		mercure := filepath.Join(work, "mercure")
		build(mercure, "peers/mercure", ".")
		all["mercure"] = mercureHub(mercure)
	}
	if slices.Contains(names, "floor") {
		floor := filepath.Join(work, "fanfloor")
		build(floor, ".", "./cmd/fanfloor")
		all["floor"] = hub{name: "floor", target: mercureURLs, pids: ownPID, start: func(dir string, port int) *exec.Cmd {
			return exec.Command(floor, "-addr", fmt.Sprint("127.0.0.1:", port))
		}}
	}
	if slices.Contains(names, "nchan") {
		h, err := nchanHub()
		if err != nil {
			log.Fatal(err)
		}
		all["nchan"] = h
	}
	redis := &redisServer{addr: *redisAddr, db: *redisDB}
	if err := resolveHubs(names, all, herald, redis, func(rev string) string { return buildAt(work, rev) }); err != nil {
		log.Fatal(err)
	}
	if err := checkRedis(names, all, commit); err != nil {
		log.Fatal(err)
	}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	raw, err := os.Create(filepath.Join(*out, *suiteFlag+"-"+stamp+".jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	defer raw.Close()

	results := map[string]map[string][]map[string]any{} // scenario → hub → runs
	for r := range *rounds {
		for _, sc := range s.scenarios {
			for _, name := range names {
				res, err := run(herald, all[name], sc, filepath.Join(work, fmt.Sprintf("%s-%d", name, r)))
				if err != nil {
					// A hub that cannot do a scenario is a result too.
					log.Printf("round %d  %-40s %-14s failed: %v", r+1, sc.name, name, err)
					res = map[string]any{"error": err.Error()}
				} else {
					log.Printf("round %d  %-40s %-14s %s", r+1, sc.name, name, brief(sc, res))
				}
				res["hub"], res["scenario"], res["round"] = name, sc.name, r+1
				line, _ := json.Marshal(res)
				raw.Write(append(line, '\n'))
				if results[sc.name] == nil {
					results[sc.name] = map[string][]map[string]any{}
				}
				results[sc.name][name] = append(results[sc.name][name], res)
			}
		}
	}
	var tables bytes.Buffer
	report(&tables, s.scenarios, names, results, *rounds, commit)
	os.Stdout.Write(tables.Bytes())
	if s.chart {
		path := cmpOr(*chartPath, filepath.Join(*out, "scale-"+stamp+".svg"))
		if err := os.WriteFile(path, chart(s.scenarios, names, results), 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("chart: %s", path)
		if *write != "" {
			rel, err := relativeTo(*write, path)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Fprintf(&tables, "\n![hub CPU and memory against subscribers and topics](%s)\n", rel)
		}
	}
	if *write != "" {
		if err := writeBlock(*write, *suiteFlag, tables.Bytes()); err != nil {
			log.Fatal(err)
		}
		log.Printf("tables written to %s", *write)
	}
}

// resolveHubs adds to all the hubs that names name and all does not hold
// yet: herald@REV (herald built at a commit, with buildAt),
// herald-redis and herald-redisN (on redis, one node or N), and any herald
// hub followed by +flag=value settings.
func resolveHubs(names []string, all map[string]hub, herald string, redis *redisServer, buildAt func(rev string) string) error {
	for _, name := range names {
		base, settings, hasSettings := strings.Cut(name, "+")
		if _, ok := all[base]; !ok {
			if rev, ok := strings.CutPrefix(base, "herald@"); ok && rev != "" {
				all[base] = heraldHub(base, buildAt(rev), 1, nil)
			} else if n, ok := strings.CutPrefix(base, "herald-redis"); ok {
				nodes := 1
				if n != "" {
					var err error
					if nodes, err = strconv.Atoi(n); err != nil || nodes < 1 || nodes > 9 || n[0] == '0' {
						return fmt.Errorf("no hub %q: herald-redis is one node on Redis, herald-redis2 to herald-redis9 that many", name)
					}
				}
				all[base] = heraldHub(base, herald, nodes, redis)
			}
		}
		// herald…+flag=value[+flag=value…]: herald with other settings.
		if h, ok := all[base]; ok && hasSettings && h.bin != "" {
			extra := slices.Clone(h.extra)
			for _, kv := range strings.Split(settings, "+") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("hub %q: %q is not flag=value", name, kv)
				}
				extra = append(extra, "-"+k, v)
			}
			all[name] = heraldHub(name, h.bin, h.nodes, h.redis, extra...)
		}
		if _, ok := all[name]; !ok {
			return fmt.Errorf("no hub %q", name)
		}
	}
	return nil
}

// checkRedis makes sure that the hubs on Redis can run: their herald has
// the -redis flag, and the Redis server answers, on this machine, whose
// process it finds.
func checkRedis(names []string, all map[string]hub, commit string) error {
	var redis *redisServer
	for _, name := range names {
		h := all[name]
		if h.redis == nil {
			continue
		}
		redis = h.redis
		out, _ := exec.Command(h.bin, "serve", "-h").CombinedOutput()
		if !hasFlag(string(out), "redis") {
			return fmt.Errorf("%s: this herald (%s) has no -redis flag: its Redis store is not in it yet; run a herald that has it, or leave the herald-redis hubs out", name, commit)
		}
	}
	if redis == nil {
		return nil
	}
	info, err := redisDo(redis.addr, []string{"INFO", "server"})
	if err != nil {
		return fmt.Errorf("the herald-redis hubs need the Redis server at %s (-redis-addr): %w", redis.addr, err)
	}
	pid, ok := infoField(info[0], "process_id")
	if n, err := strconv.Atoi(pid); ok && err == nil {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", n)); err == nil {
			redis.pid = n
		}
	}
	if redis.pid == 0 {
		return fmt.Errorf("the Redis server at %s says its process is %q, which is not one of this machine's: its CPU time cannot be read", redis.addr, pid)
	}
	return nil
}

// hasFlag reports whether a flag package's usage text lists -name.
func hasFlag(usage, name string) bool {
	for _, line := range strings.Split(usage, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "-"+name {
			return true
		}
	}
	return false
}

// redisDo sends commands to the Redis server at addr on one connection and
// returns their replies: a status, an integer or a bulk string, as text.
// An error reply is an error.
func redisDo(addr string, cmds ...[]string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req bytes.Buffer
	for _, args := range cmds {
		fmt.Fprintf(&req, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	replies := make([]string, len(cmds))
	for i, args := range cmds {
		if replies[i], err = readReply(br); err != nil {
			return nil, fmt.Errorf("redis %s: %w", args[0], err)
		}
	}
	return replies, nil
}

// readReply reads one reply of the Redis protocol (RESP2) that is not an
// array.
func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("an empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("a malformed reply %q", line)
		}
		if n == -1 {
			return "", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("an unexpected reply %q", line)
}

// infoField returns a field of the text of Redis's INFO.
func infoField(info, name string) (string, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

// flushRedis empties the database of a herald-redis hub before a run.
func flushRedis(r *redisServer) error {
	_, err := redisDo(r.addr, []string{"SELECT", strconv.Itoa(r.db)}, []string{"FLUSHDB"})
	return err
}

// relativeTo returns path as a link from the Markdown file doc.
func relativeTo(doc, path string) (string, error) {
	dir, err := filepath.Abs(filepath.Dir(doc))
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, abs)
	return filepath.ToSlash(rel), err
}

// writeBlock replaces the contents of the file's block for the suite with
// text, leaving the marker lines and everything around them as they are.
func writeBlock(path, suite string, text []byte) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err = replaceBlock(doc, suite, text)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, doc, 0o644)
}

func replaceBlock(doc []byte, suite string, text []byte) ([]byte, error) {
	begin, end := "<!-- peers:"+suite+" -->\n", "<!-- /peers:"+suite+" -->\n"
	i := lineIndex(doc, begin)
	if i < 0 {
		return nil, fmt.Errorf("no line %q to put the %s tables after; add it, and %q, where they belong", strings.TrimSpace(begin), suite, strings.TrimSpace(end))
	}
	i += len(begin)
	j := lineIndex(doc[i:], end)
	if j < 0 {
		return nil, fmt.Errorf("the %s block is not closed by a line %q", suite, strings.TrimSpace(end))
	}
	text = append(bytes.TrimSpace(text), '\n')
	return slices.Concat(doc[:i], []byte("\n"), text, []byte("\n"), doc[i+j:]), nil
}

// lineIndex is the offset of the first line of doc that is line, or -1.
func lineIndex(doc []byte, line string) int {
	for off := 0; off < len(doc); {
		if bytes.HasPrefix(doc[off:], []byte(line)) {
			return off
		}
		nl := bytes.IndexByte(doc[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return -1
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func brief(sc scenario, res map[string]any) string {
	var parts []string
	for _, m := range sc.metrics[:min(3, len(sc.metrics))] {
		if v, ok := m.value(res); ok {
			parts = append(parts, m.label+" "+fmt.Sprintf(m.format, v))
		}
	}
	if res["verification_failed"] == true {
		parts = append(parts, "CHECKS FAILED")
	}
	return strings.Join(parts, ", ")
}

func build(out, dir, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("building %s in %s: %v", pkg, dir, err)
	}
}

// buildAt builds herald as it was at the commit rev, in work, and returns
// the binary.
func buildAt(work, rev string) string {
	src := filepath.Join(work, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		log.Fatal(err)
	}
	archive := exec.Command("git", "-C", "..", "archive", rev)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	extract.Stdin = pipe
	archive.Stderr, extract.Stderr = os.Stderr, os.Stderr
	if err := extract.Start(); err != nil {
		log.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		log.Fatalf("git archive %s: %v", rev, err)
	}
	if err := extract.Wait(); err != nil {
		log.Fatalf("extracting herald at %s: %v", rev, err)
	}
	bin := filepath.Join(work, "herald@"+rev)
	build(bin, src, "./cmd/herald")
	return bin
}

// mercureURLs gives the load tool the hub's URL, or its nodes', as one
// comma-separated -url.
func mercureURLs(ports []int) []string {
	urls := make([]string, len(ports))
	for i, port := range ports {
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d/.well-known/mercure", port)
	}
	return []string{"-url", strings.Join(urls, ",")}
}

func ownPID(cmd *exec.Cmd) ([]int, error) { return []int{cmd.Process.Pid}, nil }

// heraldHub is herald serve with extra flags: nodes processes of it, on
// Redis when redis is set, else one on its embedded store.
func heraldHub(name, bin string, nodes int, redis *redisServer, extra ...string) hub {
	return hub{name: name, bin: bin, nodes: nodes, redis: redis, target: mercureURLs, pids: ownPID, extra: extra,
		start: func(dir string, port int) *exec.Cmd {
			args := []string{"serve", "-addr", fmt.Sprint("127.0.0.1:", port), "-data-dir", dir,
				"-publisher-jwt-key", key, "-anonymous", "-heartbeat", "15s", "-log-level", "error"}
			if redis != nil {
				args = append(args, "-redis", redis.url())
			}
			return exec.Command(bin, append(args, extra...)...)
		}}
}

func mercureHub(bin string) hub {
	return hub{name: "mercure", target: mercureURLs, pids: ownPID, start: func(dir string, port int) *exec.Cmd {
		caddyfile := fmt.Sprintf(`{
	auto_https off
	admin off
	log {
		level ERROR
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	mercure {
		publisher_jwt "%s" HS256
		subscriber_jwt "%s" HS256
		anonymous
		heartbeat 15s
		transport bolt {
			path %s
		}
	}
}
`, port, key, key, filepath.Join(dir, "mercure.db"))
		path := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		return cmd
	}}
}

// nchan runs Debian's nginx with the nchan module: two workers, a channel
// per topic whose messages are kept (10,000, for an hour), and a ": ping"
// comment every 15 s on idle event streams.
const nchanModule = "/usr/lib/nginx/modules/ngx_nchan_module.so"

func nchanHub() (hub, error) {
	nginx, err := exec.LookPath("nginx")
	if err == nil {
		_, err = os.Stat(nchanModule)
	}
	if err != nil {
		return hub{}, fmt.Errorf("nchan needs nginx and its module (apt-get install nginx-light libnginx-mod-nchan): %w", err)
	}
	return hub{
		name: "nchan",
		target: func(ports []int) []string {
			return []string{"-protocol", "nchan", "-url", fmt.Sprintf("http://127.0.0.1:%d", ports[0])}
		},
		pids: nginxWorkers,
		start: func(dir string, port int) *exec.Cmd {
			conf := fmt.Sprintf(`load_module %s;
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log error;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen 127.0.0.1:%[3]d;
		location ~ ^/sub/(\w+)$ {
			nchan_subscriber eventsource;
			nchan_channel_id $1;
			nchan_subscriber_first_message newest;
			nchan_eventsource_ping_interval 15;
			nchan_eventsource_ping_comment "ping";
		}
		location ~ ^/pub/(\w+)$ {
			nchan_publisher;
			nchan_channel_id $1;
			nchan_message_buffer_length 10000;
			nchan_message_timeout 1h;
		}
	}
}
`, nchanModule, dir, port)
			path := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				log.Fatal(err)
			}
			return exec.Command(nginx, "-c", path, "-p", dir, "-e", filepath.Join(dir, "error.log"))
		},
	}, nil
}

// nginxWorkers lists the master's children, waiting for both workers.
func nginxWorkers(cmd *exec.Cmd) ([]int, error) {
	pid := cmd.Process.Pid
	for range 100 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return nil, err
		}
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		if len(pids) >= 2 {
			return pids, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("nginx started no workers")
}

// run starts the hub fresh (each node of it), runs the scenario against
// it, and stops it.
func run(herald string, h hub, sc scenario, dir string) (map[string]any, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if h.redis != nil {
		if err := flushRedis(h.redis); err != nil {
			return nil, fmt.Errorf("emptying Redis database %d: %w", h.redis.db, err)
		}
	}
	var ports []int
	var nodePIDs [][]int // per node
	for i := range max(h.nodes, 1) {
		port, pids, stop, err := startNode(h, filepath.Join(dir, fmt.Sprint("node", i)), ports)
		if err != nil {
			return nil, err
		}
		defer stop()
		ports, nodePIDs = append(ports, port), append(nodePIDs, pids)
	}
	var list []string
	for _, pids := range nodePIDs {
		for _, p := range pids {
			list = append(list, strconv.Itoa(p))
		}
	}
	args := append(append(append([]string{"bench"}, sc.args...), h.target(ports)...),
		"-key", key, "-pid", strings.Join(list, ","), "-json", "-quiet")
	if h.redis != nil {
		args = append(args, "-redis-pid", strconv.Itoa(h.redis.pid))
	}
	// A node cut kills the node's process.
	if i, ok := cutNode(sc.args); ok && i < len(nodePIDs) {
		args = append(args, "-cut-pid", strconv.Itoa(nodePIDs[i][0]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	b := exec.CommandContext(ctx, herald, args...)
	b.Stdout, b.Stderr = &stdout, &stderr
	err := b.Run()
	var res map[string]any
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return nil, fmt.Errorf("bench: %v, %v: %s", err, jerr, lastLines(stderr.String(), 5))
	}
	if err != nil {
		res["verification_failed"] = true
		res["stderr"] = lastLines(stderr.String(), 5)
	}
	return res, nil
}

// startNode starts one process of the hub on a free port (none of taken),
// with its files in dir, and waits until it is ready. It returns the port,
// the processes whose CPU time and memory are the node's, and a function
// that kills them, which the caller calls once the run is over.
func startNode(h hub, dir string, taken []int) (port int, pids []int, stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, nil, err
	}
	for {
		if port, err = freePort(); err != nil {
			return 0, nil, nil, err
		}
		if !slices.Contains(taken, port) {
			break
		}
	}
	cmd := h.start(dir, port)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// A process group of its own, to stop nginx's workers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, nil, err
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	if err := waitPort(port, 30*time.Second); err != nil {
		stop()
		return 0, nil, nil, fmt.Errorf("%w; its output: %s", err, logs.String())
	}
	if h.bin != "" {
		// herald listens before its history is open, and answers 503
		// until then: the run starts once it is ready.
		if err := waitReady(port, 30*time.Second); err != nil {
			stop()
			return 0, nil, nil, fmt.Errorf("%w; its output: %s", err, logs.String())
		}
	}
	if pids, err = h.pids(cmd); err != nil {
		stop()
		return 0, nil, nil, err
	}
	return port, pids, stop, nil
}

// cutNode returns the node that a scenario's -cut-node names.
func cutNode(args []string) (int, bool) {
	i := slices.Index(args, "-cut-node")
	if i < 0 || i+1 >= len(args) {
		return 0, false
	}
	n, err := strconv.Atoi(args[i+1])
	return n, err == nil && n >= 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort picks a port below the ephemeral range, where the load tool's
// own connections cannot have taken it, that is free on every address
// (Caddy listens on all of them).
func freePort() (int, error) {
	for range 100 {
		port := 10000 + rand.IntN(20000)
		l, err := net.Listen("tcp", fmt.Sprint(":", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func waitPort(port int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the hub did not start listening")
}

// waitReady waits until herald's /readyz no longer answers 503.
func waitReady(port int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return nil // ready, or a herald of before /readyz
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the hub did not become ready")
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianOf is the median of a metric over the runs that have it; false
// when none has.
func medianOf(runs []map[string]any, m metric) (float64, bool) {
	var vs []float64
	for _, r := range runs {
		if _, failed := r["error"]; failed {
			continue
		}
		if v, ok := m.value(r); ok {
			vs = append(vs, v)
		}
	}
	return median(vs), len(vs) > 0
}

// report prints, per scenario, a table of medians, and the ratio of the
// first hub's figure to the best of the others'.
func report(w io.Writer, scenarios []scenario, names []string, results map[string]map[string][]map[string]any, rounds int, commit string) {
	host, _ := os.Hostname()
	what := fmt.Sprintf("Medians of %d rounds", rounds)
	if rounds == 1 {
		what = "One round"
	}
	fmt.Fprintf(w, "\n%s, %s, %s, herald at %s.\n", what, time.Now().UTC().Format("2006-01-02"), host, commit)
	for _, sc := range scenarios {
		fmt.Fprintf(w, "\n**%s** (`herald bench %s`)\n\n", sc.name, strings.Join(sc.args, " "))
		fmt.Fprint(w, "| hub |")
		for _, m := range sc.metrics {
			fmt.Fprintf(w, " %s |", m.label)
		}
		fmt.Fprintln(w, " checks |")
		fmt.Fprintln(w, "|---"+strings.Repeat("|---", len(sc.metrics)+1)+"|")
		for _, name := range names {
			runs := results[sc.name][name]
			fmt.Fprintf(w, "| %s |", name)
			for _, m := range sc.metrics {
				if v, ok := medianOf(runs, m); ok {
					fmt.Fprintf(w, " "+m.format+" |", v)
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			fmt.Fprintf(w, " %s |\n", checks(runs))
		}
		if len(names) < 2 {
			continue
		}
		var peers []string
		for _, name := range names[1:] {
			if !strings.HasPrefix(name, "herald") && name != "floor" { // variants of herald and the floor are no peers
				peers = append(peers, name)
			}
		}
		if len(peers) > 0 {
			ratioRow(w, sc, results, names[0], "best peer", peers)
		}
		if slices.Contains(names, "floor") {
			ratioRow(w, sc, results, "floor", "best peer", peers)
			ratioRow(w, sc, results, names[0], "floor", []string{"floor"})
		}
	}
}

// ratioRow writes a row of the ratios of a hub's medians to the best of
// others' (the floor's, the best peer's).
func ratioRow(w io.Writer, sc scenario, results map[string]map[string][]map[string]any, num, label string, others []string) {
	fmt.Fprintf(w, "| **%s ÷ %s** |", num, label)
	for _, m := range sc.metrics {
		own, ok := medianOf(results[sc.name][num], m)
		best, found := 0.0, false
		for _, name := range others {
			if v, ok := medianOf(results[sc.name][name], m); ok && (!found || m.higher && v > best || !m.higher && v < best) {
				best, found = v, true
			}
		}
		if ok && found && best != 0 {
			fmt.Fprintf(w, " %.2f |", own/best)
		} else {
			fmt.Fprint(w, " – |")
		}
	}
	fmt.Fprintln(w, " |")
}

// heraldCommit names the commit herald is built from, with "-dirty" when
// the working tree had changes outside the benchmark module and the
// Markdown files (which this command itself writes).
func heraldCommit() string {
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	commit := "commit " + strings.TrimSpace(string(out))
	changed, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--", ".", ":!bench", ":!*.md").Output()
	if err != nil || len(changed) > 0 {
		commit += "-dirty"
	}
	return commit
}

func checks(runs []map[string]any) string {
	if len(runs) == 0 {
		return "not run"
	}
	var failed []string
	for _, r := range runs {
		if e, ok := r["error"].(string); ok {
			failed = append(failed, fmt.Sprintf("round %v: %s", r["round"], firstLine(e)))
		} else if r["verification_failed"] == true {
			failed = append(failed, fmt.Sprintf("round %v: checks failed", r["round"]))
		}
	}
	if len(failed) == 0 {
		return "passed"
	}
	return strings.Join(failed, "; ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
