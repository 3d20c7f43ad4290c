#!/usr/bin/env bash
# scripts/test.sh runs every test of herald, the same way on a laptop and in
# CI (.ci/run calls it): formatting, go vet, the dependency rule of the light
# packages, all tests under the race detector, the long tests at full size, a
# short fuzzing run of each parser, and a single pass of every benchmark (so
# that none rots).
#
# Whatever the tests need that a fresh machine may lack, this script installs
# or starts, idempotently.
#
# Environment:
#   FUZZTIME   how long each fuzz target runs (default 60000x: a count of inputs,
#              a few seconds each; 0 skips fuzzing). A count, not a duration:
#              with a duration Go 1.26's fuzz coordinator can fail at the
#              deadline with "context deadline exceeded" and no crasher
#              (go.dev/issue/75804, fixed in Go 1.27).
#   HERALD_LONG  when set (HERALD_LONG=1), the race detector's run takes the long
#              tests at their full sizes too (hubtest.LongEnv: a million-event
#              history per store, minutes under the race detector: Pebble
#              checks its invariants in race builds). Otherwise that run
#              takes them with smaller sizes, on the same paths, and a run
#              without the race detector at full size follows; the whole
#              script takes about two minutes on two idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-60000x}
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

step "toolchain"
go version

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted
	exit 1
fi

step "go vet"
go vet ./...
(cd bench && go vet ./...)

step "go vet for macOS and Windows (the files of other platforms)"
for goos in darwin windows; do
	GOOS=$goos go vet ./hub/... ./internal/... ./sse/... ./client/... ./store/...
done

step "sse and client import only the standard library"
for pkg in ./sse ./client; do
	extra=$(go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' "$pkg" | grep -Ev '^github.com/herald-sse/herald/(sse|client)$' || true)
	if [ -n "$extra" ]; then
		echo "$pkg imports non-standard packages: $extra"
		exit 1
	fi
done

# The browser tests (internal/browser) drive Debian's Chromium; they fail
# without it.
step "chromium"
if [ ! -x /usr/bin/chromium ]; then
	apt="env DEBIAN_FRONTEND=noninteractive apt-get"
	[ "$(id -u)" -eq 0 ] || apt="sudo $apt"
	$apt install -y chromium || { $apt update && $apt install -y chromium; }
fi
/usr/bin/chromium --version

# The Redis store's tests (store/redisstore, internal/daemon) use a Redis
# server on 127.0.0.1:6379, Debian's, keeping nothing on disk; they fail
# without it.
step "redis"
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
	if ! command -v redis-server >/dev/null; then
		apt="env DEBIAN_FRONTEND=noninteractive apt-get"
		[ "$(id -u)" -eq 0 ] || apt="sudo $apt"
		$apt install -y redis-server || { $apt update && $apt install -y redis-server; }
	fi
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo mkdir -p /var/lib/redis /var/log/redis
	$sudo redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log
	for _ in $(seq 100); do
		redis-cli -p 6379 ping >/dev/null 2>&1 && break
		sleep 0.1
	done
fi
redis-cli -p 6379 ping

step "go test -race"
go test -race -count=1 ./...

# The long tests (named ...Long...) at full size, without the race detector,
# which the run above gave them at smaller sizes.
step "the long tests at full size"
HERALD_LONG=1 go test -count=1 -run 'Long' ./...

if [ "$FUZZTIME" != "0" ]; then
	step "fuzzing, $FUZZTIME per target"
	for target in sse:FuzzDecode sse:FuzzRoundTrip hub:FuzzPublish hub:FuzzParseUpdate hub:FuzzSubscribe hub:FuzzMatch hub:FuzzParsePlain store/internal/record:FuzzDecode internal/config:FuzzExtraDirectives internal/config:FuzzFile; do
		go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$FUZZTIME" "./${target%%:*}"
	done
fi

step "the container image and the systemd unit"
scripts/image-check.sh

step "benchmark module: tests and one pass of each benchmark"
(cd bench && go test -count=1 -bench . -benchtime 1x ./...)

step "all tests passed"
