package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/internal/daemon"
	"github.com/herald-sse/herald/internal/logging"
	"github.com/herald-sse/herald/internal/metrics"
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

	plan, err := daemon.NewPlan(cfg, logger)
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
	node, err := plan.Open()
	if err != nil {
		early.stop()
		_ = ln.Close()
		return err
	}
	early.stop()
	h, history := node.Hub, node.History

	srv := newServer(node.Handler)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	base := scheme + "://" + displayAddr(ln.Addr())
	// The start-up lines show whatever the level: they say where the hub
	// is, and how to use the development setup.
	startup := logging.New(e.stderr, cfg.LogFormat, "info")
	startup.Info(fmt.Sprintf("herald %s: the hub is at %s%s", Version(), base, hub.Path), "history", node.Where)
	if node.Page != nil {
		startup.Info(fmt.Sprintf("the page is at %s/ (debugger, trip demo); -ui=false turns it off", base))
	}
	if plan.Dev != nil {
		logDevSetup(startup, cfg.LogFormat, e.stderr, base, plan.Dev)
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
	node.BeginShutdown()
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
func logDevSetup(logger *slog.Logger, format string, w io.Writer, base string, dev *daemon.DevSetup) {
	hubURL := base + hub.Path
	if format == "json" {
		logger.Info("development setup: no key is configured, so herald made one up for this run; set HERALD_PUBLISHER_JWT_KEY (or MERCURE_PUBLISHER_JWT_KEY) to choose your own",
			"key", dev.Key, "alg", "HS256", "anonymous", dev.Anonymous, "subscriptions", dev.Subscriptions, "cors_origins", dev.CORSOrigins, "token", dev.Token,
			"subscribe", []string{
				fmt.Sprintf("herald subscribe -hub %s -topic demo", base),
				fmt.Sprintf("curl -N '%s?topic=demo'", hubURL),
			},
			"publish", []string{
				fmt.Sprintf("herald publish -hub %s -key %s -topic demo -data hello", base, dev.Key),
				fmt.Sprintf("curl -d topic=demo -d data=hello -H 'Authorization: Bearer %s' %s", dev.Token, hubURL),
			})
		return
	}
	printDevSetup(w, base, dev)
}

func printDevSetup(w io.Writer, base string, dev *daemon.DevSetup) {
	hubURL := base + hub.Path
	var b strings.Builder
	b.WriteString("\nDevelopment setup: no key is configured, so herald made one up for this run.\n")
	fmt.Fprintf(&b, "  Key (HS256, publishers and subscribers): %s\n", dev.Key)
	b.WriteString("  Set HERALD_PUBLISHER_JWT_KEY (or MERCURE_PUBLISHER_JWT_KEY) to choose your own.\n")
	fmt.Fprintf(&b, "  Anonymous subscribers: %s. Subscriptions API: %s. Origins allowed by CORS: %s.\n",
		pick(dev.Anonymous, "allowed", "refused"), pick(dev.Subscriptions, "on", "off"), cmp.Or(strings.Join(dev.CORSOrigins, " "), "none"))
	if slices.Contains(dev.CORSOrigins, "*") {
		b.WriteString("  (As in Mercure's development setup, pages on any origin may subscribe and publish with\n")
		b.WriteString("  credentials; -cors-origins lists yours.)\n")
	}
	b.WriteString("  A token that may publish and subscribe to every topic:\n")
	fmt.Fprintf(&b, "    %s\n\n", dev.Token)
	b.WriteString("  Subscribe:\n")
	fmt.Fprintf(&b, "    herald subscribe -hub %s -topic demo\n", base)
	fmt.Fprintf(&b, "    curl -N '%s?topic=demo'\n", hubURL)
	b.WriteString("  Publish:\n")
	fmt.Fprintf(&b, "    herald publish -hub %s -key %s -topic demo -data hello\n", base, dev.Key)
	fmt.Fprintf(&b, "    curl -d topic=demo -d data=hello -H 'Authorization: Bearer %s' %s\n\n", dev.Token, hubURL)
	_, _ = io.WriteString(w, b.String())
}
