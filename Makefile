# syncgate: `make test` is the whole test suite (what .ci/run calls);
# `make check` is the inner loop for contributors: the same formatting, vet
# and staticcheck, then the tests that need no server (about a minute on a
# fresh clone, seconds when little changed; see README "Developing").
# The tools are pinned in go.mod (`tool` directives) and run with `go tool`,
# so they are versioned with the module and built once into the Go cache.
GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
CHECK_TEST_FLAGS ?= -race -short -timeout 5m

# Packages whose tests need a real server (Redis, RabbitMQ), run Kafka on
# kfake at length, or start child processes: `make test` runs them, `make
# check` does not. Every other package is in `make check`, so a new package
# is checked by default; `go list` fails on an entry that no longer exists.
# (internal/node stays in check: its few Redis tests skip when Redis is
# unreachable outside CI, and the rest are unit tests. gateway needs no
# server: its cluster tests run on correlation.MemoryRouter.)
SERVER_PKGS = \
	./brokers/kafka \
	./brokers/rabbitmq \
	./brokers/rabbitmq/rabbitmqtest \
	./cmd/kafka-embedded \
	./cmd/syncgate \
	./cmd/syncgate/clustertest \
	./correlation/redisstate \
	./loadtest/scenario

.PHONY: test check fmt-check vet staticcheck unit unit-check check-pkgs run bench

test: fmt-check vet staticcheck unit

check: fmt-check vet staticcheck unit-check

fmt-check:
	@echo "==> gofmt: checking formatting"
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@echo "==> go vet ./..."
	@$(GO) vet ./...

staticcheck:
	@echo "==> staticcheck ./... (go tool staticcheck; built once into the Go cache on the first run)"
	@$(GO) tool staticcheck ./...

unit:
	@echo "==> go test $(GOTEST_FLAGS) ./... (the whole suite: needs Redis and RabbitMQ, several minutes)"
	@$(GO) test $(GOTEST_FLAGS) ./...

# The module's packages minus SERVER_PKGS (expanded only where used).
CHECK_PKGS = $(shell $(GO) list ./... | grep -v -x -F $(foreach p,$(SERVER_PKGS),-e github.com/syncgate/syncgate/$(patsubst ./%,%,$(p))))

check-pkgs:
	@$(GO) list $(SERVER_PKGS) >/dev/null
	@for p in $(CHECK_PKGS); do echo $$p; done

unit-check:
	@echo "==> go test $(CHECK_TEST_FLAGS) on the packages that need no server (not: $(SERVER_PKGS))"
	@$(GO) list $(SERVER_PKGS) >/dev/null
	@$(GO) test $(CHECK_TEST_FLAGS) $(CHECK_PKGS)

run:
	$(GO) run ./cmd/syncgate

# A short run of every load scenario (a few minutes, loopback only): rewrites
# the marked section of BENCHMARKS.md and the plots in docs/bench/. The full
# runs are in README ("Load testing").
bench:
	$(GO) run ./cmd/loadtest bench -short -out BENCHMARKS.md -plot-dir docs/bench
