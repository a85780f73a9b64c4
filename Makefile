# `make` (or `make help`) lists the targets. Everything needs only Go: the
# Telegraf sources and the tools come from the Go module proxy into build/.

GO ?= go
# Go's default is 10 minutes; the integration tests build three Telegrafs.
INTEGRATION_TIMEOUT ?= 60m
CROSS ?= windows/amd64 darwin/arm64

.DEFAULT_GOAL := help
.PHONY: help test race bench lint tryout serve telegraf execd integration cross ci clean

help: ## list the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

test: ## unit, golden, differential and fuzz-seed tests (the README's go test ./...)
	$(GO) test ./...

race: ## the tests of the plugin, the listener, the fake API and the commands under the race detector
	$(GO) test -race . ./listener/... ./internal/... ./cmd/...

bench: ## the benchmarks, side by side with Telegraf's built-in plugin
	$(GO) test -run '^$$' -bench . -benchmem .

lint: ## gofmt, go vet, Telegraf's golangci-lint configuration and readme_linter
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...
	scripts/lint.sh

tryout: ## the offline try-out: metrics in, what Librato stores out
	$(GO) run ./cmd/librato-tryout

serve: ## a local Librato-compatible API on 127.0.0.1:8085 for a real Telegraf
	$(GO) run ./cmd/librato-tryout -serve 127.0.0.1:8085

telegraf: ## build/telegraf-librato; CONFIG=telegraf.conf builds the plugins it uses
	scripts/build-telegraf.sh $(if $(CONFIG),--config $(CONFIG))

execd: ## build/librato-execd and build/telegraf-execd, a small stock Telegraf
	scripts/build-execd.sh

integration: telegraf execd ## real Telegraf agents (v1.39.3 and v1.40.1) against the fake API
	$(GO) test -tags integration -count=1 -timeout $(INTEGRATION_TIMEOUT) -v ./integration/...

cross: ## cross-compile the plugin, librato-execd and librato-tryout into build/<os>_<arch>/ (CROSS="windows/amd64 darwin/arm64")
	@for target in $(CROSS); do \
		os=$${target%/*}; arch=$${target#*/}; \
		echo "GOOS=$$os GOARCH=$$arch go build -o build/$${os}_$$arch/ ./cmd/librato-execd ./cmd/librato-tryout"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build . || exit 1; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -o build/$${os}_$$arch/ ./cmd/librato-execd ./cmd/librato-tryout || exit 1; \
	done

ci: ## everything CI runs (.ci/run)
	bash .ci/run

clean: ## remove build/ (Telegraf sources, binaries, tools)
	rm -rf build
