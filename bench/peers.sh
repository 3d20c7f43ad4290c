#!/usr/bin/env bash
# bench/peers.sh measures herald beside Mercure 0.24.2 and nchan (Debian's
# nginx module, two workers) in one run: idle connections, fan-out at
# saturation and paced, a reconnection storm, subscribers that never read
# beside some that do, publication without a disk,
# as many connections as the file-descriptor limit allows, and the sweeps of
# subscribers and topics behind the chart. It prints Markdown tables of
# medians and ratios, puts them in BENCHMARKS.md (each suite's block under
# "The latest run of bench/peers.sh"; the chart in bench/scale.svg), and
# leaves the raw results in bench/results/.
#
# Usage: bench/peers.sh [suite...]   (default: all of them, about 50 minutes)
# Environment: ROUNDS (default 3; the sweeps run once).
#
# nchan needs nginx-light and libnginx-mod-nchan (installed here when
# missing, as root), and 20,000 file descriptors (ulimit -n).
set -euo pipefail
cd "$(dirname "$0")"
if ! [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light libnginx-mod-nchan >/dev/null
	# Debian starts the packaged nginx; the benchmark runs its own.
	systemctl stop nginx 2>/dev/null || pkill -x nginx || true
fi
ulimit -n 20000 2>/dev/null || echo "peers.sh: cannot raise the file-descriptor limit to 20000; large runs will fail" >&2
mkdir -p results
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(conns fanout reconnect slow publish-memory max scale)
for s in "${suites[@]}"; do
	rounds=${ROUNDS:-3}
	[ "$s" = scale ] && rounds=1
	go run ./cmd/compare -suite "$s" -rounds "$rounds" -write ../BENCHMARKS.md -chart scale.svg | tee "results/$s-latest.md"
done
