package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/internal/cli"
	"github.com/herald-sse/herald/sse"
)

// jsonRecords parses every line of out as a JSON record, failing the test
// on one that is not.
func jsonRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line of stderr is not JSON: %q\nstderr:\n%s", line, out)
		}
		recs = append(recs, rec)
	}
	return recs
}

// record returns the first record whose message holds msg, or fails.
func record(t *testing.T, recs []map[string]any, msg string) map[string]any {
	t.Helper()
	for _, r := range recs {
		if m, _ := r["msg"].(string); strings.Contains(m, msg) {
			return r
		}
	}
	t.Fatalf("no record %q among %v", msg, recs)
	return nil
}

// With -log-format json every line of serve's stderr is JSON, from the
// banner and the development setup to the end, and durations are text.
func TestServeLogsJSON(t *testing.T) {
	t.Parallel()
	base, stderr, stop := serve(t, nil, "-store", "memory", "-log-format", "json", "-log-level", "debug")
	recs := jsonRecords(t, stderr.String())
	record(t, recs, "the hub is at "+base)
	dev := record(t, recs, "development setup")
	tok, _ := dev["token"].(string)
	if tok == "" || dev["key"] == nil || len(dev["publish"].([]any)) != 2 {
		t.Fatalf("development setup record: %v", dev)
	}

	resp, err := http.Get(base + "/.well-known/mercure?topic=demo")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := publish(t, base, tok, url.Values{"topic": {"demo"}, "data": {"hello"}}); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	var ev sse.Event
	if err := sse.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Data != "hello" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	resp.Body.Close()
	if status, _ := publish(t, base, "", url.Values{"topic": {"demo"}}); status != 401 {
		t.Fatalf("publish without a token: %d", status)
	}
	waitFor(t, stderr, "subscriber left")
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}

	recs = jsonRecords(t, stderr.String())
	record(t, recs, "hub: subscriber joined")
	record(t, recs, "hub: published")
	if r := record(t, recs, "hub: request refused"); r["error"] != "missing_token" || r["level"] != "INFO" {
		t.Fatalf("refusal record: %v", r)
	}
	left := record(t, recs, "hub: subscriber left")
	if d, err := time.ParseDuration(left["duration"].(string)); err != nil || d <= 0 || left["events"] != float64(1) {
		t.Fatalf("departure record: %v", left)
	}
	if r := record(t, recs, "shutting down"); r["timeout"] != "10s" {
		t.Fatalf("shutdown record: %v", r)
	}
}

// With -log-format json, the error that stops serve is a JSON record too.
func TestServeFailsInJSON(t *testing.T) {
	t.Parallel()
	base, _, _ := serve(t, nil, "-store", "memory")
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"serve", "-store", "memory", "-log-format", "json",
		"-addr", strings.TrimPrefix(base, "http://")}, cli.Env{Stdout: io.Discard, Stderr: &stderr})
	if code != cli.ExitFailure {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	r := record(t, jsonRecords(t, stderr.String()), "address already in use")
	if r["level"] != "ERROR" {
		t.Fatalf("the error at %v", r["level"])
	}
}

// Metrics are served on a listener of their own with -metrics-addr, on the
// hub's with -metrics-addr main, and not at all by default.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	scrape := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name string
		args []string
		// where returns the URL of /metrics, or "" when the hub's
		// /metrics must be 404.
		where func(t *testing.T, base string, recs []map[string]any) string
	}{
		{"none by default", nil, func(*testing.T, string, []map[string]any) string { return "" }},
		{"on the hub's listener", []string{"-metrics-addr", "main"},
			func(_ *testing.T, base string, _ []map[string]any) string { return base + "/metrics" }},
		{"on a listener of their own", []string{"-metrics-addr", "127.0.0.1:0"},
			func(t *testing.T, _ string, recs []map[string]any) string {
				return record(t, recs, "metrics")["url"].(string)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base, stderr, _ := serve(t, nil, append([]string{"-store", "memory", "-log-format", "json"}, c.args...)...)
			u := c.where(t, base, jsonRecords(t, stderr.String()))
			if u == "" || !strings.HasPrefix(u, base) {
				if status, _ := scrape(base + "/metrics"); status != http.StatusNotFound {
					t.Fatalf("the hub's /metrics: %d, want 404", status)
				}
			}
			if u == "" {
				return
			}
			status, body := scrape(u)
			if status != http.StatusOK || !strings.Contains(body, "herald_publications_total 0") ||
				!strings.Contains(body, "go_goroutines") {
				t.Fatalf("%s: %d\n%s", u, status, body)
			}
		})
	}
}

// A bad -metrics-addr is a usage error naming the flag.
func TestServeBadMetricsAddr(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"serve", "-metrics-addr", "9090"},
		cli.Env{Stdout: io.Discard, Stderr: &stderr})
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "metrics-addr") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
