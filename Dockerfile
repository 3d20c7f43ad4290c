# syntax=docker/dockerfile:1
#
# The herald hub as a container image: one static binary on an empty base,
# run as an unprivileged user, its history in the volume /data.
#
#   docker build -t herald .
#   docker run -p 8080:8080 -v herald-data:/data -e HERALD_PUBLISHER_JWT_KEY=… herald
#
# docs/operations.md says more (keys, limits, health checks, upgrades).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# CGO_ENABLED=0: a static binary, which needs nothing from the image it runs
# in (scripts/test.sh checks that it runs in an empty root as this user).
RUN CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/herald-sse/herald/internal/cli.version=${VERSION}" \
        -o /out/herald ./cmd/herald \
 && mkdir -p /out/data

FROM scratch
# Certificate authorities, for the outgoing TLS connections an engine may
# need (rediss://). The hub itself needs none.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/herald /herald
# The history's volume, owned by the user herald runs as; a volume mounted
# there must be writable by uid 65532.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HERALD_ADDR=:8080 \
    HERALD_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# SIGTERM (Docker's default) starts a graceful shutdown: /readyz answers 503
# at once, subscriptions end, publications in progress finish. Give docker
# stop at least -shutdown-timeout (10s) plus a margin: docker stop -t 15.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/herald"]
CMD ["serve"]
