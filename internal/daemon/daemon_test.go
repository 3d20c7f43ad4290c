package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/internal/daemon"
	"github.com/redis/go-redis/v9"
)

var discard = slog.New(slog.DiscardHandler)

const key = "0123456789abcdef0123456789abcdef" // 256 bits, for HS256

// open opens a node of cfg and closes it at the end of the test.
func open(t *testing.T, cfg config.Config) *daemon.Node {
	t.Helper()
	plan, err := daemon.NewPlan(cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	n, err := plan.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.Hub.Close()
		if err := n.History.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// /readyz fails from the moment a shutdown begins, before the hub has
// stopped; /healthz does not.
func TestReadyzStopping(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store, cfg.PublisherJWTKey = "memory", key
	n := open(t, cfg)
	if code, body := get(n.Handler, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a running hub: %d %s", code, body)
	}
	n.BeginShutdown()
	if code, body := get(n.Handler, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz once stopping: %d %s", code, body)
	}
	if code, _ := get(n.Handler, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz once stopping: %d", code)
	}

	// A hub shut down without BeginShutdown is not ready either.
	m := open(t, cfg)
	_ = m.Hub.Close()
	if code, body := get(m.Handler, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz of a hub shut down: %d %s", code, body)
	}
}

// The page takes every path the hub and the health endpoints do not, and
// the metrics are on the main address only when asked.
func TestRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		ui               bool
		metrics          string
		rootOK, metricOK bool
	}{
		{name: "page and metrics", ui: true, metrics: config.MetricsOnMain, rootOK: true, metricOK: true},
		{name: "no page, metrics elsewhere", ui: false, metrics: "127.0.0.1:0"},
		{name: "no page, no metrics", ui: false, metrics: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Store, cfg.PublisherJWTKey, cfg.UI, cfg.MetricsAddr = "memory", key, tc.ui, tc.metrics
			n := open(t, cfg)
			if (n.Page != nil) != tc.ui {
				t.Errorf("Page set: %t, want %t", n.Page != nil, tc.ui)
			}
			if code, body := get(n.Handler, "/"); (code == http.StatusOK) != tc.rootOK {
				t.Errorf("GET /: %d %s", code, body)
			}
			if code, body := get(n.Handler, "/metrics"); (code == http.StatusOK) != tc.metricOK {
				t.Errorf("GET /metrics: %d %s", code, body)
			}
			// The hub answers at its path either way: it refuses an
			// anonymous subscriber, which the page would not.
			if code, body := get(n.Handler, hub.Path); code != http.StatusUnauthorized || !strings.Contains(body, "missing_token") {
				t.Errorf("GET %s: %d %s", hub.Path, code, body)
			}
		})
	}
}

// Without a key, the plan is the development setup, whose defaults each
// setting overrides; with one, the defaults are closed.
func TestPlanDevelopmentSetup(t *testing.T) {
	t.Parallel()
	no, yes := false, true
	for _, tc := range []struct {
		name                     string
		key                      string
		anonymous, subscriptions *bool
		cors                     []string

		dev                bool
		wantAnon, wantSubs bool
		wantCORS           []string
	}{
		{name: "development defaults", dev: true, wantAnon: true, wantSubs: true, wantCORS: []string{"*"}},
		{name: "development, set", anonymous: &no, subscriptions: &no, cors: []string{}, dev: true, wantCORS: []string{}},
		{name: "development, one origin", cors: []string{"https://example.com"}, dev: true, wantAnon: true, wantSubs: true, wantCORS: []string{"https://example.com"}},
		{name: "a key", key: key},
		{name: "a key, set", key: key, anonymous: &yes, subscriptions: &yes, cors: []string{"*"}, wantAnon: true, wantSubs: true, wantCORS: []string{"*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.PublisherJWTKey, cfg.Anonymous, cfg.Subscriptions, cfg.CORSOrigins = tc.key, tc.anonymous, tc.subscriptions, tc.cors
			plan, err := daemon.NewPlan(cfg, discard)
			if err != nil {
				t.Fatal(err)
			}
			if (plan.Dev != nil) != tc.dev {
				t.Fatalf("development setup: %t, want %t", plan.Dev != nil, tc.dev)
			}
			hc := plan.Hub
			if hc.Anonymous != tc.wantAnon || hc.Subscriptions != tc.wantSubs || !slices.Equal(hc.CORSOrigins, tc.wantCORS) {
				t.Errorf("hub given anonymous %t, subscriptions %t, CORS %q; want %t, %t, %q",
					hc.Anonymous, hc.Subscriptions, hc.CORSOrigins, tc.wantAnon, tc.wantSubs, tc.wantCORS)
			}
			if d := plan.Dev; d != nil {
				if d.Key == "" || d.Token == "" {
					t.Errorf("development setup without a key or token: %+v", d)
				}
				if d.Anonymous != hc.Anonymous || d.Subscriptions != hc.Subscriptions || !slices.Equal(d.CORSOrigins, hc.CORSOrigins) {
					t.Errorf("development setup says %+v, the hub was given %t, %t, %q", d, hc.Anonymous, hc.Subscriptions, hc.CORSOrigins)
				}
			}
		})
	}
}

// A key the hub cannot use is an error of the plan, named by its option.
func TestPlanBadKey(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.PublisherJWTKey, cfg.PublisherJWTAlg = "not a PEM key", "RS256"
	if _, err := daemon.NewPlan(cfg, discard); err == nil || !strings.HasPrefix(err.Error(), "publisher-jwt-key: ") {
		t.Fatalf("NewPlan with a bad RS256 key: %v", err)
	}
}

// NewPlan opens nothing (check-config relies on it); Open opens the store
// the configuration names, and says where.
func TestOpenStores(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		store, where, made string
	}{
		{store: "memory", where: "in memory, the last "},
		{store: "pebble", where: "(pebble), the last ", made: "history"},
		{store: "bolt", where: "(bolt), the last ", made: "history.db"},
	} {
		t.Run(tc.store, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.Store, cfg.PublisherJWTKey = tc.store, key
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			plan, err := daemon.NewPlan(cfg, discard)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				t.Fatalf("NewPlan touched the data directory: %v", err)
			}
			n, err := plan.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = n.Hub.Close()
				if err := n.History.Close(); err != nil {
					t.Error(err)
				}
			}()
			if !strings.Contains(n.Where, tc.where) {
				t.Errorf("Where: %q, want it to contain %q", n.Where, tc.where)
			}
			if tc.made != "" {
				if _, err := os.Stat(filepath.Join(cfg.DataDir, tc.made)); err != nil {
					t.Errorf("the store is not in the data directory: %v", err)
				}
			}
		})
	}
}

// A store the daemon does not know is refused when opened, with nothing
// left open.
func TestOpenUnknownStore(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Store, cfg.PublisherJWTKey = "paper", key
	plan, err := daemon.NewPlan(cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Open(); err == nil || err.Error() != `unknown store "paper"` {
		t.Fatalf("Open of an unknown store: %v", err)
	}
}

// With -redis the history is a Redis Stream under the configured prefix,
// whatever -store says; the data directory is not touched, and Where names
// the server and the prefix without the password.
func TestOpenRedis(t *testing.T) {
	t.Parallel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "herald-daemon-test-" + hex.EncodeToString(b[:])
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() {
		k := "{" + prefix + "}:"
		_ = rdb.Del(context.Background(), k+"epoch", k+"last", k+"first", k+"log", k+"ids").Err()
		_ = rdb.Close()
	})
	cfg := config.Default()
	cfg.PublisherJWTKey = key
	cfg.Redis, cfg.RedisPrefix = "redis://127.0.0.1:6379/0", prefix
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	n := open(t, cfg)
	if want := "redis://127.0.0.1:6379/0, prefix " + prefix + " (redis), the last 1000000 events"; n.Where != want {
		t.Errorf("Where: %q, want %q", n.Where, want)
	}
	if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
		t.Errorf("a Redis history touched the data directory: %v", err)
	}
	id, err := n.Hub.Publish(t.Context(), hub.Update{Topics: []string{"t"}, Data: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := rdb.HGet(t.Context(), "{"+prefix+"}:ids", id).Result(); err != nil || pos != "1" {
		t.Fatalf("the publication is not in Redis: %q %v", pos, err)
	}
}
