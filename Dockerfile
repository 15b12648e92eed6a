# slipway: the bot in a small Debian image. go-sqlite3 needs cgo, so the
# build stage has gcc and the runtime stage the same glibc (both bookworm).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/slipway ./cmd/slipway

FROM debian:bookworm-slim
# git serves local checkouts; busybox-static is what the docker executor's
# network holders are made of (executors/docker.DebianBusybox). The user
# has a fixed UID, so that a bind-mounted data folder can be given to it.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates git busybox-static \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/slipway slipway
COPY --from=build /out/slipway /usr/local/bin/slipway
USER slipway
WORKDIR /var/lib/slipway
# The database, workspaces, caches and logs (data_dir), and the SDK's
# ~/.aws. The Docker socket and the config are mounted at run time; see
# the README.
VOLUME /var/lib/slipway
EXPOSE 8080
ENTRYPOINT ["slipway"]
CMD ["serve", "--config", "/etc/slipway/slipway.yml"]
