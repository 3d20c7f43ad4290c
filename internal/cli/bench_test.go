package cli_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herald-sse/herald/hub"
)

// benchCluster starts hubs that share one history, the nodes of a
// cluster in one process, and returns their URLs.
func benchCluster(t *testing.T, nodes int, secret string) []string {
	t.Helper()
	key, err := hub.NewKey("HS256", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	lg := hub.NewMemoryLog(hub.MemoryLogConfig{})
	t.Cleanup(func() { lg.Close() })
	var urls []string
	for range nodes {
		h, err := hub.New(hub.Config{PublisherKey: key, SubscriberKey: key, Log: lg})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(func() {
			srv.Close()
			h.Close()
		})
		urls = append(urls, srv.URL+hub.Path)
	}
	return urls
}

// herald bench takes the nodes of a cluster as several -url, repeated or
// comma-separated, and reports the run over all of them.
func TestBenchCluster(t *testing.T) {
	t.Parallel()
	const secret = "the secret of the cli's bench tests, long enough"
	u := benchCluster(t, 3, secret)
	code, out, errOut := cmd(t, nil, "", "bench", "fanout", "-key", secret, "-url", u[0]+","+u[1], "-url", u[2],
		"-subscribers", "6", "-events", "300", "-publishers", "3", "-json")
	var res struct {
		Nodes                        int
		Published                    int
		Expected, Delivered, Missing int64
		Duplicated                   int64
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if res.Nodes != 3 || res.Published != 300 || res.Expected != 1800 || res.Delivered != 1800 || res.Missing != 0 || res.Duplicated != 0 {
		t.Fatalf("%+v", res)
	}

	code, out, errOut = cmd(t, nil, "", "bench", "reconnect", "-key", secret, "-url", strings.Join(u, ","),
		"-subscribers", "9", "-events", "300", "-rate", "1000", "-kill-every", "0", "-cut-node", "2", "-cut-at", "100ms")
	if code != 0 || !strings.Contains(out, "node 2     cut off at") || !strings.Contains(out, "3 of its 3 subscribers resumed on other nodes") ||
		!strings.Contains(out, ", over 3 nodes") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
}

// The flags of a cluster run that cannot work are refused before anything
// is loaded.
func TestBenchClusterFlags(t *testing.T) {
	t.Parallel()
	two := []string{"-url", "http://127.0.0.1:1/a,http://127.0.0.1:2/a"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"conns"}, two...), "conns loads one hub"},
		{append([]string{"slow"}, two...), "slow loads one hub"},
		{[]string{"reconnect", "-cut-node", "0"}, "a node cut needs a cluster"},
		{append([]string{"reconnect", "-cut-node", "2"}, two...), "-cut-node 2: want the index of one of the 2 -url"},
		{append([]string{"reconnect", "-cut-pid", "1"}, two...), "-cut-pid without -cut-node"},
		{append([]string{"reconnect", "-kill-every", "0"}, two...), "or 0 with -cut-node"},
		{[]string{"fanout", "-url", "http://127.0.0.1:1/a,,http://127.0.0.1:2/a"}, "an empty URL"},
		{[]string{"fanout", "-url", "http://127.0.0.1:1/a", "-url", "http://example.com/a"}, "loads only hubs on this machine"},
	} {
		code, _, errOut := cmd(t, nil, "", append([]string{"bench"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, %q", c.args, code, errOut)
		}
	}
}
