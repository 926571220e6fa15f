# podpath: `make demo` runs the main job on the built-in lab, `make test` runs every test.
# Both install what they need first (scripts/deps.sh).

GO      ?= go
BIN     := bin/podpath
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X podpath/internal/version.Version=$(VERSION)
# Go lives here on a fresh Debian machine set up by the official tarball.
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all deps build demo test test-unprivileged fuzz vet cross bench clean image krew

# Where operators run kubectl: the cluster commands build and run on each; the agent, the lab and
# facts need Linux and say so elsewhere.
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64

# Fuzz targets run briefly in every `make test`; longer with FUZZTIME=2000000x make fuzz.
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a duration runs out mid-execution (go.dev/issue/75804).
FUZZTIME ?= 30000x
# package:target[:count] — FuzzLoad writes an inventory directory per input (about 250 execs/s), so
# it gets fewer executions per run than the in-memory targets.
FUZZ := ./internal/apiauth:FuzzParse ./internal/calico:FuzzParseProtocols ./internal/probe:FuzzDecode ./internal/cluster/inventory:FuzzParse \
	./internal/cluster/kubespray:FuzzLoad:5000x ./internal/safefile:FuzzReadToken:5000x

all: build

deps:
	@scripts/deps.sh

build: deps
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/podpath
	@# kubectl runs kubectl-podpath on the PATH as `kubectl podpath`.
	ln -sf podpath bin/kubectl-podpath

demo: build
	$(BIN) demo

vet:
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt would change:"; gofmt -l cmd internal; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags agentonly ./...
	@# The agent image's build (-tags agentonly) must keep compiling, without the lab's code.
	CGO_ENABLED=0 $(GO) build -tags agentonly -o /dev/null ./cmd/podpath
	@! CGO_ENABLED=0 $(GO) list -tags agentonly -deps ./cmd/podpath | grep -x 'podpath/internal/lab.*' || { echo "the agent-only build links the lab"; exit 1; }

# Every platform's build of the CLI, and vet of the packages it links (their tests included) as
# macOS and Windows see them.
cross:
	@for p in $(PLATFORMS); do \
		echo "build $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/podpath || exit 1; \
	done
	@for os in darwin windows; do \
		echo "vet as $$os"; \
		GOOS=$$os $(GO) vet $$(GOOS=$$os $(GO) list -deps ./cmd/podpath | grep '^podpath/') || exit 1; \
	done

# Every test. As root (CI) the namespace tests run, then the suite runs again
# as an unprivileged user to prove those tests skip cleanly there.
test: deps vet cross
	@# The real control plane, nodes and cluster DNS for the Kubernetes tests, and Prometheus for the
	@# chart's alert tests: built once (minutes), then cached.
	@if [ "$$(id -u)" -eq 0 ]; then scripts/kube-tools.sh >/dev/null && scripts/node-tools.sh >/dev/null && scripts/dns-tools.sh >/dev/null && scripts/prom-tools.sh >/dev/null; fi
	$(GO) test -count=1 -timeout 45m ./...
	@$(MAKE) --no-print-directory fuzz
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory test-unprivileged; fi

test-unprivileged:
	@tmp=$$(mktemp -d) && chmod 1777 $$tmp && trap 'rm -rf $$tmp' EXIT && \
	if setpriv --reuid=65534 --regid=65534 --clear-groups test -r go.mod -a -x internal; then \
		echo "== the same tests as an unprivileged user (root-only tests must skip) =="; \
		GOTMPDIR=$$tmp PODPATH_ARTIFACTS=$$tmp $(GO) test -count=1 -exec "setpriv --reuid=65534 --regid=65534 --clear-groups" ./... ; \
	else \
		echo "test-unprivileged: skipped: user nobody cannot read this checkout"; \
	fi

fuzz:
	@for t in $(FUZZ); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$(FUZZTIME); \
		if [ "$$rest" != "$$name" ] && [ "$(origin FUZZTIME)" = "file" ]; then n=$${rest#*:}; fi; \
		echo "== fuzz $$name ($$n)"; \
		$(GO) test -run NONE -fuzz "^$$name$$" -fuzztime $$n $$pkg || exit 1; \
	done

# Compares podpath with iperf3, ping and tracepath on the lab (root); see docs/benchmarks.md.
bench: build
	$(GO) run ./bench --podpath $(BIN)

clean:
	rm -rf bin

# The agent image without a container daemon: FROM scratch, the agent build of podpath (`-tags
# agentonly`: only `agent` and `version`, 33 MB instead of 63, about 17 MiB less resident) as
# /podpath, written to dist/podpath-image.tar for `docker load` / `podman load`; PUSH=REGISTRY/REPO:TAG
# also pushes it with the credentials docker or podman login stored (docs/monitoring.md).
IMAGE ?= podpath/podpath:$(VERSION)
image: deps
	CGO_ENABLED=0 $(GO) build -tags agentonly -ldflags "$(LDFLAGS)" -o bin/podpath-agent ./cmd/podpath
	$(GO) run ./scripts/image -binary bin/podpath-agent -o dist/podpath-image.tar -tag $(IMAGE) -version $(VERSION) $(if $(PUSH),-push $(PUSH))

# kubectl-podpath's krew release: dist/kubectl-podpath_$(VERSION)_<os>_<arch>.tar.gz for $(PLATFORMS) and
# the plugin manifest dist/podpath.yaml. krew wants a semantic version: make krew VERSION=v0.1.0.
krew:
	$(GO) run ./scripts/krew -version $(VERSION) -o dist -ldflags "$(LDFLAGS)"
