#!/usr/bin/env bash
# bench/publish.sh measures durable publication beside Mercure 0.24.2, in
# one run: acknowledged publications per second with 1 and with 16
# concurrent publishers, and one subscriber that must receive them all.
# It builds herald and Mercure (from the Go module proxy), runs each hub in
# turn, round after round, and prints the medians as Markdown.
#
# Environment: ROUNDS (default 5).
set -euo pipefail
cd "$(dirname "$0")"
exec go run ./cmd/compare -suite publish -rounds "${ROUNDS:-5}" -hubs herald,herald-bolt,mercure
