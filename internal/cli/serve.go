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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/internal/logging"
	"github.com/herald-sse/herald/internal/metrics"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/pebblestore"
	"github.com/herald-sse/herald/web"
)

func runServe(e *env, args []string) (err error) {
	loaded, checked, err := configure(e, "serve", "[flags]", args, false)
	if err != nil {
		return err
	}
	cfg := loaded.Config
	logger := newLogger(cfg, e.stderr)
	if cfg.LogFormat == "json" {
		// Every line of stderr is JSON: the error that ends the command
		// too.
		defer func() {
			if err != nil && !errors.As(err, new(reported)) {
				logger.Error("herald serve: " + err.Error())
				err = reported{err}
			}
		}()
	}
	if len(checked.problems) > 0 {
		if cfg.LogFormat == "json" {
			for _, p := range checked.problems {
				logger.Error("configuration", "problem", p)
			}
			return reported{configError{checked.problems}}
		}
		return configError{checked.problems}
	}
	for _, w := range checked.warnings {
		logger.Warn("configuration", "warning", w)
	}

	hc, dev, err := hubConfig(cfg, logger)
	if err != nil {
		return usageError{err}
	}
	var tlsConfig *tls.Config
	var devTLS *devCert
	switch {
	case cfg.TLSCert != "":
		pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("tls-cert and tls-key: %w", err)
		}
		// With a certificate here, h.Serve speaks TLS, and HTTP/2.
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	case cfg.DevTLS:
		if devTLS, err = loadDevCert(cfg.DataDir, time.Now()); err != nil {
			return err
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{devTLS.pair}}
	}
	var protocols *http.Protocols
	if cfg.H2C {
		// HTTP/2 with prior knowledge beside HTTP/1.1: net/http tells
		// them apart by the preface, which h.Serve hands over untouched.
		protocols = new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
	}
	// The address is taken before the history is opened, which can take
	// seconds: a taken port fails at once, and meanwhile probes learn
	// that the process is alive but not ready.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return listenError("addr", cfg.Addr, err)
	}
	var redirectLn net.Listener
	if cfg.HTTPRedirectAddr != "" {
		if redirectLn, err = net.Listen("tcp", cfg.HTTPRedirectAddr); err != nil {
			_ = ln.Close()
			return listenError("http-redirect-addr", cfg.HTTPRedirectAddr, err)
		}
		defer redirectLn.Close()
	}
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			TLSConfig:         tlsConfig.Clone(), // a server adds to its own
			Protocols:         protocols,
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second, // a slow client cannot hold a connection before its request
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
			// No WriteTimeout: streams last. Each write to a subscriber has
			// its own deadline, the dispatch timeout.
		}
	}
	early := serveStarting(newServer(starting()), ln)
	if e.BeforeOpen != nil {
		e.BeforeOpen(ln.Addr().String())
	}
	history, where, err := openHistory(cfg, logger)
	if err != nil {
		early.stop()
		_ = ln.Close()
		return err
	}
	hc.Log = history
	h, err := hub.New(hc)
	if err != nil {
		early.stop()
		_ = ln.Close()
		_ = history.Close()
		return err
	}
	early.stop()

	var stopping atomic.Bool
	var page http.Handler
	if cfg.UI {
		wc := web.Config{Anonymous: hc.Anonymous, Subscriptions: hc.Subscriptions, CORSOrigins: hc.CORSOrigins, CookieName: cfg.CookieName}
		if dev != nil {
			wc.DevKey = []byte(dev.key) // the demo's token endpoint: development setup only
		}
		page = web.Handler(wc)
	}
	srv := newServer(routes(h, &stopping, cfg.MetricsAddr == config.MetricsOnMain, page))
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	base := scheme + "://" + displayAddr(ln.Addr())
	// The start-up lines show whatever the level: they say where the hub
	// is, and how to use the development setup.
	startup := logging.New(e.stderr, cfg.LogFormat, "info")
	startup.Info(fmt.Sprintf("herald %s: the hub is at %s%s", Version(), base, hub.Path), "history", where)
	if page != nil {
		startup.Info(fmt.Sprintf("the page is at %s/ (debugger, trip demo); -ui=false turns it off", base))
	}
	if dev != nil {
		logDevSetup(startup, cfg.LogFormat, e.stderr, base, dev)
	}
	if devTLS != nil {
		logDevTLS(startup, cfg.LogFormat, e.stderr, base, devTLS)
	}
	if redirectLn != nil {
		defer serveRedirect(redirectLn, ln.Addr(), srv.ErrorLog)()
		startup.Info("redirecting plain HTTP to HTTPS", "from", "http://"+displayAddr(redirectLn.Addr()), "to", base)
	}
	if cfg.MetricsAddr != "" && cfg.MetricsAddr != config.MetricsOnMain {
		stop, err := serveMetrics(cfg.MetricsAddr, h, logger, startup)
		if err != nil {
			_ = ln.Close()
			_ = h.Close()
			return err
		}
		defer stop()
	}

	if e.Listening != nil {
		e.Listening(ln.Addr().String())
	}

	served := make(chan error, 1)
	go func() { served <- h.Serve(srv, ln) }()
	if cfg.PprofAddr != "" {
		if err := servePprof(cfg.PprofAddr, logger); err != nil {
			_ = h.Close()
			_ = srv.Close()
			<-served
			return errors.Join(err, history.Close())
		}
	}
	select {
	case err := <-served:
		_ = h.Close()
		return errors.Join(fmt.Errorf("serve: %w", err), history.Close())
	case <-e.ctx.Done():
	}

	// Not ready from now on: a load balancer stops sending publishers.
	stopping.Store(true)
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
	err = errors.Join(err, <-hubDone)
	return errors.Join(err, closeHistory(ctx, history))
}

// closeHistory closes the history, or gives up when ctx ends: a store
// stuck on a failed disk does not hold the process.
func closeHistory(ctx context.Context, history hub.Log) error {
	done := make(chan error, 1)
	go func() { done <- history.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errors.New("the history did not close within the shutdown timeout")
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

// starting serves while the history opens: alive, not ready, and every
// other request refused for a moment.
func starting() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: starting: opening the history", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr.Set("Retry-After", "1")
		hdr.Set("Content-Type", "application/json")
		hdr.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"unavailable","message":"the hub is starting"}`+"\n")
	})
	return mux
}

// earlyServer serves a listener until stop, which leaves the listener
// open and accepting nothing, for the hub's server to take over.
type earlyServer struct {
	srv    *http.Server
	ln     *handoff
	served chan struct{}
}

func serveStarting(srv *http.Server, ln net.Listener) *earlyServer {
	e := &earlyServer{srv: srv, ln: &handoff{Listener: ln}, served: make(chan struct{})}
	go func() {
		defer close(e.served)
		if srv.TLSConfig != nil {
			_ = srv.ServeTLS(e.ln, "", "")
		} else {
			_ = srv.Serve(e.ln)
		}
	}()
	return e
}

// stop stops accepting, finishes the answers under way (each a moment),
// closes the server's connections, and gives the listener back.
func (e *earlyServer) stop() {
	e.ln.pause()
	<-e.served
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if e.srv.Shutdown(ctx) != nil {
		_ = e.srv.Close()
	}
	e.ln.resume()
}

// handoff is a listener that a server can stop accepting from without
// closing it: pause wakes a blocked Accept with a deadline, after which
// Accept fails as a closed listener does; resume clears the deadline.
type handoff struct {
	net.Listener
	paused atomic.Bool
}

func (l *handoff) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.paused.Load() {
		return nil, net.ErrClosed
	}
	return c, err
}

// Close pauses: the listener outlives the server.
func (l *handoff) Close() error {
	l.pause()
	return nil
}

func (l *handoff) pause() {
	if l.paused.Swap(true) {
		return
	}
	if d, ok := l.Listener.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(time.Now())
	}
}

func (l *handoff) resume() {
	if d, ok := l.Listener.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(time.Time{})
	}
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

// serveMetrics serves the hub's metrics at /metrics on a listener of
// their own, until stop is called, and says where on startup.
func serveMetrics(addr string, h *hub.Hub, logger, startup *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(h))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	startup.Info("serving metrics", "url", "http://"+displayAddr(ln.Addr())+"/metrics")
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// devSetup is the configuration the daemon makes up when it is given no
// key: a random key for both publishers and subscribers, and a token.
type devSetup struct {
	key   string
	token string
	// What the hub was given, for the start-up lines: the development
	// setup's defaults or what was set.
	anonymous, subscriptions bool
	cors                     []string
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
	// The development setup is Mercure's: anonymous subscribers, the
	// subscriptions API, and pages on any origin; each can be set.
	anonymous, subscriptions, cors := dev != nil, dev != nil, cfg.CORSOrigins
	if cfg.Anonymous != nil {
		anonymous = *cfg.Anonymous
	}
	if cfg.Subscriptions != nil {
		subscriptions = *cfg.Subscriptions
	}
	if cors == nil && dev != nil {
		cors = []string{"*"}
	}
	if dev != nil {
		dev.anonymous, dev.subscriptions, dev.cors = anonymous, subscriptions, cors
	}
	hc := hub.Config{
		PublisherKey:     pk,
		SubscriberKey:    sk,
		Anonymous:        anonymous,
		CookieName:       cfg.CookieName,
		PublishOrigins:   cfg.PublishOrigins,
		CORSOrigins:      cors,
		Subscriptions:    subscriptions,
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
	return logging.New(w, cfg.LogFormat, cfg.LogLevel)
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

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// logDevSetup tells how to use the development setup: as text a person
// reads (and copies commands from), beside the log, in text format; as
// one record with the same fields in json format.
func logDevSetup(logger *slog.Logger, format string, w io.Writer, base string, dev *devSetup) {
	hubURL := base + hub.Path
	if format == "json" {
		logger.Info("development setup: no key is configured, so herald made one up for this run; set HERALD_PUBLISHER_JWT_KEY (or MERCURE_PUBLISHER_JWT_KEY) to choose your own",
			"key", dev.key, "alg", "HS256", "anonymous", dev.anonymous, "subscriptions", dev.subscriptions, "cors_origins", dev.cors, "token", dev.token,
			"subscribe", []string{
				fmt.Sprintf("herald subscribe -hub %s -topic demo", base),
				fmt.Sprintf("curl -N '%s?topic=demo'", hubURL),
			},
			"publish", []string{
				fmt.Sprintf("herald publish -hub %s -key %s -topic demo -data hello", base, dev.key),
				fmt.Sprintf("curl -d topic=demo -d data=hello -H 'Authorization: Bearer %s' %s", dev.token, hubURL),
			})
		return
	}
	printDevSetup(w, base, dev)
}

func printDevSetup(w io.Writer, base string, dev *devSetup) {
	hubURL := base + hub.Path
	var b strings.Builder
	b.WriteString("\nDevelopment setup: no key is configured, so herald made one up for this run.\n")
	fmt.Fprintf(&b, "  Key (HS256, publishers and subscribers): %s\n", dev.key)
	b.WriteString("  Set HERALD_PUBLISHER_JWT_KEY (or MERCURE_PUBLISHER_JWT_KEY) to choose your own.\n")
	fmt.Fprintf(&b, "  Anonymous subscribers: %s. Subscriptions API: %s. Origins allowed by CORS: %s.\n",
		pick(dev.anonymous, "allowed", "refused"), pick(dev.subscriptions, "on", "off"), cmp.Or(strings.Join(dev.cors, " "), "none"))
	if slices.Contains(dev.cors, "*") {
		b.WriteString("  (As in Mercure's development setup, pages on any origin may subscribe and publish with\n")
		b.WriteString("  credentials; -cors-origins lists yours.)\n")
	}
	b.WriteString("  A token that may publish and subscribe to every topic:\n")
	fmt.Fprintf(&b, "    %s\n\n", dev.token)
	b.WriteString("  Subscribe:\n")
	fmt.Fprintf(&b, "    herald subscribe -hub %s -topic demo\n", base)
	fmt.Fprintf(&b, "    curl -N '%s?topic=demo'\n", hubURL)
	b.WriteString("  Publish:\n")
	fmt.Fprintf(&b, "    herald publish -hub %s -key %s -topic demo -data hello\n", base, dev.key)
	fmt.Fprintf(&b, "    curl -d topic=demo -d data=hello -H 'Authorization: Bearer %s' %s\n\n", dev.token, hubURL)
	_, _ = io.WriteString(w, b.String())
}
