// Package config is the configuration of the herald daemon: one typed
// struct, filled from command-line flags, then environment variables, then
// defaults, in that order of precedence. Only the daemon reads it; the
// libraries take plain structs.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-sse/herald/hub"
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

	CORSOrigins    []string
	PublishOrigins []string
	CookieName     string
	Subscriptions  bool

	Heartbeat     time.Duration
	BatchInterval time.Duration
	// MaxBatchInterval zero means four times BatchInterval.
	MaxBatchInterval time.Duration
	WriteTimeout     time.Duration
	DispatchTimeout  time.Duration
	ShutdownTimeout  time.Duration

	Store         string
	DataDir       string
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

// option is one setting: its flag, the environment variables that may set
// it (the first is herald's own, others are aliases Mercure users know),
// and where it goes.
type option struct {
	flag  string
	env   []string
	usage string
	value flag.Value
}

func (c *Config) options() []option {
	return []option{
		{"addr", env("ADDR"), "the `address` to listen on (host:port)", (*strValue)(&c.Addr)},
		{"publisher-jwt-key", env("PUBLISHER_JWT_KEY", "MERCURE_PUBLISHER_JWT_KEY"), "the `key` that verifies publishers' tokens: a secret for HS*, a PEM public key otherwise", (*secretValue)(&c.PublisherJWTKey)},
		{"publisher-jwt-alg", env("PUBLISHER_JWT_ALG", "MERCURE_PUBLISHER_JWT_ALG"), "the publishers' signing `algorithm` (HS256, HS384, HS512, RS*, PS*, ES*, EdDSA)", (*strValue)(&c.PublisherJWTAlg)},
		{"subscriber-jwt-key", env("SUBSCRIBER_JWT_KEY", "MERCURE_SUBSCRIBER_JWT_KEY"), "the `key` that verifies subscribers' tokens (default: the publisher key)", (*secretValue)(&c.SubscriberJWTKey)},
		{"subscriber-jwt-alg", env("SUBSCRIBER_JWT_ALG", "MERCURE_SUBSCRIBER_JWT_ALG"), "the subscribers' signing `algorithm` (default: the publishers')", (*strValue)(&c.SubscriberJWTAlg)},
		{"anonymous", env("ANONYMOUS"), "allow subscribers without a token (default: only when no key is configured)", &boolPtrValue{&c.Anonymous}},
		{"cors-origins", env("CORS_ORIGINS"), "`origins` allowed to make cross-origin requests, separated by spaces or commas; * for any", (*listValue)(&c.CORSOrigins)},
		{"publish-origins", env("PUBLISH_ORIGINS"), "`origins` from which browsers may publish with a cookie; * for any", (*listValue)(&c.PublishOrigins)},
		{"cookie-name", env("COOKIE_NAME"), "the cookie that may carry a token: its `name`", (*strValue)(&c.CookieName)},
		{"subscriptions", env("SUBSCRIPTIONS"), "enable the subscriptions API and subscription events", (*boolValue)(&c.Subscriptions)},
		{"heartbeat", env("HEARTBEAT"), "the silence (a `duration`) after which a subscriber gets a comment; 0 for none", (*durationValue)(&c.Heartbeat)},
		{"batch-interval", env("BATCH_INTERVAL"), "the shortest time (a `duration`) between two writes of events to one subscriber: the events that come within it go out together, those after a quiet spell at once; 0 for none", (*durationValue)(&c.BatchInterval)},
		{"max-batch-interval", env("MAX_BATCH_INTERVAL"), "the longest (a `duration`) the batch interval stretches to while many subscribers get events faster than it; by default 4 × batch-interval, and batch-interval itself keeps the interval fixed", (*durationValue)(&c.MaxBatchInterval)},
		{"write-timeout", env("WRITE_TIMEOUT"), "the maximum lifetime (a `duration`) of a subscription's connection, closed after 80-100% of it; 0 for none", (*durationValue)(&c.WriteTimeout)},
		{"dispatch-timeout", env("DISPATCH_TIMEOUT"), "how long (a `duration`) one write to a subscriber may take", (*durationValue)(&c.DispatchTimeout)},
		{"shutdown-timeout", env("SHUTDOWN_TIMEOUT"), "how long (a `duration`) a graceful shutdown may take before connections are cut", (*durationValue)(&c.ShutdownTimeout)},
		{"store", env("STORE"), "where the history is kept (the `store`): pebble or bolt (on disk, in -data-dir), or memory", (*strValue)(&c.Store)},
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
		Heartbeat:       40 * time.Second,
		BatchInterval:   5 * time.Millisecond,
		WriteTimeout:    600 * time.Second,
		DispatchTimeout: 5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Store:           "pebble",
		DataDir:         "herald-data",
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

// Flags registers the options on fs and returns a function that, once fs
// has parsed the command line, applies the environment (a lookup such as
// os.LookupEnv) to the options no flag set, checks the result and returns
// it.
func Flags(fs *flag.FlagSet) (load func(lookup func(string) (string, bool)) (Config, error)) {
	l := Register(fs)
	return func(lookup func(string) (string, bool)) (Config, error) {
		c, _, err := l.Load(lookup)
		return c, err
	}
}

// Loader fills a Config from a flag set and the environment, and can say
// where each value came from.
type Loader struct {
	fs   *flag.FlagSet
	c    *Config
	opts []option
}

// Register registers the options on fs.
func Register(fs *flag.FlagSet) *Loader {
	c := Default()
	l := &Loader{fs: fs, c: &c, opts: c.options()}
	for _, o := range l.opts {
		fs.Var(o.value, o.flag, fmt.Sprintf("%s (env %s)", o.usage, strings.Join(o.env, ", ")))
	}
	return l
}

// Setting is one option as loaded.
type Setting struct {
	Flag string
	// Value is the value as the flag would take it; a secret shows only
	// its length.
	Value string
	// Source is "flag -name", "environment NAME" or "default".
	Source string
}

// Load applies the environment to the options no flag set, once fs has
// parsed the command line, and checks the result. It returns the
// configuration, every option with its source, and every problem found.
// A variable that does not parse is a problem, and leaves its option as it
// was.
func (l *Loader) Load(lookup func(string) (string, bool)) (Config, []Setting, error) {
	set := map[string]bool{}
	l.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	settings := make([]Setting, 0, len(l.opts))
	for _, o := range l.opts {
		source := "default"
		if set[o.flag] {
			source = "flag -" + o.flag
		} else {
			for _, name := range o.env {
				v, ok := lookup(name)
				if !ok {
					continue
				}
				if err := o.value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("environment variable %s: %w", name, err))
				} else {
					source = "environment " + name
				}
				break
			}
		}
		value := o.value.String()
		if _, secret := o.value.(*secretValue); secret && value != "" {
			value = fmt.Sprintf("(%d bytes, hidden)", len(value))
		}
		settings = append(settings, Setting{Flag: o.flag, Value: value, Source: source})
	}
	return *l.c, settings, errors.Join(append(errs, l.c.Validate())...)
}

// Validate checks the values, and the ones that only make sense together.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr: empty"))
	}
	if !slices.Contains(Stores, c.Store) {
		errs = append(errs, fmt.Errorf("store: %q is not one of %s", c.Store, strings.Join(Stores, ", ")))
	}
	if c.HistorySize < 0 {
		errs = append(errs, fmt.Errorf("history-size: %d is negative", c.HistorySize))
	}
	if c.Store != "memory" && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("data-dir: empty, and store %s keeps its files there", c.Store))
	}
	if c.MaxBodySize <= 0 {
		errs = append(errs, fmt.Errorf("max-body-size: %d is not positive", c.MaxBodySize))
	}
	for _, n := range []struct {
		name string
		n    int
	}{{"max-topics", c.MaxTopics}, {"max-selectors", c.MaxSelectors}, {"max-claim-selectors", c.MaxClaimSelectors}, {"max-templates", c.MaxTemplates}} {
		if n.n <= 0 {
			errs = append(errs, fmt.Errorf("%s: %d is not positive", n.name, n.n))
		}
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max-connections: %d is negative (0 is no limit)", c.MaxConnections))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"heartbeat", c.Heartbeat}, {"batch-interval", c.BatchInterval}, {"max-batch-interval", c.MaxBatchInterval}, {"write-timeout", c.WriteTimeout}, {"history-max-age", c.HistoryMaxAge}, {"shutdown-timeout", c.ShutdownTimeout}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", d.name, d.d))
		}
	}
	if c.DispatchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dispatch-timeout: %v is not positive", c.DispatchTimeout))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.SubscriberJWTKey != "" && c.PublisherJWTKey == "" {
		errs = append(errs, errors.New("subscriber-jwt-key without publisher-jwt-key: set both, or only the publisher key to use it for both"))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.MetricsAddr != "" && c.MetricsAddr != MetricsOnMain {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics-addr: %q is neither host:port nor %q", c.MetricsAddr, MetricsOnMain))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

type strValue string

func (v *strValue) String() string     { return string(*v) }
func (v *strValue) Set(s string) error { *v = strValue(s); return nil }

// secretValue is a string that Setting does not show.
type secretValue string

func (v *secretValue) String() string     { return string(*v) }
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) IsBoolFlag() bool { return true }

type boolPtrValue struct{ p **bool }

func (v *boolPtrValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return strconv.FormatBool(**v.p)
}
func (v *boolPtrValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v.p = &b
	return nil
}
func (v *boolPtrValue) IsBoolFlag() bool { return true }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*v = int64Value(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*v = durationValue(d)
	return nil
}

// listValue takes origins separated by spaces or commas.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, " ") }
func (v *listValue) Set(s string) error {
	*v = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	return nil
}
