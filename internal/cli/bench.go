package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/herald-sse/herald/internal/bench"
)

const benchUsage = `<mode> [flags]

Modes:
  fanout   subscribers over topics, events from concurrent publishers: rates,
           latencies, and a check that every subscriber got every event of its
           topic once, in each publisher's order

Run 'herald bench <mode> -h' for the flags of a mode. Load only hubs you run
yourself, on loopback: the tool publishes as fast as it is answered.`

func runBench(e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(e.stderr, "Usage: herald bench %s\n", benchUsage)
		if len(args) == 0 {
			return usagef("a mode is needed")
		}
		return nil
	}
	switch args[0] {
	case "fanout":
		return runFanout(e, args[1:])
	default:
		return usagef("unknown mode %q", args[0])
	}
}

func runFanout(e *env, args []string) error {
	fs := newFlags(e, "bench fanout", "[flags]")
	var cfg bench.FanoutConfig
	fs.StringVar(&cfg.URL, "url", "http://localhost:8080/.well-known/mercure", "the hub's `URL`")
	fs.IntVar(&cfg.Subscribers, "subscribers", 1, "the `number` of subscribers, spread over the topics")
	fs.IntVar(&cfg.Topics, "topics", 1, "the `number` of topics")
	fs.IntVar(&cfg.Events, "events", 10_000, "the `number` of events to publish")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "the `number` of concurrent publishers")
	fs.Float64Var(&cfg.Rate, "rate", 0, "events per second in all (a `number`); 0 for as fast as the hub answers")
	fs.StringVar(&cfg.PublisherToken, "token", "", "the publishers' `JWT`")
	fs.StringVar(&cfg.SubscriberToken, "subscriber-token", "", "the subscribers' `JWT`; none for anonymous subscribers")
	key := fs.String("key", "", "an HS256 `secret` to sign a token with, for publishers and subscribers, instead of -token")
	fs.IntVar(&cfg.PID, "pid", 0, "the hub's process `ID`, to report its CPU time and memory")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "how long deliveries may trail the last publication (a `duration`)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %q", fs.Args())
	}
	if *key != "" {
		tok, err := mint(*key, []string{"*"}, []string{"*"})
		if err != nil {
			return err
		}
		if cfg.PublisherToken == "" {
			cfg.PublisherToken = tok
		}
		if cfg.SubscriberToken == "" {
			cfg.SubscriberToken = tok
		}
	}
	if !*quiet && !*asJSON {
		cfg.Progress = e.stderr
	}
	res, err := bench.Fanout(e.ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printFanout(e.stdout, res)
	}
	if res.Missing != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.PublishErrors != 0 {
		return errors.New("verification failed: events were lost, duplicated, reordered or refused")
	}
	return nil
}

func printFanout(w io.Writer, r *bench.FanoutResult) {
	var b strings.Builder
	pace := "as fast as possible"
	if r.Rate > 0 {
		pace = fmt.Sprintf("%g events/s", r.Rate)
	}
	fmt.Fprintf(&b, "fanout: %d subscribers over %d topics, %d events from %d publishers (%s)\n",
		r.Subscribers, r.Topics, r.Events, r.Publishers, pace)
	fmt.Fprintf(&b, "  published   %d in %.2fs: %.0f/s acknowledged, %d errors; POST latency %s\n",
		r.Published, r.PublishSeconds, r.PublishRate, r.PublishErrors, latency(r.PostLatency))
	fmt.Fprintf(&b, "  delivered   %d of %d in %.2fs: %.0f/s; latency %s\n",
		r.Delivered, r.Expected, r.DeliverySeconds, r.DeliveryRate, latency(r.DeliveryLatency))
	fmt.Fprintf(&b, "  checked     %d missing, %d duplicated, %d out of order, %d subscribers incomplete, %d failed\n",
		r.Missing, r.Duplicated, r.OutOfOrder, r.Incomplete, r.SubscriberFailures)
	if r.HubRSSBytes != 0 {
		fmt.Fprintf(&b, "  hub         CPU %.2fs (%.2fs per million deliveries), RSS %.1f MiB\n",
			r.HubCPUSeconds, r.HubCPUPerMillion, float64(r.HubRSSBytes)/(1<<20))
	}
	fmt.Fprintf(&b, "  this tool   CPU %.2fs (%.2fs per million deliveries); connecting took %.2fs\n",
		r.ToolCPUSeconds, r.ToolCPUPerMillion, r.ConnectSeconds)
	_, _ = io.WriteString(w, b.String())
}

func latency(s bench.Summary) string {
	return fmt.Sprintf("p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.2fms", s.P50, s.P90, s.P99, s.Max)
}
