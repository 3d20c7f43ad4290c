#!/usr/bin/env bash
# bench/sse.sh compares herald's sse package with the parsers and encoders of
# github.com/tmaxmax/go-sse and github.com/launchdarkly/eventsource, in one
# run on this machine, and prints the medians side by side with benchstat.
#
# Environment:
#   COUNT      runs of each benchmark (default 10)
#   BENCHTIME  time per run (default 300ms)
#   OUT        file for the raw results (default bench/results/sse.txt)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
out=${OUT:-results/sse.txt}
go test -run '^$' -bench . -benchtime "${BENCHTIME:-300ms}" -count "${COUNT:-10}" ./ssebench | tee "$out"
echo
go tool benchstat -col /impl "$out"
