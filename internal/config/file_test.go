package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	t.Parallel()
	const every = `addr = "127.0.0.1:9000"
publisher-jwt-key = """
a secret of 32 bytes or more, over two lines"""
anonymous = true
cors-origins = ["https://a.example.com", "https://b.example.com"]
publish-origins = "https://a.example.com https://c.example.com"
subscriptions = true
heartbeat = "15s"
max-topics = 12
max-body-size = "2048"
`
	l, err := load(t, []string{"-config", writeFile(t, "herald.toml", every)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Addr != "127.0.0.1:9000" || c.PublisherJWTKey != "a secret of 32 bytes or more, over two lines" ||
		c.Anonymous == nil || !*c.Anonymous || (c.Subscriptions == nil || !*c.Subscriptions) || c.Heartbeat != 15*time.Second ||
		c.MaxTopics != 12 || c.MaxBodySize != 2048 {
		t.Errorf("%+v", c)
	}
	if !slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "https://b.example.com"}) ||
		!slices.Equal(c.PublishOrigins, []string{"https://a.example.com", "https://c.example.com"}) {
		t.Errorf("origins %q %q", c.CORSOrigins, c.PublishOrigins)
	}
	if s := setting(t, l, "max-topics"); !strings.HasSuffix(s.Source, "herald.toml:9") {
		t.Errorf("%+v", s)
	}
}

// A file's mistakes are problems, all of them, each with its line.
func TestFileProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		file    string // herald.toml, unless path says otherwise
		path    string
		want    []string // one per problem, in order, after the file's path
		envHint bool
	}{
		{
			name: "unknown keys",
			file: "heartbeat = \"5s\"\nhearbeat = \"5s\"\npublisher_jwt_key = \"k\"\nconfig = \"other.toml\"\n",
			want: []string{
				`:2: unknown key "hearbeat" (the keys are the flags of herald serve`,
				`:3: unknown key "publisher_jwt_key" (the keys are named like the flags: publisher-jwt-key)`,
				`:4: unknown key "config" (a file cannot name another)`,
			},
		},
		{
			name: "bad durations",
			file: "heartbeat = \"soon\"\n\nwrite-timeout = 600\n",
			want: []string{
				`:1: heartbeat: "soon" is not a duration: write it like 5s, 1m30s or 250ms`,
				`:3: write-timeout: 600 is not a duration: write it as a string, like "5s"`,
			},
		},
		{
			name: "wrong types",
			file: "max-topics = 1.5\nanonymous = \"perhaps\"\nstore = [\"bolt\"]\ncors-origins = [1]\n",
			want: []string{
				":1: max-topics: 1.5 is not a whole number",
				`:2: anonymous: "perhaps" is not a boolean`,
				":3: store: an array, where a single value is wanted",
				":4: cors-origins: item 1, 1, is not an origin",
			},
		},
		{
			name: "a value Validate refuses",
			file: "\nstore = \"floppy\"\n",
			want: []string{`:2: store: "floppy" is not one of`},
		},
		{
			name: "a table",
			file: "addr = \":80\"\n\n[server]\nport = 80\n",
			want: []string{`:3: unknown key "server"`},
		},
		{
			name: "not TOML",
			file: "addr = \":80\"\nheartbeat: 5s\n",
			want: []string{":2:"},
		},
		{
			name: "a duplicate key",
			file: "addr = \":80\"\naddr = \":81\"\n",
			want: []string{":2:"},
		},
		{
			name: "YAML",
			path: "herald.yaml",
			file: "addr: :80\n",
			want: []string{": herald reads TOML files"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := tc.path
			if name == "" {
				name = "herald.toml"
			}
			path := writeFile(t, name, tc.file)
			_, err := load(t, []string{"-config", path}, nil)
			got := problems(err)
			if len(got) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], path+w) && !strings.Contains(got[i], w) || !strings.Contains(got[i], path) {
					t.Errorf("problem %q, want %q after the path", got[i], w)
				}
			}
		})
	}
	// A file that is not there.
	_, err := load(t, nil, map[string]string{"HERALD_CONFIG": "/nonexistent/herald.toml"})
	if got := problems(err); len(got) != 1 || !strings.Contains(got[0], "/nonexistent/herald.toml") {
		t.Errorf("a missing file: %q", got)
	}
}

// docs/herald.example.toml holds every setting, loads, and holds the
// defaults; with its commented settings given, it loads too.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../../docs/herald.example.toml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	example, err := load(t, []string{"-config", path}, nil)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	for i, s := range defaults.Settings {
		if s.Flag == "config" {
			continue
		}
		if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(s.Flag) + ` = `).Match(data) {
			t.Errorf("the example has no %s", s.Flag)
		}
		if got := example.Settings[i]; got.Value != s.Value {
			t.Errorf("the example's %s is %q, the default %q", s.Flag, got.Value, s.Value)
		}
	}
	uncommented := regexp.MustCompile(`(?m)^# ([a-z-]+ = )`).ReplaceAll(data, []byte("$1"))
	if _, err := load(t, []string{"-config", writeFile(t, "all.toml", string(uncommented))}, nil); err != nil {
		t.Errorf("with every setting given, the example does not load: %v", err)
	}
}

// FuzzFile loads any file as a configuration file: never a panic, and a
// file that loads has no key herald does not know.
func FuzzFile(f *testing.F) {
	for _, s := range []string{"", "addr = \":80\"\n", "heartbeat = \"5s\"\n[t]\nx = 1\n", "a.b = 1\n", "cors-origins = [\"*\", 1]\n", "\"quoted\" = 1\n"} {
		f.Add([]byte(s))
	}
	example, err := os.ReadFile("../../docs/herald.example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFile(t, "fuzz.toml", string(data))
		_, _ = load(t, []string{"-config", path}, nil)
	})
}
