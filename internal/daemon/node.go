package daemon

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/internal/metrics"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/pebblestore"
	"github.com/herald-sse/herald/store/redisstore"
	"github.com/herald-sse/herald/web"
)

// Node is the running parts of a herald node. The caller serves Handler,
// and at the end shuts down Hub and then closes History, which Node does
// not do for it: the caller bounds both with its shutdown deadline.
type Node struct {
	// Hub is the hub, with History as its log.
	Hub *hub.Hub
	// History is the store the configuration names.
	History hub.Log
	// Where says where the history is, for the start-up line.
	Where string
	// Page is the web page, nil unless the configuration asks for it
	// (config.Config.UI). Handler serves it.
	Page http.Handler
	// Handler serves the hub, /healthz, /readyz, the page and, when the
	// configuration puts them on the main address, the metrics.
	Handler http.Handler

	stopping atomic.Bool
}

// Open opens the history, which can take seconds, and makes the hub and
// the handlers. On an error, nothing is left open.
func (p *Plan) Open() (*Node, error) {
	history, where, err := openHistory(p.cfg, p.logger)
	if err != nil {
		return nil, err
	}
	hc := p.Hub
	hc.Log = history
	if rs, ok := history.(*redisstore.Store); ok && hc.Subscriptions {
		// A cluster's subscriptions API lists every node's subscribers.
		hc.Presence = rs.NewPresence(redisstore.PresenceConfig{})
	}
	h, err := hub.New(hc)
	if err != nil {
		_ = history.Close()
		return nil, err
	}
	n := &Node{Hub: h, History: history, Where: where}
	if p.cfg.UI {
		wc := web.Config{Anonymous: hc.Anonymous, Subscriptions: hc.Subscriptions, CORSOrigins: hc.CORSOrigins, CookieName: p.cfg.CookieName}
		if p.Dev != nil {
			wc.DevKey = []byte(p.Dev.Key) // the demo's token endpoint: development setup only
		}
		n.Page = web.Handler(wc)
	}
	n.Handler = routes(h, &n.stopping, p.cfg.MetricsAddr == config.MetricsOnMain, n.Page)
	return n, nil
}

// BeginShutdown makes /readyz fail from now on, before the hub stops: a
// load balancer stops sending publishers. It is safe to call from any
// goroutine, and more than once.
func (n *Node) BeginShutdown() { n.stopping.Store(true) }

// openHistory opens the store the configuration names, and says where it is.
// A Redis history (cluster mode) takes precedence over the store.
func openHistory(cfg config.Config, logger *slog.Logger) (hub.Log, string, error) {
	if cfg.Redis != "" {
		size := cmp.Or(cfg.HistorySize, redisstore.DefaultSize)
		l, err := redisstore.Open(context.Background(), redisstore.Config{URL: cfg.Redis, Prefix: cfg.RedisPrefix, Size: size, MaxAge: cfg.HistoryMaxAge, Logger: logger})
		if err != nil {
			return nil, "", err
		}
		return l, fmt.Sprintf("%s (redis), the last %d events", l.Where(), size), nil
	}
	switch cfg.Store {
	case "memory":
		size := cmp.Or(cfg.HistorySize, hub.DefaultHistorySize)
		return hub.NewMemoryLog(hub.MemoryLogConfig{Size: size, MaxAge: cfg.HistoryMaxAge}),
			fmt.Sprintf("in memory, the last %d events", size), nil
	case "pebble":
		dir := filepath.Join(cfg.DataDir, "history")
		size := cmp.Or(cfg.HistorySize, pebblestore.DefaultSize)
		l, err := pebblestore.Open(pebblestore.Config{Dir: dir, Size: size, MaxAge: cfg.HistoryMaxAge, Logger: logger})
		return l, fmt.Sprintf("%s (pebble), the last %d events", dir, size), err
	case "bolt":
		path := filepath.Join(cfg.DataDir, "history.db")
		size := cmp.Or(cfg.HistorySize, boltstore.DefaultSize)
		l, err := boltstore.Open(boltstore.Config{Path: path, Size: size, MaxAge: cfg.HistoryMaxAge, Logger: logger})
		return l, fmt.Sprintf("%s (bolt), the last %d events", path, size), err
	default:
		return nil, "", fmt.Errorf("unknown store %q", cfg.Store)
	}
}

// routes serves the hub, the health endpoints and, if asked, the metrics
// and the web page (page, when not nil, gets every path the others do
// not take). /readyz says whether the hub can take publications: not once
// stopping is set, nor while the history refuses events.
func routes(h *hub.Hub, stopping *atomic.Bool, withMetrics bool, page http.Handler) http.Handler {
	mux := http.NewServeMux()
	if page != nil {
		mux.Handle(hub.Path, h)
		mux.Handle(hub.Path+"/", h)
		mux.Handle("/", page)
	} else {
		mux.Handle("/", h)
	}
	if withMetrics {
		mux.Handle("GET /metrics", metrics.Handler(h))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := h.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}
