# Unit tests, the two Telegraf builds and the integration tests (which run
# the real binaries against the fake Librato API on 127.0.0.1).
.PHONY: test integration telegraf execd

test:
	go test ./...

telegraf:
	scripts/build-telegraf.sh

execd:
	scripts/build-execd.sh

integration: telegraf execd
	go test -tags integration -count=1 -v ./integration/...
