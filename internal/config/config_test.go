package config_test

import (
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
)

func load(t *testing.T, args []string, env map[string]string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	return l(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.Heartbeat != 40*time.Second || c.WriteTimeout != 600*time.Second ||
		c.Store != "pebble" || c.DataDir != "herald-data" || c.Anonymous != nil || c.CookieName != "mercureAuthorization" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HERALD_ADDR":                ":9000",
		"HERALD_HEARTBEAT":           "5s",
		"MERCURE_PUBLISHER_JWT_KEY":  "from mercure's variable",
		"HERALD_SUBSCRIBER_JWT_KEY":  "herald's wins",
		"MERCURE_SUBSCRIBER_JWT_KEY": "mercure's loses",
		"HERALD_CORS_ORIGINS":        "https://a.example.com, https://b.example.com",
		"HERALD_ANONYMOUS":           "true",
	}
	c, err := load(t, []string{"-heartbeat", "7s", "-anonymous=false"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" {
		t.Errorf("addr %q: the environment did not apply", c.Addr)
	}
	if c.Heartbeat != 7*time.Second {
		t.Errorf("heartbeat %v: the flag did not win", c.Heartbeat)
	}
	if c.PublisherJWTKey != "from mercure's variable" || c.SubscriberJWTKey != "herald's wins" {
		t.Errorf("keys %q %q", c.PublisherJWTKey, c.SubscriberJWTKey)
	}
	if !slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "https://b.example.com"}) {
		t.Errorf("cors origins %q", c.CORSOrigins)
	}
	if c.Anonymous == nil || *c.Anonymous {
		t.Errorf("anonymous %v: the flag did not win", c.Anonymous)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad duration in the environment", nil, map[string]string{"HERALD_HEARTBEAT": "soon"}, "HERALD_HEARTBEAT"},
		{"bad duration flag", []string{"-heartbeat", "soon"}, nil, "heartbeat"},
		{"unknown store", []string{"-store", "floppy"}, nil, "store"},
		{"negative heartbeat", []string{"-heartbeat", "-1s"}, nil, "heartbeat"},
		{"negative max batch interval", []string{"-max-batch-interval", "-1ms"}, nil, "max-batch-interval"},
		{"negative history", []string{"-history-size", "-1"}, nil, "history-size"},
		{"no data dir", []string{"-data-dir", ""}, nil, "data-dir"},
		{"half of TLS", []string{"-tls-cert", "c.pem"}, nil, "tls"},
		{"subscriber key alone", nil, map[string]string{"HERALD_SUBSCRIBER_JWT_KEY": "k"}, "subscriber-jwt-key"},
		{"log level", []string{"-log-level", "loud"}, nil, "log-level"},
		{"zero dispatch timeout", []string{"-dispatch-timeout", "0s"}, nil, "dispatch-timeout"},
		{"zero max selectors", []string{"-max-selectors", "0"}, nil, "max-selectors"},
		{"negative max claim selectors", nil, map[string]string{"HERALD_MAX_CLAIM_SELECTORS": "-1"}, "max-claim-selectors"},
		{"zero max templates", []string{"-max-templates", "0"}, nil, "max-templates"},
	} {
		_, err := load(t, c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
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
	config.Flags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(doc), "`-"+f.Name+"`") {
			t.Errorf("docs/config.md does not document -%s", f.Name)
		}
		env := regexp.MustCompile(`\(env ([A-Z_, ]+)\)`).FindStringSubmatch(f.Usage)
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

// Load says where each value came from, hides the keys, and reports every
// variable that does not parse, leaving its option as it was.
func TestSettings(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := config.Register(fs)
	if err := fs.Parse([]string{"-heartbeat", "7s", "-store", "memory"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"HERALD_HEARTBEAT":          "1s", // the flag wins
		"MERCURE_PUBLISHER_JWT_KEY": "a secret of 24 bytes....",
		"HERALD_MAX_TOPICS":         "many",
		"HERALD_MAX_BODY_SIZE":      "-1",
		"HERALD_WRITE_TIMEOUT":      "1m",
	}
	c, settings, err := l.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "HERALD_MAX_TOPICS") || !strings.Contains(err.Error(), "max-body-size") {
		t.Errorf("error %v, want HERALD_MAX_TOPICS's and max-body-size's", err)
	}
	if c.MaxTopics != config.Default().MaxTopics || c.WriteTimeout != time.Minute {
		t.Errorf("max topics %d, write timeout %v", c.MaxTopics, c.WriteTimeout)
	}
	got := map[string]config.Setting{}
	for _, s := range settings {
		got[s.Flag] = s
	}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := got[f.Name]; !ok {
			t.Errorf("no setting for -%s", f.Name)
		}
	})
	for _, want := range []config.Setting{
		{"heartbeat", "7s", "flag -heartbeat"},
		{"store", "memory", "flag -store"},
		{"write-timeout", "1m0s", "environment HERALD_WRITE_TIMEOUT"},
		{"publisher-jwt-key", "(24 bytes, hidden)", "environment MERCURE_PUBLISHER_JWT_KEY"},
		{"max-topics", "1000", "default"},
		{"max-selectors", "256", "default"},
		{"max-claim-selectors", "1000", "default"},
		{"max-templates", "10000", "default"},
		{"addr", ":8080", "default"},
		{"subscriber-jwt-key", "", "default"},
	} {
		if got[want.Flag] != want {
			t.Errorf("%+v, want %+v", got[want.Flag], want)
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
