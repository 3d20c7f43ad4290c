package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReplaceBlock(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n<!-- peers:fanout -->\nold table\n\nmore old\n<!-- /peers:fanout -->\n\n<!-- peers:conns -->\nconns table\n<!-- /peers:conns -->\ntail\n"
	got, err := replaceBlock([]byte(doc), "fanout", []byte("\n| new | table |\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nintro\n\n<!-- peers:fanout -->\n\n| new | table |\n\n<!-- /peers:fanout -->\n\n<!-- peers:conns -->\nconns table\n<!-- /peers:conns -->\ntail\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Writing again gives the same document.
	again, err := replaceBlock(got, "fanout", []byte("| new | table |"))
	if err != nil || string(again) != want {
		t.Errorf("a second write changed the document: %v\n%s", err, again)
	}
}

func TestReplaceBlockMissing(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"no block\n", `no line "<!-- peers:fanout -->"`},
		{"<!-- peers:fanout -->\nunclosed\n", `not closed by a line "<!-- /peers:fanout -->"`},
		// A marker must be a line of its own, not text that mentions it.
		{"see `<!-- peers:fanout -->` below\n<!-- /peers:fanout -->\n", `no line "<!-- peers:fanout -->"`},
		// Another suite's block is not this one's.
		{"<!-- peers:fanout-x -->\n<!-- /peers:fanout-x -->\n", `no line "<!-- peers:fanout -->"`},
	} {
		_, err := replaceBlock([]byte(tc.doc), "fanout", []byte("x"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %s", tc.doc, err, tc.want)
		}
	}
}

func TestRelativeTo(t *testing.T) {
	// bench/peers.sh runs in bench/ and writes ../BENCHMARKS.md and scale.svg.
	got, err := relativeTo("../BENCHMARKS.md", "scale.svg")
	if err != nil || !strings.HasSuffix(got, "/scale.svg") || strings.HasPrefix(got, "..") {
		t.Errorf("got %q, %v; want a path down into this directory", got, err)
	}
	if got, err := relativeTo("doc/x.md", "doc/img/c.svg"); err != nil || got != "img/c.svg" {
		t.Errorf("got %q, %v; want img/c.svg", got, err)
	}
}

func TestResolveHubs(t *testing.T) {
	redis := &redisServer{addr: "127.0.0.1:6379", db: 15}
	built := map[string]bool{}
	buildAt := func(rev string) string { built[rev] = true; return "/bin/herald@" + rev }
	for _, tc := range []struct {
		name  string
		bin   string
		nodes int
		redis bool
		extra []string
	}{
		{"herald", "/bin/herald", 1, false, nil},
		{"herald-redis", "/bin/herald", 1, true, nil},
		{"herald-redis2", "/bin/herald", 2, true, nil},
		{"herald-redis3", "/bin/herald", 3, true, nil},
		{"herald-redis3+batch-interval=20ms", "/bin/herald", 3, true, []string{"-batch-interval", "20ms"}},
		{"herald+store=memory+h2c=true", "/bin/herald", 1, false, []string{"-store", "memory", "-h2c", "true"}},
		{"herald@abc123", "/bin/herald@abc123", 1, false, nil},
		{"herald@abc123+store=bolt", "/bin/herald@abc123", 1, false, []string{"-store", "bolt"}},
	} {
		all := map[string]hub{"herald": heraldHub("herald", "/bin/herald", 1, nil)}
		if err := resolveHubs([]string{tc.name}, all, "/bin/herald", redis, buildAt); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		h := all[tc.name]
		if h.bin != tc.bin || h.nodes != tc.nodes || (h.redis != nil) != tc.redis || !slices.Equal(h.extra, tc.extra) {
			t.Errorf("%s: bin %s, %d nodes, redis %v, extra %q", tc.name, h.bin, h.nodes, h.redis != nil, h.extra)
		}
		// The command of a node: on Redis with the database's URL.
		args := strings.Join(h.start("/tmp/d", 12345).Args, " ")
		if strings.Contains(args, "-redis redis://127.0.0.1:6379/15") != tc.redis || !strings.Contains(args, "-addr 127.0.0.1:12345") {
			t.Errorf("%s: %s", tc.name, args)
		}
	}
	if !built["abc123"] {
		t.Error("herald@abc123 was not built")
	}
	for _, name := range []string{"herald-redis0", "herald-redis10", "herald-redis02", "herald-redisx", "herald-redis2+batch-interval", "nchan+x=y", "herald-bolt"} {
		all := map[string]hub{"herald": heraldHub("herald", "/bin/herald", 1, nil)}
		if err := resolveHubs([]string{name}, all, "/bin/herald", redis, buildAt); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}

// The load tool gets every node's URL, and a node cut the node's process.
func TestTargetAndCut(t *testing.T) {
	got := strings.Join(mercureURLs([]int{1, 2}), " ")
	if got != "-url http://127.0.0.1:1/.well-known/mercure,http://127.0.0.1:2/.well-known/mercure" {
		t.Errorf("%s", got)
	}
	for _, tc := range []struct {
		args []string
		node int
		ok   bool
	}{
		{[]string{"reconnect", "-cut-node", "1", "-cut-at", "5s"}, 1, true},
		{[]string{"reconnect", "-cut-node", "-1"}, 0, false},
		{[]string{"reconnect", "-cut-node"}, 0, false},
		{[]string{"reconnect", "-kill-every", "20ms"}, 0, false},
	} {
		if n, ok := cutNode(tc.args); n != tc.node && tc.ok || ok != tc.ok {
			t.Errorf("%q: %d %v", tc.args, n, ok)
		}
	}
	for _, name := range []string{"cluster", "cluster-kill"} {
		for _, sc := range suites[name].scenarios {
			if _, ok := cutNode(sc.args); ok != (sc.metrics[2].path[0] == "node_cut") {
				t.Errorf("%s: %s: a node cut and its metrics do not agree", name, sc.name)
			}
		}
	}
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"+OK\r\n", "OK", ""},
		{":42\r\n", "42", ""},
		{"$10\r\nhello\r\nyou\r\n", "hello\r\nyou", ""},
		{"$-1\r\n", "", ""},
		{"-ERR unknown command\r\n", "", "ERR unknown command"},
		{"*1\r\n$1\r\na\r\n", "", "unexpected reply"},
		{"$5\r\nab", "", "EOF"},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %q, %v", tc.in, got, err)
		}
	}
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:6379\r\n"
	if v, ok := infoField(info, "process_id"); !ok || v != "4242" {
		t.Errorf("process_id: %q %v", v, ok)
	}
	if _, ok := infoField(info, "process"); ok {
		t.Error("a prefix of a field's name matched")
	}
}

// The runner stops, and says why, when the herald it would run on Redis
// does not have -redis, or when Redis does not answer.
func TestCheckRedis(t *testing.T) {
	dir := t.TempDir()
	script := func(name, usage string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\ncat >&2 <<'EOF'\n"+usage+"EOF\nexit 2\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	old := script("old", "Usage of serve:\n  -addr address\n    \tthe address; -redis is not here\n")
	withRedis := script("new", "Usage of serve:\n  -addr address\n    \tthe address\n  -redis URL\n    \tthe Redis\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	redis := &redisServer{addr: closed, db: 15}
	for _, tc := range []struct {
		bin, want string
	}{
		{old, "has no -redis flag: its Redis store is not in it yet"},
		{withRedis, "need the Redis server at " + closed},
	} {
		all := map[string]hub{}
		if err := resolveHubs([]string{"herald-redis2"}, all, tc.bin, redis, nil); err != nil {
			t.Fatal(err)
		}
		err := checkRedis([]string{"herald-redis2"}, all, "commit x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.bin, err)
		}
	}
	// Hubs that are not on Redis need neither.
	all := map[string]hub{"herald": heraldHub("herald", old, 1, nil)}
	if err := checkRedis([]string{"herald"}, all, "commit x"); err != nil {
		t.Error(err)
	}
}

// A hub of two nodes, each a herald serve process: the load tool gets both,
// and a node cut kills the node's process. The nodes' embedded stores do
// not share a history, so the events are not checked here, only that the
// run reached both nodes and killed the one it cut: node 0, where the one
// subscriber is (the probes go through node 0, and a subscriber of node 1
// would never get them), which then resumes on node 1.
func TestRunTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds herald")
	}
	dir := t.TempDir()
	herald := filepath.Join(dir, "herald")
	build(herald, "../../..", "./cmd/herald")
	h := heraldHub("herald-two", herald, 2, nil, "-store", "memory")
	sc := scenario{name: "cut", args: []string{"reconnect", "-subscribers", "1", "-events", "200", "-rate", "400",
		"-publishers", "2", "-kill-every", "0", "-cut-node", "0", "-cut-at", "100ms", "-drain", "2s"}}
	res, err := run(herald, h, sc, filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	cut, _ := res["node_cut"].(map[string]any)
	if res["nodes"] != 2.0 || cut == nil || cut["killed"] != true || cut["subscribers"] != 1.0 || cut["resumed"] != 1.0 {
		t.Fatalf("%v", res)
	}
}

// Redis's CPU is a figure of the hubs on Redis only; an omitted figure of
// the others is zero.
func TestMetricValue(t *testing.T) {
	redisCPU := clusterMetrics[6]
	if redisCPU.path[0] != "redis_cpu_seconds" {
		t.Fatalf("clusterMetrics[6] is %s", redisCPU.label)
	}
	if v, ok := redisCPU.value(map[string]any{"redis_pid": 7.0, "redis_cpu_seconds": 1.5}); !ok || v != 1.5 {
		t.Errorf("on Redis: %v %v", v, ok)
	}
	if v, ok := redisCPU.value(map[string]any{"redis_pid": 7.0}); !ok || v != 0 {
		t.Errorf("on an idle Redis: %v %v", v, ok)
	}
	if _, ok := redisCPU.value(map[string]any{"hub_cpu_seconds": 1.0}); ok {
		t.Error("a hub without Redis has a Redis figure")
	}
	if v, ok := fanoutMetrics[0].value(map[string]any{}); !ok || v != 0 {
		t.Errorf("an omitted figure: %v %v", v, ok)
	}
}
