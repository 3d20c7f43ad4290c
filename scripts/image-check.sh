#!/usr/bin/env bash
# scripts/image-check.sh checks what the Dockerfile and the systemd unit rely
# on, on a machine without a Docker engine or a running systemd:
#
#   - the binary, built as the Dockerfile builds it, is static;
#   - it runs in an otherwise empty root (the FROM scratch image) as uid
#     65532 with only /data writable: it starts, answers /healthz and
#     /readyz, keeps a publication, and stops on SIGTERM with status 0;
#   - systemd accepts deploy/herald.service.
#
# It needs root (chroot) or unprivileged user namespaces (unshare -r).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The Dockerfile's build command.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/root/herald" ./cmd/herald
if ! file "$work/root/herald" | grep -q 'statically linked'; then
	echo "the binary is not static: $(file "$work/root/herald")"
	exit 1
fi

mkdir -p "$work/root/data"
port=$((20000 + RANDOM % 20000))
key=image-check-key-image-check-key-0
if [ "$(id -u)" = 0 ]; then
	chown 65532:65532 "$work/root/data"
	run=(chroot --userspec=65532:65532 "$work/root")
else
	run=(unshare -r chroot "$work/root")
fi
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HERALD_ADDR=127.0.0.1:$port HERALD_DATA_DIR=/data HERALD_PUBLISHER_JWT_KEY=$key \
	"${run[@]}" /herald serve >"$work/log" 2>&1 &
pid=$!

url=http://127.0.0.1:$port
for _ in $(seq 200); do
	curl -fsS "$url/readyz" >/dev/null 2>&1 && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "herald exited in the empty root:"; cat "$work/log"; exit 1
	fi
	sleep 0.05
done
curl -fsS "$url/healthz" >/dev/null
curl -fsS "$url/readyz" >/dev/null
token=$("$work/root/herald" token -key "$key" -publish '*')
curl -fsS -H "Authorization: Bearer $token" -d topic=image-check -d data=kept "$url/.well-known/mercure" >/dev/null
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" != 0 ]; then
	echo "herald exited with status $status on SIGTERM:"; cat "$work/log"; exit 1
fi
if [ -z "$(ls -A "$work/root/data")" ]; then
	echo "herald kept nothing in /data"; exit 1
fi
echo "the static binary runs in an empty root as uid 65532, and stops cleanly on SIGTERM"

sed "s#/usr/local/bin/herald#$work/root/herald#" deploy/herald.service >"$work/herald.service"
systemd-analyze verify "$work/herald.service"
echo "systemd accepts deploy/herald.service"
