# The orderflow router image used by docker-compose.yml.
# The toolchain go.mod asks for: the image has GOTOOLCHAIN=local, so an older
# patch release would refuse to build.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /orderflow . && mkdir -p /work/out

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /orderflow /orderflow
COPY orderflow.yaml /orderflow.yaml
# Partner files go to /work/out; a volume mounted there keeps this owner.
COPY --from=build --chown=65532:65532 /work /work
WORKDIR /work
ENTRYPOINT ["/orderflow"]
CMD ["run", "--config", "/orderflow.yaml"]
