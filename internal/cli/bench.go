package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-sse/herald/internal/bench"
)

const benchUsage = `<mode> [flags]

Modes:
  conns      open subscribers at a rate and hold them: connect times, failures,
             the hub's memory per connection, heartbeats, and a probe event
             every held connection must receive
  fanout     subscribers over topics, events from concurrent publishers: rates,
             latencies, CPU per million deliveries, and a check that every
             subscriber got every event of its topic once, in order
  reconnect  a fanout during which subscribers are cut off at random, or all
             those of one node of a cluster at once, and come back with
             Last-Event-ID: lost and duplicated events, reconnection and
             catch-up latency
  slow       subscribers that never read beside a few that read everything, on
             one topic, while megabytes are published: the readers' latencies,
             a check that they got every event once, in order, and when the
             hub dropped the ones that never read

Run 'herald bench <mode> -h' for the flags of a mode. The tool speaks Mercure,
or nchan's protocol with -protocol nchan. It loads only hubs on this machine
(loopback), and every run is bounded in count and time. Fanout and reconnect
load the nodes of a cluster when -url names several.`

// Bounds on a run, so that a typo cannot turn the tool into a flood.
const (
	maxBenchSubscribers = 100_000
	maxBenchEvents      = 10_000_000
	maxBenchDuration    = time.Hour
)

func runBench(e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(e.stderr, "Usage: herald bench %s\n", benchUsage)
		if len(args) == 0 {
			return usagef("a mode is needed")
		}
		return nil
	}
	switch args[0] {
	case "conns":
		return runConns(e, args[1:])
	case "fanout":
		return runFanout(e, args[1:], false)
	case "reconnect":
		return runFanout(e, args[1:], true)
	case "slow":
		return runSlow(e, args[1:])
	default:
		return usagef("unknown mode %q", args[0])
	}
}

// benchFlags are the flags every mode has.
type benchFlags struct {
	target        bench.Target
	urls          urlsFlag
	protocol, key string
	pids          pidsFlag
	asJSON, quiet bool
	timeout       time.Duration
}

func (b *benchFlags) register(fs *flag.FlagSet) {
	b.urls = urlsFlag{urls: []string{defaultHubURL}}
	fs.Var(&b.urls, "url", "the hub's `URL`; for nchan, the server's root, with its /pub/ and /sub/ locations. Several, repeated or comma-separated, are the nodes of one cluster (fanout and reconnect)")
	fs.StringVar(&b.protocol, "protocol", "mercure", "the hub's `protocol`: mercure or nchan")
	fs.StringVar(&b.target.PublisherToken, "token", "", "the publishers' `JWT`")
	fs.StringVar(&b.target.SubscriberToken, "subscriber-token", "", "the subscribers' `JWT`; none for anonymous subscribers")
	fs.StringVar(&b.key, "key", "", "an HS256 `secret` to sign a token with, for publishers and subscribers, instead of -token")
	fs.Var(&b.pids, "pid", "the hub's process `ID`, to report its CPU time and memory; a comma-separated list for a hub of several processes (nginx's workers, the nodes of a cluster)")
	fs.BoolVar(&b.asJSON, "json", false, "print the result as JSON")
	fs.BoolVar(&b.quiet, "quiet", false, "no progress lines")
	fs.DurationVar(&b.timeout, "timeout", 10*time.Minute, "stop the run after this long (a `duration`)")
}

// resolve checks the flags and completes the target.
func (b *benchFlags) resolve(e *env, fs *flag.FlagSet) (context.Context, context.CancelFunc, error) {
	if fs.NArg() > 0 {
		return nil, nil, usagef("unexpected arguments: %q", fs.Args())
	}
	b.target.Protocol = bench.Protocol(b.protocol)
	if b.protocol != "mercure" && b.protocol != "nchan" {
		return nil, nil, usagef("-protocol %q: want mercure or nchan", b.protocol)
	}
	urls := b.urls.urls
	for _, u := range urls {
		if err := loopbackOnly(u); err != nil {
			return nil, nil, err
		}
	}
	b.target.URL, b.target.Nodes = "", nil
	if len(urls) == 1 {
		b.target.URL = urls[0]
	} else {
		b.target.Nodes = urls
	}
	if b.timeout <= 0 || b.timeout > maxBenchDuration {
		return nil, nil, usagef("-timeout %v: want a positive duration up to %v", b.timeout, maxBenchDuration)
	}
	if b.key != "" {
		tok, err := mint(b.key, []string{"*"}, []string{"*"})
		if err != nil {
			return nil, nil, err
		}
		if b.target.PublisherToken == "" {
			b.target.PublisherToken = tok
		}
		if b.target.SubscriberToken == "" {
			b.target.SubscriberToken = tok
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, b.timeout)
	return ctx, cancel, nil
}

func (b *benchFlags) progress(e *env) io.Writer {
	if b.quiet || b.asJSON {
		return nil
	}
	return e.stderr
}

// oneHub refuses several -url for a mode that loads one hub.
func (b *benchFlags) oneHub(mode string) error {
	if len(b.urls.urls) > 1 {
		return usagef("-url: %d URLs, and %s loads one hub; fanout and reconnect load the nodes of a cluster", len(b.urls.urls), mode)
	}
	return nil
}

// loopbackOnly refuses a hub that is not on this machine: the tool is a
// flood by design.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return usagef("-url %q: want an http:// URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return usagef("-url %q: herald bench loads only hubs on this machine (localhost, 127.0.0.0/8, ::1)", raw)
	}
	return nil
}

// report prints a run's result: as JSON with -json, else with print.
func (b *benchFlags) report(e *env, res any, print func(io.Writer)) error {
	if b.asJSON {
		return printJSON(e.stdout, res)
	}
	print(e.stdout)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runConns(e *env, args []string) error {
	fs := newFlags(e, "bench conns", "[flags]")
	var bf benchFlags
	bf.register(fs)
	var cfg bench.ConnsConfig
	fs.IntVar(&cfg.Subscribers, "subscribers", 1000, "the `number` of connections to open and hold")
	fs.IntVar(&cfg.Topics, "topics", 1, "the `number` of topics they spread over")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "connections opened per second (a `number`); 0 for as fast as they are answered")
	fs.DurationVar(&cfg.Hold, "hold", 20*time.Second, "how long to hold them open, idle but for heartbeats (a `duration`)")
	fs.DurationVar(&cfg.Probe, "probe-timeout", 30*time.Second, "how long every connection has to receive the probe (a `duration`)")
	fs.BoolVar(&cfg.HTTP2, "h2", false, "subscribe over HTTP/2 with prior knowledge (h2c), -streams-per-conn streams to a connection; the hub must accept h2c (herald serve -h2c)")
	fs.IntVar(&cfg.StreamsPerConn, "streams-per-conn", 1, fmt.Sprintf("with -h2, the `number` of subscription streams on each connection, 1 to %d", bench.MaxStreamsPerConn))
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel, err := bf.resolve(e, fs)
	if err != nil {
		return err
	}
	defer cancel()
	if err := bf.oneHub("conns"); err != nil {
		return err
	}
	if cfg.Subscribers < 1 || cfg.Subscribers > maxBenchSubscribers {
		return usagef("-subscribers %d: want 1 to %d", cfg.Subscribers, maxBenchSubscribers)
	}
	if cfg.StreamsPerConn < 1 || cfg.StreamsPerConn > bench.MaxStreamsPerConn || cfg.StreamsPerConn > 1 && !cfg.HTTP2 {
		return usagef("-streams-per-conn %d: want 1 to %d, and more than 1 only with -h2", cfg.StreamsPerConn, bench.MaxStreamsPerConn)
	}
	cfg.Target, cfg.PIDs, cfg.Progress = bf.target, bf.pids, bf.progress(e)
	res, err := bench.Conns(ctx, cfg)
	if err != nil {
		return err
	}
	if err := bf.report(e, res, func(w io.Writer) { printConns(w, res) }); err != nil {
		return err
	}
	if res.Failed != 0 || res.Dropped != 0 || res.ProbeMissing != 0 {
		return errors.New("not every connection was opened, held and probed")
	}
	return nil
}

func printConns(w io.Writer, r *bench.ConnsResult) {
	var b strings.Builder
	pace := "as fast as answered"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g/s", r.Rate)
	}
	fmt.Fprintf(&b, "conns: %d subscribers over %d topics (%s), held %gs\n", r.Subscribers, r.Topics, pace, r.HoldSeconds)
	if r.HTTP2 {
		fmt.Fprintf(&b, "  over HTTP/2 (h2c), %d streams to a connection: %d connections\n", r.StreamsPerConn, r.Connections)
	}
	fmt.Fprintf(&b, "  connected   %d in %.2fs, %d failed; connect time %s\n", r.Connected, r.ConnectSeconds, r.Failed, latency(r.ConnectLatency))
	for _, k := range r.FailureKinds() {
		fmt.Fprintf(&b, "    %-22s %d\n", k, r.Failures[k])
	}
	fmt.Fprintf(&b, "  held        %d dropped by the hub; %d heartbeats, on %d connections\n", r.Dropped, r.Heartbeats, r.Heartbeating)
	fmt.Fprintf(&b, "  probe       received by %d, missing on %d; latency %s\n", r.ProbeReceived, r.ProbeMissing, latency(r.ProbeLatency))
	if r.HubRSSHeld != 0 {
		per := fmt.Sprintf("%.2f KiB per connection", r.HubBytesPerConn/1024)
		if r.HTTP2 {
			per = fmt.Sprintf("%.2f KiB per stream, %.2f KiB per connection", r.HubBytesPerConn/1024, r.HubBytesPerTCP/1024)
		}
		fmt.Fprintf(&b, "  hub         RSS %.1f MiB → %.1f MiB: %s; CPU %.2fs\n",
			float64(r.HubRSSBefore)/(1<<20), float64(r.HubRSSHeld)/(1<<20), per, r.HubCPUSeconds)
	}
	fmt.Fprintf(&b, "  this tool   CPU %.2fs, RSS %.1f MiB\n", r.ToolCPUSeconds, float64(r.ToolRSSHeldBytes)/(1<<20))
	_, _ = io.WriteString(w, b.String())
}

func runFanout(e *env, args []string, reconnect bool) error {
	mode := "fanout"
	if reconnect {
		mode = "reconnect"
	}
	fs := newFlags(e, "bench "+mode, "[flags]")
	var bf benchFlags
	bf.register(fs)
	var cfg bench.ReconnectConfig
	var cut bench.NodeCut
	subs, events := 1, 10_000
	if reconnect {
		subs, events = 500, 3000
		fs.DurationVar(&cfg.KillEvery, "kill-every", 20*time.Millisecond, "cut a random subscriber's connection this often (a `duration`); 0 for none, with -cut-node")
		fs.IntVar(&cut.Node, "cut-node", -1, "cut off the node of this `index` (0 for the first -url) at -cut-at: its publishers move to the next node, its process (-cut-pid) is killed, and its subscribers resume on the next node; -1 for none")
		fs.DurationVar(&cut.At, "cut-at", 5*time.Second, "with -cut-node, when to cut the node, after the first publication (a `duration`)")
		fs.IntVar(&cut.PID, "cut-pid", 0, "with -cut-node, the node's process `ID`, killed with SIGKILL at the cut; none leaves it running, cut off by the tool alone")
	}
	fs.IntVar(&cfg.RedisPID, "redis-pid", 0, "the process `ID` of the Redis server the nodes share, to report its CPU time")
	fs.IntVar(&cfg.Subscribers, "subscribers", subs, "the `number` of subscribers, spread over the topics")
	fs.IntVar(&cfg.Topics, "topics", 1, "the `number` of topics")
	fs.IntVar(&cfg.Events, "events", events, "the `number` of events to publish")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "the `number` of concurrent publishers")
	fs.Float64Var(&cfg.Rate, "rate", 0, "events per second in all (a `number`); 0 for as fast as the hub answers")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "how long deliveries may trail the last publication (a `duration`)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel, err := bf.resolve(e, fs)
	if err != nil {
		return err
	}
	defer cancel()
	switch {
	case cfg.Subscribers > maxBenchSubscribers:
		return usagef("-subscribers %d: at most %d", cfg.Subscribers, maxBenchSubscribers)
	case cfg.Events > maxBenchEvents:
		return usagef("-events %d: at most %d", cfg.Events, maxBenchEvents)
	case reconnect && (cfg.KillEvery < 0 || cfg.KillEvery == 0 && cut.Node < 0):
		return usagef("-kill-every %v: want a positive duration, or 0 with -cut-node", cfg.KillEvery)
	case reconnect && cut.Node >= len(bf.urls.urls):
		return usagef("-cut-node %d: want the index of one of the %d -url, or -1", cut.Node, len(bf.urls.urls))
	case reconnect && cut.Node >= 0 && len(bf.urls.urls) < 2:
		return usagef("-cut-node: a node cut needs a cluster, two -url or more")
	case reconnect && cut.Node < 0 && cut.PID != 0:
		return usagef("-cut-pid without -cut-node")
	case cfg.RedisPID < 0:
		return usagef("-redis-pid %d: want a process ID", cfg.RedisPID)
	}
	if reconnect && cut.Node >= 0 {
		cfg.CutNode = &cut
	}
	cfg.Target, cfg.PIDs, cfg.Progress = bf.target, bf.pids, bf.progress(e)
	var res *bench.FanoutResult
	if reconnect {
		res, err = bench.Reconnect(ctx, cfg)
	} else {
		res, err = bench.Fanout(ctx, cfg.FanoutConfig)
	}
	if err != nil {
		return err
	}
	if err := bf.report(e, res, func(w io.Writer) { printFanout(w, mode, res) }); err != nil {
		return err
	}
	if res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.PublishErrors != 0 {
		return errors.New("verification failed: events were lost, duplicated, reordered or refused")
	}
	if c := res.NodeCut; c != nil && (c.KillError != "" || c.Resumed < c.Subscribers) {
		return errors.New("the node cut failed: its process was not killed, or not all of its subscribers resumed elsewhere")
	}
	return nil
}

func printFanout(w io.Writer, mode string, r *bench.FanoutResult) {
	var b strings.Builder
	pace := "as fast as possible"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g events/s", r.Rate)
	}
	fmt.Fprintf(&b, "%s: %d subscribers over %d topics, %d events from %d publishers (%s)",
		mode, r.Subscribers, r.Topics, r.Events, r.Publishers, pace)
	if r.Nodes > 1 {
		fmt.Fprintf(&b, ", over %d nodes", r.Nodes)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  published   %d in %.2fs: %.0f/s acknowledged, %d errors; POST latency %s\n",
		r.Published, r.PublishSeconds, r.PublishRate, r.PublishErrors, latency(r.PostLatency))
	fmt.Fprintf(&b, "  delivered   %d of %d in %.2fs: %.0f/s; latency %s\n",
		r.Delivered, r.Expected, r.DeliverySeconds, r.DeliveryRate, latency(r.DeliveryLatency))
	fmt.Fprintf(&b, "  checked     %d missing, %d duplicated, %d out of order, %d subscribers incomplete, %d connections lost\n",
		r.Missing, r.Duplicated, r.OutOfOrder, r.Incomplete, r.SubscriberFailures)
	if r.ReconnectLatency != nil && r.KillEvery > 0 {
		fmt.Fprintf(&b, "  reconnected %d of %d cut (every %gms), %d failed attempts; reconnect %s\n",
			r.Reconnects, r.Kills, r.KillEvery*1000, r.ReconnectFailures, latency(*r.ReconnectLatency))
		fmt.Fprintf(&b, "  caught up   %s\n", latency(*r.CatchUpLatency))
	}
	if c := r.NodeCut; c != nil {
		how := "cut off"
		if c.Killed {
			how = "killed"
		} else if c.KillError != "" {
			how = "cut off (" + c.KillError + ")"
		}
		fmt.Fprintf(&b, "  node %d     %s at %.2fs: %d of its %d subscribers resumed on other nodes; resume %s\n",
			c.Node, how, c.AtSeconds, c.Resumed, c.Subscribers, latency(c.ResumeLatency))
		fmt.Fprintf(&b, "  caught up   %s\n", latency(c.CatchUpLatency))
	}
	if r.HubRSSBytes != 0 {
		fmt.Fprintf(&b, "  hub         CPU %.2fs (%.2fs per million deliveries), RSS %.1f MiB\n",
			r.HubCPUSeconds, r.HubCPUPerMillion, float64(r.HubRSSBytes)/(1<<20))
	}
	if r.RedisPID != 0 {
		fmt.Fprintf(&b, "  Redis       CPU %.2fs (%.2fs per million deliveries)\n", r.RedisCPUSeconds, r.RedisCPUPerMillion)
	}
	fmt.Fprintf(&b, "  this tool   CPU %.2fs (%.2fs per million deliveries); connecting took %.2fs\n",
		r.ToolCPUSeconds, r.ToolCPUPerMillion, r.ConnectSeconds)
	_, _ = io.WriteString(w, b.String())
}

// maxBenchEventSize bounds the events of a slow run: a hub's default bound
// on a publication's body is 1 MiB (form-encoded, the data grows a little).
const maxBenchEventSize = 512 << 10

func runSlow(e *env, args []string) error {
	fs := newFlags(e, "bench slow", "[flags]")
	var bf benchFlags
	bf.register(fs)
	var cfg bench.SlowConfig
	volume := sizeFlag(20 << 20)
	fs.IntVar(&cfg.Slow, "slow", 2000, "the `number` of subscribers that stop reading once subscribed")
	fs.IntVar(&cfg.Fast, "fast", 3, "the `number` of subscribers that read everything, on the same topic")
	fs.IntVar(&cfg.Others, "others", 0, "the `number` of subscribers that read everything on a second topic, which then gets every other event")
	fs.Var(&volume, "volume", "the `size` of the event data to publish, in all (bytes, or with a unit: 512KiB, 20MiB, 1GiB)")
	fs.IntVar(&cfg.EventSize, "event-size", 4096, "the `bytes` of data per event")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "events per second (a `number`); 0 for as fast as the hub answers")
	fs.DurationVar(&cfg.Wait, "wait", 15*time.Second, "how long after the last publication the readers have to get everything and the hub to drop the others (a `duration`)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel, err := bf.resolve(e, fs)
	if err != nil {
		return err
	}
	defer cancel()
	if err := bf.oneHub("slow"); err != nil {
		return err
	}
	cfg.Volume = int64(volume)
	switch {
	case cfg.Slow < 0 || cfg.Fast < 1 || cfg.Others < 0 || cfg.Slow+cfg.Fast+cfg.Others > maxBenchSubscribers:
		return usagef("-slow %d, -fast %d, -others %d: want at least one fast subscriber, and %d subscribers at most",
			cfg.Slow, cfg.Fast, cfg.Others, maxBenchSubscribers)
	case cfg.EventSize < 64 || cfg.EventSize > maxBenchEventSize:
		return usagef("-event-size %d: want 64 to %d bytes", cfg.EventSize, maxBenchEventSize)
	case cfg.Volume < int64(cfg.EventSize) || cfg.Volume/int64(cfg.EventSize) > maxBenchEvents:
		return usagef("-volume %d: want at least one event and at most %d", cfg.Volume, maxBenchEvents)
	}
	cfg.Target, cfg.PIDs, cfg.Progress = bf.target, bf.pids, bf.progress(e)
	res, err := bench.Slow(ctx, cfg)
	if err != nil {
		return err
	}
	if err := bf.report(e, res, func(w io.Writer) { printSlow(w, res) }); err != nil {
		return err
	}
	if res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.PublishErrors != 0 || res.ReadersLost != 0 {
		return errors.New("verification failed: the readers lost, got twice or out of order events, or were dropped, or publications were refused")
	}
	return nil
}

func printSlow(w io.Writer, r *bench.SlowResult) {
	var b strings.Builder
	pace := "as fast as possible"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g events/s", r.Rate)
	}
	fmt.Fprintf(&b, "slow: %d subscribers that never read, %d that read", r.Slow, r.Fast)
	if r.Others > 0 {
		fmt.Fprintf(&b, " (and %d on another topic)", r.Others)
	}
	fmt.Fprintf(&b, "; %d events of %d bytes (%.1f MiB, %s)\n", r.Events, r.EventSize, float64(r.Events)*float64(r.EventSize)/(1<<20), pace)
	fmt.Fprintf(&b, "  published   %d in %.2fs, %d errors; POST latency %s\n", r.Published, r.PublishSeconds, r.PublishErrors, latency(r.PostLatency))
	fmt.Fprintf(&b, "  readers     latency %s\n", latency(r.FastLatency))
	if r.OtherLatency != nil {
		fmt.Fprintf(&b, "  other topic latency %s\n", latency(*r.OtherLatency))
	}
	fmt.Fprintf(&b, "  checked     %d of %d delivered: %d missing, %d duplicated, %d out of order, %d readers incomplete, %d dropped\n",
		r.Delivered, r.Expected, r.Missing, r.Duplicated, r.OutOfOrder, r.Incomplete, r.ReadersLost)
	if r.Watched {
		fmt.Fprintf(&b, "  slow        %d of %d dropped by the hub", r.Dropped, r.Slow)
		if r.Dropped > 0 {
			fmt.Fprintf(&b, ", from %.2fs to %.2fs (median %.2fs)", r.FirstDrop, r.LastDrop, r.MedianDrop)
		}
		fmt.Fprintf(&b, "; at most %.0f MiB queued in the kernel for them\n", float64(r.QueuedPeak)/(1<<20))
	} else {
		b.WriteString("  slow        drops not watched: the kernel's TCP table (/proc/net/tcp) could not be read\n")
	}
	if r.HubRSSBytes != 0 {
		fmt.Fprintf(&b, "  hub         CPU %.2fs, RSS %.1f MiB\n", r.HubCPU, float64(r.HubRSSBytes)/(1<<20))
	}
	fmt.Fprintf(&b, "  this tool   CPU %.2fs; the run took %.2fs after connecting (%.2fs)\n", r.ToolCPU, r.RunSeconds, r.ConnectSecs)
	_, _ = io.WriteString(w, b.String())
}

// sizeFlag is a number of bytes, given bare or with a unit: kB, MB, GB
// (powers of 1000) or KiB, MiB, GiB (powers of 1024).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	num := strings.TrimRight(v, "kKMGiB")
	unit := v[len(num):]
	mult, ok := map[string]int64{"": 1, "B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	n, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || n < 0 || n*float64(mult) > 1<<40 {
		return fmt.Errorf("%q is not a size: want bytes, or a number with kB, MB, GB, KiB, MiB or GiB", v)
	}
	*s = sizeFlag(n * float64(mult))
	return nil
}

func latency(s bench.Summary) string {
	return fmt.Sprintf("p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.2fms", s.P50, s.P90, s.P99, s.Max)
}

// urlsFlag is one URL or several, given as a comma-separated list or by
// repeating the flag. The first one given replaces the default.
type urlsFlag struct {
	urls  []string
	given bool // the default has been replaced
}

func (u *urlsFlag) String() string { return strings.Join(u.urls, ",") }

func (u *urlsFlag) Set(v string) error {
	if !u.given {
		u.urls, u.given = nil, true
	}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			return fmt.Errorf("%q: an empty URL", v)
		}
		u.urls = append(u.urls, f)
	}
	return nil
}

// pidsFlag is a comma-separated list of process IDs.
type pidsFlag []int

func (p *pidsFlag) String() string {
	s := make([]string, len(*p))
	for i, pid := range *p {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}

func (p *pidsFlag) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return fmt.Errorf("%q is not a process ID", f)
		}
		*p = append(*p, pid)
	}
	return nil
}
