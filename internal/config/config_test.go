package config_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
)

// load registers the options on a flag set, parses args and loads the
// rest from env.
func load(t *testing.T, args []string, env map[string]string) (config.Loaded, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := config.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return l.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// setting returns the setting of option name.
func setting(t *testing.T, l config.Loaded, name string) config.Setting {
	t.Helper()
	for _, s := range l.Settings {
		if s.Flag == name {
			return s
		}
	}
	t.Fatalf("no setting %s", name)
	return config.Setting{}
}

// writeFile writes a file in a test's directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	l, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Addr != ":8080" || c.Heartbeat != 40*time.Second || c.WriteTimeout != 600*time.Second ||
		c.Store != "pebble" || c.DataDir != "herald-data" || c.Anonymous != nil || c.CookieName != "mercureAuthorization" {
		t.Fatalf("defaults: %+v", c)
	}
	if len(l.Warnings) != 0 {
		t.Fatalf("warnings: %q", l.Warnings)
	}
}

// The same option given by each source in turn: the highest wins, and
// check-config's source says which.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "herald.toml", "# a comment\n\nheartbeat = \"10s\"\n")
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		want   time.Duration
		source string
	}{
		{"default", nil, nil, 40 * time.Second, "default"},
		{"file", []string{"-config", file}, nil, 10 * time.Second, "file " + file + ":3"},
		{"file named by the environment", nil, map[string]string{"HERALD_CONFIG": file}, 10 * time.Second, "file " + file + ":3"},
		{"directive over file", []string{"-config", file}, map[string]string{"MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s"}, 20 * time.Second, "MERCURE_EXTRA_DIRECTIVES (heartbeat 20s)"},
		{"environment over directive", []string{"-config", file}, map[string]string{"MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s", "HERALD_HEARTBEAT": "30s"}, 30 * time.Second, "environment HERALD_HEARTBEAT"},
		{"flag over all", []string{"-config", file, "-heartbeat", "1m"}, map[string]string{"MERCURE_EXTRA_DIRECTIVES": "heartbeat 20s", "HERALD_HEARTBEAT": "30s"}, time.Minute, "flag -heartbeat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := load(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if l.Config.Heartbeat != tc.want {
				t.Errorf("heartbeat %v, want %v", l.Config.Heartbeat, tc.want)
			}
			if s := setting(t, l, "heartbeat"); s.Source != tc.source || s.Value != tc.want.String() {
				t.Errorf("%+v, want %v from %q", s, tc.want, tc.source)
			}
		})
	}
}

// Among the environment variables of one option, herald's own win over
// Mercure's, which win over Mercure's legacy ones.
func TestEnvironmentPrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HERALD_ADDR":                ":9000",
		"MERCURE_PUBLISHER_JWT_KEY":  "from mercure's variable",
		"JWT_KEY":                    "legacy, loses to both",
		"HERALD_SUBSCRIBER_JWT_KEY":  "herald's wins",
		"MERCURE_SUBSCRIBER_JWT_KEY": "mercure's loses",
		"HERALD_CORS_ORIGINS":        "https://a.example.com, https://b.example.com",
		"HERALD_ANONYMOUS":           "true",
		"ALLOW_ANONYMOUS":            "0",
	}
	l, err := load(t, []string{"-heartbeat", "7s"}, env)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Addr != ":9000" || c.Heartbeat != 7*time.Second {
		t.Errorf("addr %q, heartbeat %v", c.Addr, c.Heartbeat)
	}
	if c.PublisherJWTKey != "from mercure's variable" || c.SubscriberJWTKey != "herald's wins" {
		t.Errorf("keys %q %q", c.PublisherJWTKey, c.SubscriberJWTKey)
	}
	if !slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "https://b.example.com"}) {
		t.Errorf("cors origins %q", c.CORSOrigins)
	}
	if c.Anonymous == nil || !*c.Anonymous {
		t.Errorf("anonymous %v: HERALD_ANONYMOUS did not win", c.Anonymous)
	}
}

// Mercure's legacy variables: JWT_KEY is the key of both, ALLOW_ANONYMOUS
// lets anonymous subscribers in.
func TestLegacyMercure(t *testing.T) {
	t.Parallel()
	l, err := load(t, nil, map[string]string{"JWT_KEY": "the legacy key of 32 bytes, at least", "ALLOW_ANONYMOUS": "1"})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.PublisherJWTKey != "the legacy key of 32 bytes, at least" || c.SubscriberJWTKey != c.PublisherJWTKey {
		t.Errorf("keys %q %q", c.PublisherJWTKey, c.SubscriberJWTKey)
	}
	if c.Anonymous == nil || !*c.Anonymous {
		t.Errorf("anonymous %v", c.Anonymous)
	}
	if s := setting(t, l, "anonymous"); s.Source != "environment ALLOW_ANONYMOUS" {
		t.Errorf("%+v", s)
	}
}

// Every problem comes back at once, each naming where it is, a bad
// duration with how to write one.
func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad duration in the environment", nil, map[string]string{"HERALD_HEARTBEAT": "soon"}, []string{`environment variable HERALD_HEARTBEAT: "soon" is not a duration: write it like 5s, 1m30s or 250ms`}},
		{"bad duration flag", []string{"-heartbeat", "soon"}, nil, []string{`flag -heartbeat: "soon" is not a duration: write it like 5s`}},
		{"overridden bad duration", []string{"-heartbeat", "5s"}, map[string]string{"HERALD_HEARTBEAT": "soon"}, []string{"HERALD_HEARTBEAT"}},
		{"bad boolean", []string{"-anonymous=maybe"}, nil, []string{`flag -anonymous: "maybe" is not a boolean`}},
		{"bad number", nil, map[string]string{"HERALD_MAX_TOPICS": "many"}, []string{`environment variable HERALD_MAX_TOPICS: "many" is not a whole number`}},
		{"unknown store", []string{"-store", "floppy"}, nil, []string{`flag -store: "floppy" is not one of pebble, bolt, memory`}},
		{"a default that is wrong with another value", []string{"-store", "bolt", "-data-dir", ""}, nil, []string{"flag -data-dir: empty, and store bolt keeps its files there"}},
		{"negative heartbeat", []string{"-heartbeat", "-1s"}, nil, []string{"heartbeat"}},
		{"negative max batch interval", []string{"-max-batch-interval", "-1ms"}, nil, []string{"max-batch-interval"}},
		{"negative history", []string{"-history-size", "-1"}, nil, []string{"history-size"}},
		{"no data dir", []string{"-data-dir", ""}, nil, []string{"data-dir"}},
		{"half of TLS", []string{"-tls-cert", "c.pem"}, nil, []string{"tls"}},
		{"subscriber key alone", nil, map[string]string{"HERALD_SUBSCRIBER_JWT_KEY": "k"}, []string{"subscriber-jwt-key"}},
		{"unknown algorithm", []string{"-publisher-jwt-alg", "HS1"}, nil, []string{`publisher-jwt-alg: "HS1" is not one of`}},
		{"log level", []string{"-log-level", "loud"}, nil, []string{"log-level"}},
		{"zero dispatch timeout", []string{"-dispatch-timeout", "0s"}, nil, []string{"dispatch-timeout"}},
		{"zero max selectors", []string{"-max-selectors", "0"}, nil, []string{"max-selectors"}},
		{"negative max claim selectors", nil, map[string]string{"HERALD_MAX_CLAIM_SELECTORS": "-1"}, []string{"max-claim-selectors"}},
		{"zero max templates", []string{"-max-templates", "0"}, nil, []string{"max-templates"}},
		{"address without a port", []string{"-addr", "bogus"}, nil, []string{`flag -addr: "bogus" is not host:port (missing port in address); write it like :8080`}},
		{"port out of range", []string{"-addr", "localhost:99999"}, nil, []string{"flag -addr: port 99999 is out of range (0 to 65535)"}},
		{"bad address from the environment", nil, map[string]string{"HERALD_ADDR": "bogus"}, []string{`environment variable HERALD_ADDR: addr: "bogus" is not host:port`}},
		{"bad address from SERVER_NAME", nil, map[string]string{"SERVER_NAME": "example.com:99999"}, []string{"environment variable SERVER_NAME: addr: port 99999 is out of range"}},
		{"port neither number nor service", []string{"-addr", ":eighty"}, nil, []string{`addr: port "eighty" is neither a number nor a known service`}},
		{"empty address", []string{"-addr", ""}, nil, []string{"addr: empty"}},
		{"pprof address", []string{"-pprof-addr", "6060"}, nil, []string{"pprof-addr: "}},
		{"redis URL of another scheme", []string{"-redis", "http://u:secret@127.0.0.1:6379"}, nil, []string{"flag -redis: http://u:xxxxx@127.0.0.1:6379 is not a redis:// or rediss:// URL with a host"}},
		{"redis prefix with a brace", []string{"-redis", "redis://127.0.0.1:6379", "-redis-prefix", "a}b"}, nil, []string{"redis-prefix"}},
		{"several at once", []string{"-heartbeat", "often", "-addr", "bogus"}, map[string]string{"HERALD_WRITE_TIMEOUT": "1 minute", "MERCURE_EXTRA_DIRECTIVES": "dispatch_timeout 5"},
			[]string{"flag -heartbeat", "HERALD_WRITE_TIMEOUT", "MERCURE_EXTRA_DIRECTIVES line 1 (dispatch_timeout 5)", "addr: "}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, c.args, c.env)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nwant one naming %q", err, w)
				}
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n < len(c.want) {
				t.Errorf("%d problems, want %d: %v", n, len(c.want), err)
			}
		})
	}
}

// docs/config.md documents every option, under its flag and its variables.
func TestDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	config.Register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(doc), "`-"+f.Name+"`") {
			t.Errorf("docs/config.md does not document -%s", f.Name)
		}
		env := regexp.MustCompile(`\(env ([A-Z0-9_, ]+)\)`).FindStringSubmatch(f.Usage)
		if env == nil {
			t.Errorf("-%s names no environment variable", f.Name)
			return
		}
		for _, v := range strings.Split(env[1], ", ") {
			if !strings.Contains(string(doc), "`"+v+"`") {
				t.Errorf("docs/config.md does not document %s", v)
			}
		}
	})
}

// Load says where each value came from, hides the keys, shows what a zero
// stands for, and reports every variable that does not parse, leaving its
// option as it was.
func TestSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HERALD_HEARTBEAT":          "1s", // the flag wins
		"MERCURE_PUBLISHER_JWT_KEY": "a secret of 24 bytes....",
		"HERALD_MAX_TOPICS":         "many",
		"HERALD_MAX_BODY_SIZE":      "-1",
		"HERALD_WRITE_TIMEOUT":      "1m",
		"HERALD_BATCH_INTERVAL":     "10ms",
	}
	l, err := load(t, []string{"-heartbeat", "7s", "-store", "memory"}, env)
	if err == nil || !strings.Contains(err.Error(), "HERALD_MAX_TOPICS") || !strings.Contains(err.Error(), "max-body-size") {
		t.Errorf("error %v, want HERALD_MAX_TOPICS's and max-body-size's", err)
	}
	if l.Config.MaxTopics != config.Default().MaxTopics || l.Config.WriteTimeout != time.Minute {
		t.Errorf("max topics %d, write timeout %v", l.Config.MaxTopics, l.Config.WriteTimeout)
	}
	got := map[string]config.Setting{}
	for _, s := range l.Settings {
		got[s.Flag] = s
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	config.Register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := got[f.Name]; !ok {
			t.Errorf("no setting for -%s", f.Name)
		}
	})
	for _, want := range []config.Setting{
		{"config", "(none)", "default"},
		{"heartbeat", "7s", "flag -heartbeat"},
		{"store", "memory", "flag -store"},
		{"write-timeout", "1m0s", "environment HERALD_WRITE_TIMEOUT"},
		{"publisher-jwt-key", "(24 bytes, hidden)", "environment MERCURE_PUBLISHER_JWT_KEY"},
		{"max-topics", "1000", "default"},
		{"max-selectors", "256", "default"},
		{"max-claim-selectors", "1000", "default"},
		{"max-templates", "10000", "default"},
		{"addr", ":8080", "default"},
		// What the zeros stand for.
		{"subscriber-jwt-key", "(the publisher key)", "default"},
		{"subscriber-jwt-alg", "(the publishers' algorithm, HS256)", "default"},
		{"anonymous", "false", "default"},
		{"max-batch-interval", "4 × batch-interval = 40ms", "default"},
		{"history-size", "10000 (store memory's default)", "default"},
		{"data-dir", "herald-data (unused: store memory)", "default"},
		{"history-max-age", "0s (no limit)", "default"},
		{"cors-origins", "(none)", "default"},
	} {
		if got[want.Flag] != want {
			t.Errorf("%+v, want %+v", got[want.Flag], want)
		}
	}
}

// What check-config shows of the defaults that depend on others.
func TestDisplayedDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args        []string
		name, value string
	}{
		{nil, "history-size", "1000000 (store pebble's default)"},
		{[]string{"-store", "bolt"}, "history-size", "1000000 (store bolt's default)"},
		{[]string{"-history-size", "5"}, "history-size", "5"},
		{nil, "max-batch-interval", "4 × batch-interval = 20ms"},
		{[]string{"-max-batch-interval", "5ms"}, "max-batch-interval", "5ms"},
		{nil, "publisher-jwt-key", "(none: a key made up at each start, the development setup)"},
		{nil, "anonymous", "true (the development setup: no key)"},
		{[]string{"-anonymous=false"}, "anonymous", "false"},
		{[]string{"-publisher-jwt-alg", "ES256"}, "subscriber-jwt-alg", "(the publishers' algorithm, ES256)"},
		{[]string{"-heartbeat", "0"}, "heartbeat", "0s (none)"},
		{[]string{"-max-connections", "0"}, "max-connections", "0 (no limit)"},
		{nil, "redis", "(none: the history is in -store)"},
		{[]string{"-redis", "redis://user:secret@redis.internal:6379/2"}, "redis", "redis://user:xxxxx@redis.internal:6379/2"},
		{[]string{"-redis", "redis://127.0.0.1:6379"}, "store", "pebble (unused: the history is in Redis)"},
		{[]string{"-redis", "redis://127.0.0.1:6379"}, "history-size", "1000000 (redis's default)"},
		{[]string{"-redis", "redis://127.0.0.1:6379", "-data-dir", ""}, "data-dir", " (unused: the history is in Redis)"},
	} {
		l, err := load(t, tc.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := setting(t, l, tc.name); s.Value != tc.value {
			t.Errorf("%q: %s shows %q, want %q", tc.args, tc.name, s.Value, tc.value)
		}
	}
	// The history sizes shown are the stores' own.
	for store, n := range map[string]int{"memory": hub.DefaultHistorySize} {
		if got := config.DefaultHistorySize(store); got != n {
			t.Errorf("%s: %d, want %d", store, got, n)
		}
	}
}

// The daemon's defaults of the hub's bounds are the hub's own, so that
// check-config shows the values the hub runs with.
func TestDefaultBounds(t *testing.T) {
	t.Parallel()
	d := config.Default()
	for _, c := range []struct {
		name        string
		daemon, hub int
	}{
		{"max-topics", d.MaxTopics, hub.DefaultMaxTopics},
		{"max-selectors", d.MaxSelectors, hub.DefaultMaxSelectors},
		{"max-claim-selectors", d.MaxClaimSelectors, hub.DefaultMaxClaimSelectors},
		{"max-templates", d.MaxTemplates, hub.DefaultMaxTemplates},
		{"max-body-size", int(d.MaxBodySize), hub.DefaultMaxBodySize},
	} {
		if c.daemon != c.hub {
			t.Errorf("%s: the daemon's default is %d, the hub's %d", c.name, c.daemon, c.hub)
		}
	}
}

// problems splits a joined error into its problems.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
