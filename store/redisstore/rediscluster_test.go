package redisstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/hub/hubtest"
	"github.com/herald-sse/herald/store/redisstore"
	"github.com/redis/go-redis/v9"
)

// startRedisCluster starts a Redis Cluster of three masters on loopback,
// from Debian's redis-server and redis-cli, in a directory of the test's
// own, and returns a store URL for it (its nodes as seeds). It stops the
// servers at the end of the test.
func startRedisCluster(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		port := freeClusterPort(t)
		node := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(node, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(node, "nodes.conf"),
			"--save", "", "--appendonly", "no", "--dir", node, "--logfile", filepath.Join(node, "log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("redis-server, which this test needs (scripts/test.sh installs it): %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		waitForRedis(t, addr)
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must know every slot's owner before the test begins.
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster node %s is not ready: %q %v", addr, info, err)
			}
		}
		c.Close()
	}
	return "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
}

// freeClusterPort returns a loopback port that is free, and whose cluster
// bus port (port+10000) is free too.
func freeClusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(30000)
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return port
	}
	t.Fatal("no free pair of ports for a cluster node")
	return 0
}

func waitForRedis(t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(20 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server at %s does not answer", addr)
		}
	}
}

// On a Redis Cluster of three masters, the store passes the same suite as
// on one server, and so does presence: every key of a deployment has one
// hash tag, so no command spans slots (no CROSSSLOT), and the client
// follows the slot to its master.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	url := startRedisCluster(t)
	clusterClient := func(t *testing.T) redis.UniversalClient {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClusterClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// Each test has a prefix of its own; a Redis Cluster is emptied with
	// it at the end.
	t.Run("Log", func(t *testing.T) {
		hubtest.Run(t, hubtest.Suite{
			New: func(t *testing.T, o hubtest.Options) hub.Log {
				return open(t, redisstore.Config{URL: url, Prefix: prefix(t), Size: o.Size, MaxAge: o.MaxAge})
			},
			Lose: func(t *testing.T) (hub.Log, func()) {
				p := prefix(t)
				c := clusterClient(t)
				return open(t, redisstore.Config{URL: url, Prefix: p}), func() {
					k := "{" + p + "}:" // one slot: one DEL on its master
					if err := c.Del(t.Context(), k+"epoch", k+"last", k+"first", k+"log", k+"ids").Err(); err != nil {
						t.Fatal(err)
					}
				}
			},
		})
	})
	t.Run("Presence", func(t *testing.T) {
		hubtest.RunPresence(t, func(t *testing.T) hub.Presence {
			p := redisstore.NewPresence(clusterClient(t), redisstore.PresenceConfig{Prefix: prefix(t)})
			t.Cleanup(func() { _ = p.Close() })
			return p
		})
	})
}
