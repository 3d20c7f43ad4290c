package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/internal/config"
)

// MERCURE_EXTRA_DIRECTIVES: each directive herald maps, Caddyfile quoting
// and comments, blank lines, and the directives it cannot honour, each
// warned of by name.
func TestExtraDirectives(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		directives string
		env        map[string]string
		check      func(c config.Config) bool
		source     [2]string // an option and its source
		warnings   []string  // substrings, one per warning
		problems   []string  // substrings, one per problem
	}{
		{name: "anonymous", directives: "anonymous",
			check:  func(c config.Config) bool { return c.Anonymous != nil && *c.Anonymous },
			source: [2]string{"anonymous", "MERCURE_EXTRA_DIRECTIVES (anonymous)"}},
		{name: "subscriptions", directives: "subscriptions",
			check: func(c config.Config) bool { return c.Subscriptions != nil && *c.Subscriptions }},
		{name: "cors_origins", directives: "cors_origins https://a.example.com https://b.example.com",
			check: func(c config.Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "https://b.example.com"})
			},
			source: [2]string{"cors-origins", "MERCURE_EXTRA_DIRECTIVES (cors_origins https://a.example.com https://b.example.com)"}},
		{name: "cors_origins any", directives: "cors_origins *",
			check: func(c config.Config) bool { return slices.Equal(c.CORSOrigins, []string{"*"}) }},
		{name: "publish_origins", directives: "publish_origins https://a.example.com",
			check: func(c config.Config) bool { return slices.Equal(c.PublishOrigins, []string{"https://a.example.com"}) }},
		{name: "cookie_name", directives: "cookie_name herald",
			check: func(c config.Config) bool { return c.CookieName == "herald" }},
		{name: "heartbeat", directives: "heartbeat 15s",
			check: func(c config.Config) bool { return c.Heartbeat == 15*time.Second }},
		{name: "write_timeout", directives: "write_timeout 0s",
			check: func(c config.Config) bool { return c.WriteTimeout == 0 }},
		{name: "dispatch_timeout", directives: "dispatch_timeout 2s",
			check: func(c config.Config) bool { return c.DispatchTimeout == 2*time.Second }},
		{name: "dispatch_timeout 0", directives: "dispatch_timeout 0",
			check:    func(c config.Config) bool { return c.DispatchTimeout == 5*time.Second },
			warnings: []string{"MERCURE_EXTRA_DIRECTIVES line 1: dispatch_timeout: herald always bounds a write"}},
		{name: "keys", directives: "publisher_jwt {env.PUB_KEY} HS512\nsubscriber_jwt \"a subscriber key\"",
			env: map[string]string{"PUB_KEY": "from the placeholder"},
			check: func(c config.Config) bool {
				return c.PublisherJWTKey == "from the placeholder" && c.PublisherJWTAlg == "HS512" && c.SubscriberJWTKey == "a subscriber key"
			},
			source: [2]string{"publisher-jwt-key", "MERCURE_EXTRA_DIRECTIVES (publisher_jwt (key hidden))"}},
		{name: "transport_url bolt", directives: "transport_url bolt:///data/mercure.db?size=5000",
			check:    func(c config.Config) bool { return c.Store == "bolt" && c.DataDir == "/data" && c.HistorySize == 5000 },
			warnings: []string{"transport_url: herald keeps a bolt history of its own, history.db in -data-dir (/data); it cannot read Mercure's /data/mercure.db"}},
		{name: "transport_url bolt relative", directives: "transport_url bolt://mercure.db?cleanup_frequency=0.5",
			check: func(c config.Config) bool { return c.Store == "bolt" && c.DataDir == "." },
			warnings: []string{"it cannot read Mercure's mercure.db",
				"transport_url: cleanup_frequency: herald has no such setting"}},
		{name: "transport_url local", directives: "transport_url local://local",
			check:  func(c config.Config) bool { return c.Store == "memory" },
			source: [2]string{"store", "MERCURE_EXTRA_DIRECTIVES (transport_url local)"}},
		{name: "transport_url redis", directives: "transport_url redis://u:secret@localhost:6379/2?stream=mercure&max_length=5000",
			check: func(c config.Config) bool {
				return c.Redis == "redis://u:secret@localhost:6379/2" && c.HistorySize == 5000
			},
			warnings: []string{"transport_url: herald keeps a history of its own in Redis",
				"transport_url: stream: herald has no such setting for its Redis history"}},
		{name: "transport redis block", directives: "transport redis {\n\turl rediss://redis.internal:6380\n\tsize 100\n}",
			check:    func(c config.Config) bool { return c.Redis == "rediss://redis.internal:6380" && c.HistorySize == 100 },
			warnings: []string{"transport: herald keeps a history of its own in Redis"}},
		{name: "transport redis by address", directives: "transport redis {\n\taddress 10.0.0.5:6379\n}",
			check:    func(c config.Config) bool { return c.Redis == "redis://10.0.0.5:6379" },
			warnings: []string{"transport: herald keeps a history of its own in Redis"}},
		{name: "transport_url postgres", directives: "transport_url postgres://localhost/mercure",
			check:    func(c config.Config) bool { return c.Store == "pebble" && c.Redis == "" },
			warnings: []string{"transport_url: herald has no postgres transport"}},
		{name: "transport block", directives: "transport bolt {\n\tpath /srv/mercure.db\n\tsize 0\n}",
			check: func(c config.Config) bool { return c.Store == "bolt" && c.DataDir == "/srv" && c.HistorySize == 0 },
			warnings: []string{"transport: herald keeps a bolt history of its own",
				"transport: size 0: herald's history is always bounded"}},
		{name: "transport block on one line", directives: "transport bolt { path /srv/x.db }",
			check:    func(c config.Config) bool { return c.Store == "bolt" && c.DataDir == "/srv" },
			warnings: []string{"it cannot read Mercure's /srv/x.db"}},
		{name: "transport local", directives: "transport local",
			check: func(c config.Config) bool { return c.Store == "memory" }},
		{name: "MERCURE_TRANSPORT_URL", env: map[string]string{"MERCURE_TRANSPORT_URL": "local://local"},
			check:  func(c config.Config) bool { return c.Store == "memory" },
			source: [2]string{"store", "environment MERCURE_TRANSPORT_URL"}},
		{name: "Mercure's docker-compose example", directives: "anonymous\nsubscriptions\ncors_origins *",
			check: func(c config.Config) bool {
				return c.Anonymous != nil && *c.Anonymous && c.Subscriptions != nil && *c.Subscriptions && slices.Equal(c.CORSOrigins, []string{"*"})
			}},
		{name: "a shell's \\n", directives: `anonymous\nsubscriptions\ncors_origins *`,
			check: func(c config.Config) bool {
				return c.Anonymous != nil && *c.Anonymous && c.Subscriptions != nil && *c.Subscriptions && slices.Equal(c.CORSOrigins, []string{"*"})
			}},
		{name: "blank lines, comments, indentation, CRLF", directives: "\n\n  # the hub's settings\r\n\tanonymous # and a comment\r\n\n   heartbeat   15s  \n\n",
			check: func(c config.Config) bool { return c.Anonymous != nil && *c.Anonymous && c.Heartbeat == 15*time.Second }},
		{name: "quoting", directives: "cookie_name \"a name\"\ncors_origins `https://a.example.com` \"https://b.example.com\"",
			check: func(c config.Config) bool {
				return c.CookieName == "a name" && slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "https://b.example.com"})
			}},
		{name: "an escaped quote", directives: `cookie_name "a \"b\""`,
			check: func(c config.Config) bool { return c.CookieName == `a "b"` }},
		{name: "{$VAR} and a default", directives: "heartbeat {$HB:20s}\nwrite_timeout {$WT:1m}",
			env:   map[string]string{"HB": "25s"},
			check: func(c config.Config) bool { return c.Heartbeat == 25*time.Second && c.WriteTimeout == time.Minute }},
		{name: "a later directive wins", directives: "heartbeat 15s\nheartbeat 16s",
			check: func(c config.Config) bool { return c.Heartbeat == 16*time.Second }},
		{name: "what herald cannot honour, by name",
			directives: "anonymous\ndebugger\nplayground\ntopic_selector_cache 10000\nsubscriber_list_cache_size 100\ntopic_matcher_cache 10\npublisher_jwks_url https://x/jwks\nprotocol_version_compatibility 8\nlazy\n",
			check:      func(c config.Config) bool { return c.Anonymous != nil && *c.Anonymous },
			warnings: []string{
				"line 2: debugger: herald serves one web page",
				"line 3: playground: herald serves one web page",
				"line 4: topic_selector_cache: herald needs no cache",
				"line 5: subscriber_list_cache_size: herald needs no cache",
				"line 6: topic_matcher_cache: herald needs no cache",
				"line 7: publisher_jwks_url: herald does not fetch key sets",
				"line 8: protocol_version_compatibility: herald speaks Mercure's 0.x protocol",
				"line 9: lazy: not a Mercure directive herald knows",
			}},
		{name: "ui and demo turn the page on", directives: "ui\ndemo",
			check:  func(c config.Config) bool { return c.UI },
			source: [2]string{"ui", "MERCURE_EXTRA_DIRECTIVES (demo)"}},
		{name: "protocol_version_compatibility 7 is what herald does", directives: "protocol_version_compatibility 7",
			check: func(c config.Config) bool { return true }},
		{name: "a bad duration", directives: "anonymous\nheartbeat soon",
			check:    func(c config.Config) bool { return c.Heartbeat == 40*time.Second },
			problems: []string{`MERCURE_EXTRA_DIRECTIVES line 2 (heartbeat soon): "soon" is not a duration: write it like 5s, 1m30s or 250ms`}},
		{name: "a missing argument", directives: "heartbeat",
			check:    func(c config.Config) bool { return true },
			problems: []string{"MERCURE_EXTRA_DIRECTIVES line 1: heartbeat: takes one argument"}},
		{name: "a quote not closed", directives: "cookie_name \"a",
			check:    func(c config.Config) bool { return true },
			problems: []string{"MERCURE_EXTRA_DIRECTIVES: line 1: a quote \" that is not closed"}},
		{name: "a block not closed", directives: "transport bolt {\npath x",
			check:    func(c config.Config) bool { return true },
			problems: []string{"MERCURE_EXTRA_DIRECTIVES: line 1: a block { that is not closed"}},
		{name: "a brace that closes nothing", directives: "anonymous\n}",
			check:    func(c config.Config) bool { return true },
			problems: []string{"MERCURE_EXTRA_DIRECTIVES: line 2: a } that closes no block"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.directives != "" {
				env["MERCURE_EXTRA_DIRECTIVES"] = tc.directives
			}
			for k, v := range tc.env {
				env[k] = v
			}
			l, err := load(t, nil, env)
			got := problems(err)
			if len(got) != len(tc.problems) {
				t.Fatalf("problems %q, want %q", got, tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.Contains(got[i], p) {
					t.Errorf("problem %q, want %q", got[i], p)
				}
			}
			if !tc.check(l.Config) {
				t.Errorf("%+v", l.Config)
			}
			if tc.source[0] != "" {
				if s := setting(t, l, tc.source[0]); s.Source != tc.source[1] {
					t.Errorf("%s from %q, want %q", tc.source[0], s.Source, tc.source[1])
				}
			}
			if len(l.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings:\n%s\nwant %q", strings.Join(l.Warnings, "\n"), tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(l.Warnings[i], w) {
					t.Errorf("warning %q, want %q", l.Warnings[i], w)
				}
			}
		})
	}
}

// The directives come below herald's and Mercure's own variables, above
// the file.
func TestDirectivePrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "herald.toml", "cookie-name = \"from the file\"\nheartbeat = \"1s\"\n")
	l, err := load(t, []string{"-config", file}, map[string]string{
		"MERCURE_EXTRA_DIRECTIVES": "cookie_name from_directive\nheartbeat 2s\nsubscriptions",
		"HERALD_HEARTBEAT":         "3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Config; c.CookieName != "from_directive" || c.Heartbeat != 3*time.Second || (c.Subscriptions == nil || !*c.Subscriptions) {
		t.Errorf("%+v", c)
	}
}

// SERVER_NAME, Caddy's site address, gives addr its port; herald obtains
// no certificate, and says so where Caddy would have.
func TestServerName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, server string
		env          map[string]string
		addr         string
		warning      string
	}{
		{"a port", ":80", nil, ":80", ""},
		{"another port", ":3000", nil, ":3000", ""},
		{"plain HTTP", "http://example.com", nil, ":80", ""},
		{"plain HTTP on a port", "http://localhost:8080", nil, ":8080", ""},
		{"a host name", "example.com", nil, ":80", "Caddy would serve HTTPS for example.com with a certificate it obtains; herald obtains none, so it serves plain HTTP on :80"},
		{"localhost", "localhost", nil, ":80", "Caddy would serve HTTPS for localhost"},
		{"a host name with a certificate", "example.com", map[string]string{"HERALD_TLS_CERT": "c.pem", "HERALD_TLS_KEY": "k.pem"}, ":443", ""},
		{"a host name with the development certificate", "localhost", map[string]string{"HERALD_DEV_TLS": "true"}, ":443", ""},
		{"HTTPS on a port", "https://example.com:8443", nil, ":8443", "Caddy would serve HTTPS"},
		{"two sites", ":80, :81", nil, ":80", "herald listens on one address, the first site's: :80"},
		{"HERALD_ADDR wins, and no warning", "example.com", map[string]string{"HERALD_ADDR": ":9000"}, ":9000", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"SERVER_NAME": tc.server}
			for k, v := range tc.env {
				env[k] = v
			}
			l, err := load(t, nil, env)
			if err != nil {
				t.Fatal(err)
			}
			if l.Config.Addr != tc.addr {
				t.Errorf("addr %q, want %q", l.Config.Addr, tc.addr)
			}
			if s := setting(t, l, "addr"); tc.env["HERALD_ADDR"] == "" && s.Source != "SERVER_NAME ("+tc.server+")" {
				t.Errorf("%+v", s)
			}
			switch {
			case tc.warning == "" && len(l.Warnings) > 0:
				t.Errorf("warnings %q", l.Warnings)
			case tc.warning != "" && (len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], tc.warning)):
				t.Errorf("warnings %q, want one with %q", l.Warnings, tc.warning)
			}
		})
	}
}

// FuzzExtraDirectives reads any MERCURE_EXTRA_DIRECTIVES: never a panic,
// and every warning names the variable.
func FuzzExtraDirectives(f *testing.F) {
	for _, s := range []string{
		"anonymous\nsubscriptions\ncors_origins *",
		`anonymous\nheartbeat 15s`,
		"transport bolt {\n\tpath /data/mercure.db\n}",
		"transport bolt { path x } }",
		"cookie_name \"a \\\"b\\\"\"\n# comment\n`raw`",
		"{ {",
		"heartbeat {$X:1s} {env.Y}",
		"transport_url bolt://x.db?size=1&bucket_name=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs := newFlagSet()
		l := config.Register(fs)
		loaded, _ := l.Load(func(k string) (string, bool) {
			if k == "MERCURE_EXTRA_DIRECTIVES" {
				return s, true
			}
			return "", false
		})
		for _, w := range loaded.Warnings {
			if !strings.HasPrefix(w, "MERCURE_EXTRA_DIRECTIVES") {
				t.Errorf("warning %q does not name the variable", w)
			}
		}
	})
}
