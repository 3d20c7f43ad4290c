// Command compare measures herald beside other hubs on this machine, in one
// run: it builds them, starts each in turn with equivalent settings, drives
// them with the same "herald bench" scenarios, alternating hubs round after
// round, and prints the medians and the ratios as Markdown.
//
//	go run ./cmd/compare -suite publish -rounds 5
//
// Run it from the bench directory. Mercure is built from the Go module
// proxy (bench/peers/mercure); nothing of it is part of herald.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const key = "a benchmark key, the same for every hub"

// A hub is a server under test.
type hub struct {
	name  string
	start func(dir string, port int) *exec.Cmd
}

// A scenario is one "herald bench" run.
type scenario struct {
	name string
	args []string
}

var suites = map[string][]scenario{
	// Durable publication: acknowledged publications per second, one
	// subscriber that must receive them all.
	"publish": {
		{"1 publisher", []string{"fanout", "-subscribers", "1", "-publishers", "1", "-events", "8000"}},
		{"16 publishers", []string{"fanout", "-subscribers", "1", "-publishers", "16", "-events", "40000"}},
	},
}

func main() {
	suite := flag.String("suite", "publish", "the scenarios to run: publish")
	rounds := flag.Int("rounds", 5, "rounds; each runs every scenario on every hub")
	hubsFlag := flag.String("hubs", "herald,herald-bolt,mercure", "the hubs, in order: herald, herald-bolt, herald-memory, mercure")
	out := flag.String("out", "results", "the directory for the raw results")
	flag.Parse()
	log.SetFlags(0)
	scenarios, ok := suites[*suite]
	if !ok {
		log.Fatalf("no suite %q", *suite)
	}

	work, err := os.MkdirTemp("", "herald-compare-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	herald := filepath.Join(work, "herald")
	build(herald, "..", "./cmd/herald")
	all := map[string]hub{
		"herald":        heraldHub("herald", herald),
		"herald-bolt":   heraldHub("herald-bolt", herald, "-store", "bolt"),
		"herald-memory": heraldHub("herald-memory", herald, "-store", "memory"),
	}
	names := strings.Split(*hubsFlag, ",")
	if slices.Contains(names, "mercure") {
		mercure := filepath.Join(work, "mercure")
		build(mercure, "peers/mercure", ".")
		all["mercure"] = mercureHub(mercure)
	}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	raw, err := os.Create(filepath.Join(*out, *suite+"-"+time.Now().UTC().Format("20060102-150405")+".jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	defer raw.Close()

	results := map[string]map[string][]map[string]any{} // scenario → hub → runs
	for r := range *rounds {
		for _, sc := range scenarios {
			for _, name := range names {
				h, ok := all[name]
				if !ok {
					log.Fatalf("no hub %q", name)
				}
				res, err := run(herald, h, sc, filepath.Join(work, fmt.Sprintf("%s-%d", name, r)))
				if err != nil {
					log.Fatalf("round %d, %s, %s: %v", r+1, sc.name, name, err)
				}
				log.Printf("round %d  %-14s %-14s %8.0f/s", r+1, sc.name, name, res["publish_rate"])
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
	report(os.Stdout, scenarios, names, results, *rounds)
}

func build(out, dir, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("building %s in %s: %v", pkg, dir, err)
	}
}

func heraldHub(name, bin string, extra ...string) hub {
	return hub{name: name, start: func(dir string, port int) *exec.Cmd {
		args := append([]string{"serve", "-addr", fmt.Sprint("127.0.0.1:", port), "-data-dir", dir,
			"-publisher-jwt-key", key, "-anonymous", "-heartbeat", "15s", "-log-level", "error"}, extra...)
		return exec.Command(bin, args...)
	}}
}

func mercureHub(bin string) hub {
	return hub{name: "mercure", start: func(dir string, port int) *exec.Cmd {
		caddyfile := fmt.Sprintf(`{
	auto_https off
	admin off
	log {
		level ERROR
	}
}

http://127.0.0.1:%d {
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

// run starts the hub fresh, runs the scenario against it, and stops it.
func run(herald string, h hub, sc scenario, dir string) (map[string]any, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := h.start(dir, port)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if err := waitPort(port, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%w; its output: %s", err, logs.String())
	}
	args := append(append([]string{"bench"}, sc.args...), "-url", fmt.Sprintf("http://127.0.0.1:%d/.well-known/mercure", port),
		"-key", key, "-pid", fmt.Sprint(cmd.Process.Pid), "-json")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	b := exec.CommandContext(ctx, herald, args...)
	b.Stdout, b.Stderr = &stdout, &stderr
	err = b.Run()
	var res map[string]any
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return nil, fmt.Errorf("bench: %v, %v: %s", err, jerr, stderr.String())
	}
	if err != nil {
		res["verification_failed"] = true
	}
	return res, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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

func field(runs []map[string]any, path ...string) []float64 {
	var out []float64
	for _, r := range runs {
		var v any = r
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		if f, ok := v.(float64); ok {
			out = append(out, f)
		}
	}
	return out
}

// report prints, per scenario, a table of medians with the ratio of each
// hub to herald.
func report(w *os.File, scenarios []scenario, names []string, results map[string]map[string][]map[string]any, rounds int) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\nMedians of %d rounds, %s, %s.\n", rounds, time.Now().UTC().Format("2006-01-02"), host)
	for _, sc := range scenarios {
		fmt.Fprintf(w, "\n**%s** (`herald bench %s`)\n\n", sc.name, strings.Join(sc.args, " "))
		fmt.Fprintf(w, "| hub | acknowledged/s | %s ÷ this | POST p50 | POST p99 | delivery p99 | hub CPU µs per event | checks |\n", names[0])
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		base := median(field(results[sc.name][names[0]], "publish_rate"))
		for _, name := range names {
			runs := results[sc.name][name]
			rate := median(field(runs, "publish_rate"))
			ok := "all events, once, in order"
			for _, r := range runs {
				if r["verification_failed"] == true {
					ok = "FAILED"
				}
			}
			ratio := "1"
			if rate > 0 {
				ratio = fmt.Sprintf("%.2f", base/rate)
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %.2f ms | %.2f ms | %.2f ms | %.0f | %s |\n", name, rate, ratio,
				median(field(runs, "post_latency", "p50_ms")), median(field(runs, "post_latency", "p99_ms")),
				median(field(runs, "delivery_latency", "p99_ms")), median(field(runs, "hub_cpu_seconds_per_million_deliveries")), ok)
		}
	}
}
