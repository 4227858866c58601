# syntax=docker/dockerfile:1
# Build: docker build -t beat .
# The binary is static (CGO_ENABLED=0) and carries its own zone database, so
# the runtime image needs nothing but the binary and a schedule.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/beatlock/beat/cli.Version=${VERSION}" -o /out/beat ./cmd/beat

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/beat /beat
COPY deploy/schedule.yaml /etc/beat/schedule.yaml
ENV BEAT_CONFIG=/etc/beat/schedule.yaml
# /metrics, /healthz, /readyz, /status (http.listen in deploy/schedule.yaml).
EXPOSE 8080
# distroless's nonroot user, by number: Kubernetes can check runAsNonRoot
# only against a numeric user.
USER 65532:65532
ENTRYPOINT ["/beat"]
CMD ["run", "--log-format", "json"]
