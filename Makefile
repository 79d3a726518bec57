# pgkube: the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
DATA_DIR  ?= .pgkube
LISTEN    ?= 127.0.0.1:6443
BIN       := bin/pgkube

.PHONY: build run test check bench clean deps

build:
	$(GO) build -o $(BIN) ./cmd/pgkube

# containerd, runc and busybox-static (Debian packages) when missing.
deps:
	@./hack/deps.sh

# A complete local cluster on an embedded PostgreSQL; Ctrl-C stops it.
# Its node runs real containers in a private containerd (as root);
# without containerd the node is NotReady and says what to install.
run: build
	@./hack/deps.sh || echo "pgkube: pods will not run without containerd" >&2
	./$(BIN) up --data-dir $(DATA_DIR) --listen $(LISTEN)

# Formatting and vet first: they are quick and catch what review would.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: check deps
	$(GO) test -count=1 -timeout 40m ./...

# Load test against the foundation issue's targets (bench/main.go); it
# reports missed targets without failing. BENCH_FLAGS passes options,
# e.g. BENCH_FLAGS=-perf=/tmp/pgkube.perf
bench:
	$(GO) run ./bench -go $(GO) $(BENCH_FLAGS)

clean:
	rm -rf bin
