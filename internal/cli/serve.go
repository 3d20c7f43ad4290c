package cli

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/pebblestore"
)

func runServe(e *env, args []string) error {
	loaded, checked, err := configure(e, "serve", "[flags]", args, false)
	if err != nil {
		return err
	}
	if len(checked.problems) > 0 {
		return configError{checked.problems}
	}
	cfg := loaded.Config
	logger := newLogger(cfg, e.stderr)
	for _, w := range checked.warnings {
		logger.Warn("configuration", "warning", w)
	}

	hc, dev, err := hubConfig(cfg, logger)
	if err != nil {
		return usageError{err}
	}
	history, where, err := openHistory(cfg, logger)
	if err != nil {
		return err
	}
	defer history.Close()
	hc.Log = history
	h, err := hub.New(hc)
	if err != nil {
		return err
	}

	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			_ = h.Close()
			return fmt.Errorf("tls-cert and tls-key: %w", err)
		}
		// With a certificate here, h.Serve speaks TLS, and HTTP/2.
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = h.Close()
		return listenError("addr", cfg.Addr, err)
	}
	srv := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           routes(h),
		ReadHeaderTimeout: 10 * time.Second, // a slow client cannot hold a connection before its request
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No WriteTimeout: streams last. Each write to a subscriber has
		// its own deadline, the dispatch timeout.
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	base := scheme + "://" + displayAddr(ln.Addr())
	fmt.Fprintf(e.stderr, "herald %s: the hub is at %s%s; history: %s\n", Version(), base, hub.Path, where)
	if dev != nil {
		printDevSetup(e.stderr, base, dev)
	}
	if e.Listening != nil {
		e.Listening(ln.Addr().String())
	}

	if cfg.PprofAddr != "" {
		if err := servePprof(cfg.PprofAddr, logger); err != nil {
			_ = h.Close()
			return err
		}
	}

	served := make(chan error, 1)
	go func() { served <- h.Serve(srv, ln) }()
	select {
	case err := <-served:
		_ = h.Close()
		return fmt.Errorf("serve: %w", err)
	case <-e.ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Shutdown(ctx) }()
	err = srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	// The hub's own answers to publications end with Serve.
	select {
	case <-served:
	case <-ctx.Done():
	}
	return errors.Join(err, <-hubDone)
}

// routes serves the hub and the health endpoints.
func routes(h *hub.Hub) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := h.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// servePprof serves Go's profiling endpoints on their own listener, for
// as long as the process runs.
func servePprof(addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError("pprof-addr", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	logger.Info("profiling endpoints", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

// devSetup is the configuration the daemon makes up when it is given no
// key: a random key for both publishers and subscribers, and a token.
type devSetup struct {
	key   string
	token string
}

// hubConfig turns the daemon's configuration into the hub's.
func hubConfig(cfg config.Config, logger *slog.Logger) (hub.Config, *devSetup, error) {
	var dev *devSetup
	pubKey, subKey := cfg.PublisherJWTKey, cfg.SubscriberJWTKey
	if pubKey == "" {
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		key := hex.EncodeToString(raw[:])
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"mercure": map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}},
		}).SignedString([]byte(key))
		if err != nil {
			return hub.Config{}, nil, err
		}
		dev = &devSetup{key: key, token: token}
		pubKey, cfg.PublisherJWTAlg = key, "HS256"
	}
	pk, err := hub.NewKey(cfg.PublisherJWTAlg, []byte(pubKey))
	if err != nil {
		return hub.Config{}, nil, fmt.Errorf("publisher-jwt-key: %w", err)
	}
	sk := pk
	if subKey != "" {
		alg := cfg.SubscriberJWTAlg
		if alg == "" {
			alg = cfg.PublisherJWTAlg
		}
		if sk, err = hub.NewKey(alg, []byte(subKey)); err != nil {
			return hub.Config{}, nil, fmt.Errorf("subscriber-jwt-key: %w", err)
		}
	}
	anonymous := dev != nil
	if cfg.Anonymous != nil {
		anonymous = *cfg.Anonymous
	}
	hc := hub.Config{
		PublisherKey:     pk,
		SubscriberKey:    sk,
		Anonymous:        anonymous,
		CookieName:       cfg.CookieName,
		PublishOrigins:   cfg.PublishOrigins,
		CORSOrigins:      cfg.CORSOrigins,
		Subscriptions:    cfg.Subscriptions,
		Heartbeat:        orNone(cfg.Heartbeat),
		BatchInterval:    orNone(cfg.BatchInterval),
		MaxBatchInterval: cfg.MaxBatchInterval,
		MaxLifetime:      orNone(cfg.WriteTimeout),
		DispatchTimeout:  cfg.DispatchTimeout,
		MaxBodySize:      cfg.MaxBodySize,
		MaxTopics:        cfg.MaxTopics,
		MaxConnections:   cfg.MaxConnections,
		Logger:           logger,

		MaxSelectors:      cfg.MaxSelectors,
		MaxClaimSelectors: cfg.MaxClaimSelectors,
		MaxTemplates:      cfg.MaxTemplates,
	}
	if cfg.MaxConnections == 0 {
		hc.MaxConnections = -1 // the daemon's 0 is no limit, the hub's is its default
	}
	return hc, dev, nil
}

// openHistory opens the store the configuration names, and says where it is.
func openHistory(cfg config.Config, logger *slog.Logger) (hub.Log, string, error) {
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

// orNone maps the daemon's "0 means none" to the hub's negative value.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// displayAddr turns a listening address into one a person can paste.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func printDevSetup(w io.Writer, base string, dev *devSetup) {
	hubURL := base + hub.Path
	var b strings.Builder
	b.WriteString("\nDevelopment setup: no key is configured, so herald made one up for this run.\n")
	fmt.Fprintf(&b, "  Key (HS256, publishers and subscribers): %s\n", dev.key)
	b.WriteString("  Set HERALD_PUBLISHER_JWT_KEY (or MERCURE_PUBLISHER_JWT_KEY) to choose your own.\n")
	b.WriteString("  Anonymous subscribers are allowed. A token that may publish and subscribe to every topic:\n")
	fmt.Fprintf(&b, "    %s\n\n", dev.token)
	b.WriteString("  Subscribe:\n")
	fmt.Fprintf(&b, "    herald subscribe -hub %s -topic demo\n", base)
	fmt.Fprintf(&b, "    curl -N '%s?topic=demo'\n", hubURL)
	b.WriteString("  Publish:\n")
	fmt.Fprintf(&b, "    herald publish -hub %s -key %s -topic demo -data hello\n", base, dev.key)
	fmt.Fprintf(&b, "    curl -d topic=demo -d data=hello -H 'Authorization: Bearer %s' %s\n\n", dev.token, hubURL)
	_, _ = io.WriteString(w, b.String())
}
