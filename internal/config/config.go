// Package config is the configuration of the herald daemon: one typed
// struct, filled from command-line flags, then environment variables
// (herald's own, then Mercure's), then a TOML file, then defaults, in that
// order of precedence. Only the daemon reads it; the libraries take plain
// structs.
//
// Start with Register, which declares the options on a flag set, and
// Loader.Load, which applies the rest once the flags are parsed and says
// where every value came from. docs/config.md is the user's side of it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/store/boltstore"
	"github.com/herald-sse/herald/store/pebblestore"
	"github.com/herald-sse/herald/store/redisstore"
)

// Config is everything "herald serve" can be told.
type Config struct {
	Addr string

	PublisherJWTKey  string
	PublisherJWTAlg  string
	SubscriberJWTKey string
	SubscriberJWTAlg string
	// Anonymous is nil when not set: the daemon then allows anonymous
	// subscribers only in its development setup (no key configured).
	Anonymous *bool

	// CORSOrigins is nil when not set: the daemon then allows every
	// origin ("*") in its development setup, and none otherwise.
	CORSOrigins    []string
	PublishOrigins []string
	CookieName     string
	// Subscriptions is nil when not set: the daemon then enables the
	// subscriptions API only in its development setup.
	Subscriptions *bool
	// UI serves the web page (welcome, debugger, demo) beside the hub.
	UI bool

	Heartbeat     time.Duration
	BatchInterval time.Duration
	// MaxBatchInterval zero means four times BatchInterval.
	MaxBatchInterval time.Duration
	WriteTimeout     time.Duration
	DispatchTimeout  time.Duration
	ShutdownTimeout  time.Duration

	Store   string
	DataDir string
	// Redis, when set, is the URL of the Redis server whose stream holds
	// the history (cluster mode): Store and DataDir are then unused.
	Redis string
	// RedisPrefix names the history's keys in Redis; the nodes of one
	// deployment share it, and deployments sharing a server differ.
	RedisPrefix string
	// HistorySize zero means the store's default, DefaultHistorySize.
	HistorySize   int
	HistoryMaxAge time.Duration
	MaxBodySize   int64
	MaxTopics     int
	// MaxConnections zero means no limit; its default is
	// hub.DefaultMaxConnections(), read from the process's limit on open
	// files.
	MaxConnections int

	MaxSelectors      int
	MaxClaimSelectors int
	MaxTemplates      int

	TLSCert string
	TLSKey  string
	// DevTLS serves HTTPS with a self-signed certificate for local use,
	// kept in DataDir/dev-tls.
	DevTLS bool
	// HTTPRedirectAddr, if set, is a plain HTTP listener that redirects
	// every request to the HTTPS one (308).
	HTTPRedirectAddr string
	// H2C accepts HTTP/2 without TLS, with prior knowledge, beside
	// HTTP/1.1.
	H2C bool

	LogLevel  string
	LogFormat string
	PprofAddr string
	// MetricsAddr is where /metrics is served: an address of its own,
	// MetricsOnMain for the hub's listener, or empty for nowhere.
	MetricsAddr string
}

// MetricsOnMain is the value of MetricsAddr that serves /metrics on the
// hub's own listener, beside the hub.
const MetricsOnMain = "main"

// Stores lists the values of the store option.
var Stores = []string{"pebble", "bolt", "memory"}

// Algorithms lists the signing algorithms of the JWT options.
var Algorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultHistorySize is the number of events the history of store retains
// when HistorySize is zero.
func DefaultHistorySize(store string) int {
	switch store {
	case "pebble":
		return pebblestore.DefaultSize
	case "bolt":
		return boltstore.DefaultSize
	default:
		return hub.DefaultHistorySize
	}
}

// option is one setting: its flag (which is also its key in the file),
// the environment variables that may set it (the first is herald's own,
// others are aliases Mercure users know), and where it goes.
type option struct {
	flag  string
	env   []string
	usage string
	value flag.Value
}

func (c *Config) options() []option {
	return []option{
		{"addr", env("ADDR"), "the `address` to listen on (host:port)", (*strValue)(&c.Addr)},
		{"publisher-jwt-key", env("PUBLISHER_JWT_KEY", "MERCURE_PUBLISHER_JWT_KEY", "JWT_KEY"), "the `key` that verifies publishers' tokens: a secret for HS*, a PEM public key otherwise", (*secretValue)(&c.PublisherJWTKey)},
		{"publisher-jwt-alg", env("PUBLISHER_JWT_ALG", "MERCURE_PUBLISHER_JWT_ALG"), "the publishers' signing `algorithm` (HS256, HS384, HS512, RS*, PS*, ES*, EdDSA)", (*strValue)(&c.PublisherJWTAlg)},
		{"subscriber-jwt-key", env("SUBSCRIBER_JWT_KEY", "MERCURE_SUBSCRIBER_JWT_KEY", "JWT_KEY"), "the `key` that verifies subscribers' tokens (default: the publisher key)", (*secretValue)(&c.SubscriberJWTKey)},
		{"subscriber-jwt-alg", env("SUBSCRIBER_JWT_ALG", "MERCURE_SUBSCRIBER_JWT_ALG"), "the subscribers' signing `algorithm` (default: the publishers')", (*strValue)(&c.SubscriberJWTAlg)},
		{"anonymous", env("ANONYMOUS", "ALLOW_ANONYMOUS"), "allow subscribers without a token (default: only when no key is configured)", &boolPtrValue{&c.Anonymous}},
		{"cors-origins", env("CORS_ORIGINS"), "`origins` allowed to make cross-origin requests, separated by spaces or commas; * for any (default: any only when no key is configured)", (*listValue)(&c.CORSOrigins)},
		{"publish-origins", env("PUBLISH_ORIGINS"), "`origins` from which browsers may publish with a cookie; * for any", (*listValue)(&c.PublishOrigins)},
		{"cookie-name", env("COOKIE_NAME"), "the cookie that may carry a token: its `name`", (*strValue)(&c.CookieName)},
		{"subscriptions", env("SUBSCRIPTIONS"), "enable the subscriptions API and subscription events (default: only when no key is configured)", &boolPtrValue{&c.Subscriptions}},
		{"ui", env("UI"), "serve the web page at / (welcome, debugger, trip demo); false for a deployment that exposes only the API", (*boolValue)(&c.UI)},
		{"heartbeat", env("HEARTBEAT"), "the silence (a `duration`) after which a subscriber gets a comment; 0 for none", (*durationValue)(&c.Heartbeat)},
		{"batch-interval", env("BATCH_INTERVAL"), "the shortest time (a `duration`) between two writes of events to one subscriber: the events that come within it go out together, those after a quiet spell at once; 0 for none", (*durationValue)(&c.BatchInterval)},
		{"max-batch-interval", env("MAX_BATCH_INTERVAL"), "the longest (a `duration`) the batch interval stretches to while many subscribers get events faster than it; by default 4 × batch-interval, and batch-interval itself keeps the interval fixed", (*durationValue)(&c.MaxBatchInterval)},
		{"write-timeout", env("WRITE_TIMEOUT"), "the maximum lifetime (a `duration`) of a subscription's connection, closed after 80-100% of it; 0 for none", (*durationValue)(&c.WriteTimeout)},
		{"dispatch-timeout", env("DISPATCH_TIMEOUT"), "how long (a `duration`) one write to a subscriber may take", (*durationValue)(&c.DispatchTimeout)},
		{"shutdown-timeout", env("SHUTDOWN_TIMEOUT"), "how long (a `duration`) a graceful shutdown may take before connections are cut", (*durationValue)(&c.ShutdownTimeout)},
		{"store", env("STORE"), "where the history is kept (the `store`): pebble or bolt (on disk, in -data-dir), or memory", (*strValue)(&c.Store)},
		{"redis", env("REDIS"), "keep the history in Redis, shared by every node that names the same server: its `URL`, redis://[user:password@]host:port[/db] or rediss:// (TLS); Cluster and Sentinel as in docs/config.md; overrides -store", (*secretValue)(&c.Redis)},
		{"redis-prefix", env("REDIS_PREFIX"), "the `prefix` of the history's keys in Redis ({prefix}:log and so on): the same on every node of a deployment", (*strValue)(&c.RedisPrefix)},
		{"data-dir", env("DATA_DIR"), "the `directory` of the history (stores pebble and bolt)", (*strValue)(&c.DataDir)},
		{"history-size", env("HISTORY_SIZE"), "the `number` of events the history retains; 0 for the store's default (on disk 1000000, memory 10000)", (*intValue)(&c.HistorySize)},
		{"history-max-age", env("HISTORY_MAX_AGE"), "drop events older than this `duration` from the history; 0 for no limit", (*durationValue)(&c.HistoryMaxAge)},
		{"max-body-size", env("MAX_BODY_SIZE"), "the largest publish request body, in `bytes`", (*int64Value)(&c.MaxBodySize)},
		{"max-topics", env("MAX_TOPICS"), "the most topics (a `number`) in one update", (*intValue)(&c.MaxTopics)},
		{"max-selectors", env("MAX_SELECTORS"), "the most topic selectors (a `number`) in one subscription; more is refused with 400", (*intValue)(&c.MaxSelectors)},
		{"max-claim-selectors", env("MAX_CLAIM_SELECTORS"), "the most selectors (a `number`) in one claim of a token (mercure.subscribe, mercure.publish); a token with more is refused with 401", (*intValue)(&c.MaxClaimSelectors)},
		{"max-templates", env("MAX_TEMPLATES"), "the most distinct URI-template selectors (a `number`) the subscribers may hold at once; a subscription that would add more is refused with 503", (*intValue)(&c.MaxTemplates)},
		{"max-connections", env("MAX_CONNECTIONS"), "the most connections (a `number`) the hub holds open at once; past it a new one is answered 503; by default 90% of the limit on open files (ulimit -n), at least 96 below it; 0 for no limit", (*intValue)(&c.MaxConnections)},
		{"tls-cert", env("TLS_CERT"), "a PEM certificate `file`: serve HTTPS (and HTTP/2)", (*strValue)(&c.TLSCert)},
		{"tls-key", env("TLS_KEY"), "the PEM private key `file` of -tls-cert", (*strValue)(&c.TLSKey)},
		{"dev-tls", env("DEV_TLS"), "serve HTTPS (and HTTP/2) with a self-signed certificate for local development, made in -data-dir/dev-tls and reused while valid; serve prints how to trust it", (*boolValue)(&c.DevTLS)},
		{"http-redirect-addr", env("HTTP_REDIRECT_ADDR"), "also listen in plain HTTP on this `address` and redirect every request to the HTTPS one with 308; needs -tls-cert or -dev-tls", (*strValue)(&c.HTTPRedirectAddr)},
		{"h2c", env("H2C"), "accept HTTP/2 without TLS (h2c, prior knowledge) beside HTTP/1.1, for a proxy that speaks HTTP/2 to herald", (*boolValue)(&c.H2C)},
		{"log-level", env("LOG_LEVEL"), "the log `level`: debug, info, warn or error", (*strValue)(&c.LogLevel)},
		{"log-format", env("LOG_FORMAT"), "the log `format`: text or json", (*strValue)(&c.LogFormat)},
		{"pprof-addr", env("PPROF_ADDR"), "serve Go's profiling endpoints (/debug/pprof/) on this `address`, e.g. 127.0.0.1:6060; keep it private", (*strValue)(&c.PprofAddr)},
		{"metrics-addr", env("METRICS_ADDR"), "serve Prometheus metrics (/metrics) on this `address`, e.g. 127.0.0.1:9090, or on the hub's own listener with \"main\"; none by default", (*strValue)(&c.MetricsAddr)},
	}
}

// env returns HERALD_<name> followed by the aliases.
func env(name string, aliases ...string) []string {
	return append([]string{"HERALD_" + name}, aliases...)
}

// Default returns the configuration of a daemon told nothing.
func Default() Config {
	return Config{
		Addr:            ":8080",
		PublisherJWTAlg: "HS256",
		CookieName:      "mercureAuthorization",
		UI:              true,
		Heartbeat:       40 * time.Second,
		BatchInterval:   5 * time.Millisecond,
		WriteTimeout:    600 * time.Second,
		DispatchTimeout: 5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Store:           "pebble",
		DataDir:         "herald-data",
		RedisPrefix:     redisstore.DefaultPrefix,
		MaxBodySize:     1 << 20,
		MaxTopics:       1000,

		MaxSelectors:      256,
		MaxClaimSelectors: 1000,
		MaxTemplates:      10_000,
		MaxConnections:    hub.DefaultMaxConnections(),
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// OptionError is a problem with the value of one option.
type OptionError struct {
	// Option is the option's flag, without the dash, which is also its key
	// in the file.
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

func bad(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// Validate checks the values, and the ones that only make sense together.
// A problem with one option's value is an *OptionError; all of them are
// joined.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, checkAddr("addr", c.Addr))
	if c.PprofAddr != "" {
		errs = append(errs, checkAddr("pprof-addr", c.PprofAddr))
	}
	if !slices.Contains(Algorithms, c.PublisherJWTAlg) {
		errs = append(errs, bad("publisher-jwt-alg", "%q is not one of %s", c.PublisherJWTAlg, strings.Join(Algorithms, ", ")))
	}
	if c.SubscriberJWTAlg != "" && !slices.Contains(Algorithms, c.SubscriberJWTAlg) {
		errs = append(errs, bad("subscriber-jwt-alg", "%q is not one of %s", c.SubscriberJWTAlg, strings.Join(Algorithms, ", ")))
	}
	if !slices.Contains(Stores, c.Store) {
		errs = append(errs, bad("store", "%q is not one of %s", c.Store, strings.Join(Stores, ", ")))
	}
	if c.HistorySize < 0 {
		errs = append(errs, bad("history-size", "%d is negative", c.HistorySize))
	}
	if c.Redis != "" {
		if u, err := url.Parse(c.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs = append(errs, bad("redis", "%s is not a redis:// or rediss:// URL with a host", redisstore.Redact(c.Redis)))
		}
	}
	if c.Redis != "" && (c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}")) {
		errs = append(errs, bad("redis-prefix", "%q is empty or holds a brace, which would break the keys' hash tag", c.RedisPrefix))
	}
	if c.Store != "memory" && c.DataDir == "" && c.Redis == "" {
		errs = append(errs, bad("data-dir", "empty, and store %s keeps its files there", c.Store))
	}
	if c.MaxBodySize <= 0 {
		errs = append(errs, bad("max-body-size", "%d is not positive", c.MaxBodySize))
	}
	for _, n := range []struct {
		name string
		n    int
	}{{"max-topics", c.MaxTopics}, {"max-selectors", c.MaxSelectors}, {"max-claim-selectors", c.MaxClaimSelectors}, {"max-templates", c.MaxTemplates}} {
		if n.n <= 0 {
			errs = append(errs, bad(n.name, "%d is not positive", n.n))
		}
	}
	if c.MaxConnections < 0 {
		errs = append(errs, bad("max-connections", "%d is negative (0 is no limit)", c.MaxConnections))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"heartbeat", c.Heartbeat}, {"batch-interval", c.BatchInterval}, {"max-batch-interval", c.MaxBatchInterval}, {"write-timeout", c.WriteTimeout}, {"history-max-age", c.HistoryMaxAge}, {"shutdown-timeout", c.ShutdownTimeout}} {
		if d.d < 0 {
			errs = append(errs, bad(d.name, "%v is negative", d.d))
		}
	}
	if c.DispatchTimeout <= 0 {
		errs = append(errs, bad("dispatch-timeout", "%v is not positive", c.DispatchTimeout))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.DevTLS && (c.TLSCert != "" || c.TLSKey != "") {
		errs = append(errs, bad("dev-tls", "and tls-cert/tls-key both choose the certificate: use -dev-tls for local development, -tls-cert and -tls-key otherwise, not both"))
	}
	if c.DevTLS && (c.Store == "memory" || c.Redis != "") && c.DataDir == "" {
		errs = append(errs, bad("data-dir", "empty, and dev-tls keeps its certificate there"))
	}
	if c.HTTPRedirectAddr != "" {
		errs = append(errs, checkAddr("http-redirect-addr", c.HTTPRedirectAddr))
		if !c.TLS() {
			errs = append(errs, bad("http-redirect-addr", "redirects to HTTPS, but herald serves plain HTTP: give it -tls-cert and -tls-key, or -dev-tls"))
		}
	}
	if c.H2C && c.TLS() {
		errs = append(errs, bad("h2c", "is HTTP/2 without TLS, and herald serves TLS, where it speaks HTTP/2 already: drop -h2c"))
	}
	if c.SubscriberJWTKey != "" && c.PublisherJWTKey == "" {
		errs = append(errs, errors.New("subscriber-jwt-key without publisher-jwt-key: set both, or only the publisher key to use it for both"))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, bad("log-level", "%q is not debug, info, warn or error", c.LogLevel))
	}
	if c.MetricsAddr != "" && c.MetricsAddr != MetricsOnMain {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics-addr: %q is neither host:port nor %q", c.MetricsAddr, MetricsOnMain))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, bad("log-format", "%q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// TLS reports whether the daemon serves HTTPS: with a certificate of its
// own, or with the development one.
func (c *Config) TLS() bool { return c.TLSCert != "" || c.DevTLS }

// checkAddr checks the form of a listening address, without the network:
// host:port, with a port that is a number from 0 to 65535 or a service's
// name.
func checkAddr(name, addr string) error {
	const form = "write it like :8080 or 127.0.0.1:8080"
	if addr == "" {
		return bad(name, "empty; %s", form)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return bad(name, "%q is not host:port (%v); %s", addr, err, form)
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return bad(name, "port %d is out of range (0 to 65535)", n)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return bad(name, "port %q is neither a number nor a known service; %s", port, form)
	}
	return nil
}

// display is what check-config shows of the value of option name: the
// value as its flag would take it, or, where the zero value stands for
// something else, what the daemon runs with and why.
func (c *Config) display(name, value string) string {
	switch name {
	case "publisher-jwt-key":
		if value == "" {
			return "(none: a key made up at each start, the development setup)"
		}
		return fmt.Sprintf("(%d bytes, hidden)", len(value))
	case "subscriber-jwt-key":
		if value == "" {
			return "(the publisher key)"
		}
		return fmt.Sprintf("(%d bytes, hidden)", len(value))
	case "subscriber-jwt-alg":
		if value == "" {
			return "(the publishers' algorithm, " + c.PublisherJWTAlg + ")"
		}
	case "anonymous", "subscriptions":
		if value == "" {
			if c.PublisherJWTKey == "" {
				return "true (the development setup: no key)"
			}
			return "false"
		}
	case "cors-origins":
		if c.CORSOrigins == nil {
			if c.PublisherJWTKey == "" {
				return "* (the development setup: no key)"
			}
			return "(none)"
		}
		if value == "" {
			return "(none)"
		}
	case "publish-origins", "tls-cert", "tls-key", "pprof-addr", "http-redirect-addr":
		if value == "" {
			return "(none)"
		}
	case "heartbeat", "batch-interval", "write-timeout":
		if value == "0s" {
			return "0s (none)"
		}
	case "history-max-age":
		if value == "0s" {
			return "0s (no limit)"
		}
	case "max-batch-interval":
		if c.MaxBatchInterval == 0 {
			return fmt.Sprintf("4 × batch-interval = %v", 4*c.BatchInterval)
		}
	case "redis":
		if value == "" {
			return "(none: the history is in -store)"
		}
		return redisstore.Redact(value)
	case "store":
		if c.Redis != "" {
			return value + " (unused: the history is in Redis)"
		}
	case "history-size":
		if c.HistorySize == 0 && c.Redis != "" {
			return fmt.Sprintf("%d (redis's default)", redisstore.DefaultSize)
		}
		if c.HistorySize == 0 {
			return fmt.Sprintf("%d (store %s's default)", DefaultHistorySize(c.Store), c.Store)
		}
	case "max-connections":
		if c.MaxConnections == 0 {
			return "0 (no limit)"
		}
	case "data-dir":
		if c.Store == "memory" || c.Redis != "" {
			why := "store memory"
			if c.Redis != "" {
				why = "the history is in Redis"
			}
			if c.DevTLS {
				return value + " (dev-tls's certificate only: " + why + ")"
			}
			return value + " (unused: " + why + ")"
		}
	}
	return value
}
