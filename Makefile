# syncgate: `make test` is the whole test suite (what .ci/run calls).
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
GOTEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: test fmt-check vet staticcheck unit run bench

test: fmt-check vet staticcheck unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

unit:
	$(GO) test $(GOTEST_FLAGS) ./...

run:
	$(GO) run ./cmd/syncgate

# A short run of every load scenario (a few minutes, loopback only): rewrites
# the marked section of BENCHMARKS.md and the plots in docs/bench/. The full
# runs are in README ("Load testing").
bench:
	$(GO) run ./cmd/loadtest bench -short -out BENCHMARKS.md -plot-dir docs/bench
