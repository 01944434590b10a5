# mailjail — build, run and test. `make run` and `make test` are the two
# commands the README gives; .ci/run calls `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test unit lint bench toolchain install clean deb

build: toolchain
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o mailjail ./cmd/mailjail

# Builds and runs the daemon with the embedded default configuration (or
# /etc/mailjail/mailjail.toml when it exists). Needs root for /var/lib,
# /etc/rspamd and /run.
run: build
	./mailjail run

# The whole suite: lint, unit and integration tests with the race detector,
# end-to-end tests against real redis, rspamd and Postfix (installed and
# started on loopback by e2e/setup.sh), and every benchmark run briefly so
# it keeps compiling and running.
test: toolchain lint
	bash e2e/setup.sh
	bash watcher/journal_setup.sh
	bash packaging/check-deb.sh
	MAILJAIL_E2E=1 $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 10m ./...

# Unit and integration tests only (no services needed).
unit:
	$(GO) test -race ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) mod tidy -diff); if [ -n "$$out" ]; then echo "go.mod/go.sum not tidy (run go mod tidy):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# gcc is needed for cgo (mattn/go-sqlite3).
toolchain:
	@command -v gcc >/dev/null || { echo "installing gcc for cgo"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev; }
	@$(GO) version >/dev/null

install: build
	install -D -m 0755 mailjail /usr/sbin/mailjail
	getent passwd mailjail >/dev/null || adduser --system --group --quiet --home /var/lib/mailjail --no-create-home mailjail
	for g in adm _rspamd; do getent group $$g >/dev/null && adduser --quiet mailjail $$g; done; true
	install -D -m 0644 examples/systemd/mailjail.service /etc/systemd/system/mailjail.service
	test -e /etc/mailjail/mailjail.toml || install -D -m 0640 examples/mailjail.toml /etc/mailjail/mailjail.toml

# dist/mailjail_$(DEB_VERSION)_amd64.deb, with nfpm (packaging/).
DEB_VERSION ?= 0.0~git$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
deb: build
	DEB_VERSION='$(DEB_VERSION)' GO='$(GO)' sh packaging/build-deb.sh

clean:
	rm -rf mailjail dist
