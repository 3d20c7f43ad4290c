package cli

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
	"github.com/herald-sse/herald/internal/daemon"
	"github.com/herald-sse/herald/internal/fdlimit"
)

// runCheckConfig loads the configuration "herald serve" would run with,
// from the same flags, environment and file, and checks it as serve does,
// and a little further: whether it could listen on its addresses now. It
// prints every option with where its value came from, then the warnings
// and problems; any problem fails it.
func runCheckConfig(e *env, args []string) error {
	loaded, c, err := configure(e, "check-config", "[serve flags]", args, true)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, s := range loaded.Settings {
		value := s.Value
		if value == "" {
			value = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Flag, value, s.Source)
	}
	_ = tw.Flush()
	for _, w := range c.warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	for _, p := range c.problems {
		fmt.Fprintf(e.stderr, "problem: %s\n", p)
	}
	switch n := len(c.problems); n {
	case 0:
		fmt.Fprintln(e.stdout, "\nThe configuration is valid: herald serve would start with it.")
		return nil
	case 1:
		return errors.New("1 problem; herald serve would not start")
	default:
		return fmt.Errorf("%d problems; herald serve would not start", n)
	}
}

// configure parses the command line of serve or check-config (name), loads
// the configuration from it, the environment and the file, and checks it
// as far as can be done without starting the hub: the values, the keys,
// the certificate, the addresses and the data directory. It is the one
// path by which both commands see a configuration. dryRun is check-config's:
// it also tries to listen on the addresses, and warns of the development
// setup, which serve prints a banner for. The error is a usage error or
// flag.ErrHelp; the configuration's problems are in the checks.
func configure(e *env, name, synopsis string, args []string, dryRun bool) (config.Loaded, *checks, error) {
	fs := newFlags(e, name, synopsis)
	loader := config.Register(fs)
	if err := parse(fs, args); err != nil {
		return config.Loaded{}, nil, err
	}
	if fs.NArg() > 0 {
		return config.Loaded{}, nil, usagef("unexpected arguments: %q", fs.Args())
	}
	loaded, err := loader.Load(e.lookupEnv)
	cfg := loaded.Config
	c := &checks{now: time.Now(), dryRun: dryRun}
	c.warnings = append(c.warnings, loaded.Warnings...)
	c.problem(err)
	c.keys(cfg)
	c.tls(cfg)
	c.addr("addr", cfg.Addr)
	if cfg.PprofAddr != "" {
		c.addr("pprof-addr", cfg.PprofAddr)
		if sameAddr(cfg.PprofAddr, cfg.Addr) {
			c.problemf("pprof-addr: %s is also addr; give the profiling endpoints an address of their own", cfg.Addr)
		}
	}
	if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err == nil { // Load reported any other value
		c.addr("metrics-addr", cfg.MetricsAddr)
		if sameAddr(cfg.MetricsAddr, cfg.Addr) {
			c.problemf("metrics-addr: %s is also addr; write %q to serve /metrics on the hub's listener", cfg.Addr, config.MetricsOnMain)
		}
	}
	if cfg.HTTPRedirectAddr != "" {
		c.addr("http-redirect-addr", cfg.HTTPRedirectAddr)
		if sameAddr(cfg.HTTPRedirectAddr, cfg.Addr) {
			c.problemf("http-redirect-addr: %s is also addr; the redirection needs an address of its own, such as :80 beside :443", cfg.Addr)
		}
	}
	c.dataDir(cfg)
	if n, ok := fdlimit.Current(); ok {
		c.descriptors(cfg, n)
	}
	return loaded, c, nil
}

// checks gathers what check-config finds.
type checks struct {
	now      time.Time
	dryRun   bool // check-config's, not serve's
	warnings []string
	problems []string
}

// problem records err, one problem per joined error.
func (c *checks) problem(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			c.problem(e)
		}
		return
	}
	c.problems = append(c.problems, err.Error())
}

func (c *checks) problemf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checks) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// keys builds the hub's keys as serve would, and says what a missing or
// short key means. An algorithm that Validate refused is not tried again.
func (c *checks) keys(cfg config.Config) {
	if !slices.Contains(config.Algorithms, cfg.PublisherJWTAlg) ||
		cfg.SubscriberJWTAlg != "" && !slices.Contains(config.Algorithms, cfg.SubscriberJWTAlg) {
		return
	}
	plan, err := daemon.NewPlan(cfg, slog.New(slog.DiscardHandler))
	c.problem(err)
	if err == nil && plan.Dev != nil && c.dryRun {
		c.warnf("no publisher-jwt-key: herald serve would make up a random key at each start and allow anonymous subscribers, a development setup")
	}
	for _, k := range []struct{ name, key, alg string }{
		{"publisher-jwt-key", cfg.PublisherJWTKey, cfg.PublisherJWTAlg},
		{"subscriber-jwt-key", cfg.SubscriberJWTKey, cmp.Or(cfg.SubscriberJWTAlg, cfg.PublisherJWTAlg)},
	} {
		if k.key == "" || !strings.HasPrefix(k.alg, "HS") {
			continue
		}
		// RFC 7518, section 3.2: a key of the same size as the hash output
		// or larger.
		bits, _ := strconv.Atoi(k.alg[2:])
		if len(k.key)*8 < bits {
			c.warnf("%s: %d bytes is short for %s, which wants at least %d (RFC 7518, section 3.2)", k.name, len(k.key), k.alg, bits/8)
		}
	}
}

// tls loads the certificate and its key, and looks at their dates.
func (c *checks) tls(cfg config.Config) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		c.problemf("tls-cert and tls-key: %v", err)
		return
	}
	leaf := pair.Leaf
	switch {
	case leaf == nil:
	case c.now.After(leaf.NotAfter):
		c.problemf("tls-cert: %s expired on %s", cfg.TLSCert, leaf.NotAfter.UTC().Format(time.DateTime))
	case c.now.Before(leaf.NotBefore):
		c.problemf("tls-cert: %s is not valid before %s", cfg.TLSCert, leaf.NotBefore.UTC().Format(time.DateTime))
	case leaf.NotAfter.Sub(c.now) < 14*24*time.Hour:
		c.warnf("tls-cert: %s expires on %s, in less than 14 days", cfg.TLSCert, leaf.NotAfter.UTC().Format(time.DateTime))
	}
}

// addr checks that serve could listen on an address whose form Validate
// has checked: that its host resolves and, in a dry run, whether something
// listens there now (a warning only, since the hub that is to be replaced
// may be what listens).
func (c *checks) addr(name, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return // Validate said so
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return // Validate said so
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			c.problemf("%s: host %q: %v", name, host, err)
			return
		}
	}
	if !c.dryRun {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.warnf("%s: herald serve could not listen on %s now: %v", name, addr, err)
		return
	}
	_ = ln.Close()
}

// descriptorHeadroom is the fewest file descriptors check-config wants
// left beside max-connections, as many as the default leaves.
const descriptorHeadroom = hub.ReservedDescriptors

// descriptors compares max-connections with limit, the process's limit on
// open files, which serve would have too (check-config runs with the same
// limit, raised as Go raises it): past the limit, accepting fails with
// EMFILE before the hub refuses anyone, and without headroom the history
// store may fail to open its files.
func (c *checks) descriptors(cfg config.Config, limit int) {
	const raise = "raise the limit (ulimit -n, LimitNOFILE= in a systemd unit) or lower max-connections"
	switch n := cfg.MaxConnections; {
	case n == 0:
		c.warnf("max-connections: 0, no limit: past the limit on open files (%d) new connections wait unanswered, and the history store may fail to open its files", limit)
	case n > limit:
		c.warnf("max-connections: %d is more than the limit on open files (%d): the hub would run out of descriptors before refusing anyone; %s", n, limit, raise)
	case limit-n < descriptorHeadroom:
		c.warnf("max-connections: %d leaves %d of the %d open files the process may have for the connections being refused (up to %d), the history store and the process's own files, fewer than %d; %s",
			n, limit-n, limit, hub.MaxRejections, descriptorHeadroom, raise)
	}
}

// dataDir checks that the data directory (of the store, or of dev-tls's
// certificate) is a directory that serve can write to, or that it can be
// created, and that the history there is of the store configured.
func (c *checks) dataDir(cfg config.Config) {
	history := cfg.Store == "pebble" || cfg.Store == "bolt"
	if !history && !cfg.DevTLS || cfg.DataDir == "" {
		return
	}
	dir := cfg.DataDir
	for {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			c.problemf("data-dir: %s is not a directory", dir)
			return
		case err == nil:
			if f, err := os.CreateTemp(dir, ".herald-check-*"); err != nil {
				c.problemf("data-dir: cannot write in %s: %v", dir, err)
			} else {
				_ = f.Close()
				_ = os.Remove(f.Name())
			}
			if dir == cfg.DataDir && history {
				c.otherStore(cfg)
			}
			return
		case !errors.Is(err, os.ErrNotExist):
			c.problemf("data-dir: %v", err)
			return
		}
		// Missing: serve creates it, in the nearest directory that exists.
		parent := filepath.Dir(dir)
		if parent == dir {
			c.problemf("data-dir: %s does not exist", cfg.DataDir)
			return
		}
		dir = parent
	}
}

// otherStore warns of a history kept by the store not configured, which
// the configured one would not read.
func (c *checks) otherStore(cfg config.Config) {
	other, name := "history.db", "bolt"
	if cfg.Store == "bolt" {
		other, name = "history", "pebble"
	}
	path := filepath.Join(cfg.DataDir, other)
	if _, err := os.Stat(path); err == nil {
		c.warnf("data-dir: %s holds a %s history, which store %s does not read: the hub would start from an empty history", path, name, cfg.Store)
	}
}

// sameAddr reports whether two listening addresses are certainly the same:
// equal, and not port 0, which picks a free port each time.
func sameAddr(a, b string) bool {
	_, port, err := net.SplitHostPort(a)
	return a == b && err == nil && port != "0"
}
