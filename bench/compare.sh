#!/usr/bin/env bash
# bench/compare.sh runs herald's benchmarks at a base commit (default HEAD~1)
# and in the working tree, and shows the change with benchstat.
#
# Usage: bench/compare.sh [base] [benchmark regexp]
# Environment: COUNT (default 10), BENCHTIME (default 300ms).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}
pattern=${2:-.}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/base" "$base" >/dev/null
run() {
	(cd "$1/bench" && go test -run '^$' -bench "$pattern" -benchtime "${BENCHTIME:-300ms}" -count "${COUNT:-10}" ./...)
}
run "$tmp/base" >"$tmp/old.txt"
run . >"$tmp/new.txt"
(cd bench && go tool benchstat -filter '/impl:herald' "$tmp/old.txt" "$tmp/new.txt")
