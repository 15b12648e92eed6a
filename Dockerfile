# slipway: the bot in a small Debian image. go-sqlite3 needs cgo, so the
# build stage has gcc and the runtime stage the same glibc (both bookworm).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/slipway ./cmd/slipway

FROM debian:bookworm-slim
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates git \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --create-home --home-dir /var/lib/slipway slipway
COPY --from=build /out/slipway /usr/local/bin/slipway
USER slipway
WORKDIR /var/lib/slipway
VOLUME /var/lib/slipway
EXPOSE 8080
ENTRYPOINT ["slipway"]
CMD ["help"]
