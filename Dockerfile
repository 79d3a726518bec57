# Builds the pgkube binary into a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /pgkube ./cmd/pgkube

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /pgkube /pgkube
ENTRYPOINT ["/pgkube"]
