# Strata — run `make help` for the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO           ?= go
AGENT        := bin/strata-agent
# The release: git describe (a tag, else the commit), stamped into the
# binary (--version, strata_agent_build_info) and the image's tag.
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE        ?= localhost/strata-agent:$(VERSION)
IMAGE_TAR    := bin/strata-agent-image.tar
# Podman's state lives outside the repository; CI reuses it between runs.
PODMAN_DIR   ?= /var/cache/strata/podman
PODMAN       := podman --root $(PODMAN_DIR)/storage --runroot $(PODMAN_DIR)/run --storage-driver overlay --runtime runc
SOURCE_URL   := https://github.com/stratanet/strata
METRICS_ADDR ?= 127.0.0.1:9810
CI           ?=
# Debian packages the build, the tests and the benchmarks use.
DEB_PACKAGES := clang llvm libbpf-dev bpftool iproute2 iptables procps util-linux nginx-light wrk curl etcd-server dnsmasq-base prometheus prometheus-alertmanager \
                qemu-system-x86 kmod xz-utils podman buildah runc ca-certificates
# Kernels `make test-kernels` boots (Debian cloud kernels, e2e/kernels), and
# the ones `make test` boots.
KERNELS      ?= 5.10,6.1,6.12
TEST_KERNELS ?= 6.1

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the Debian packages the tests need (root; skips what is there)
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install:$$missing"; exit 1; fi; \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: tools
tools: ## Build the servers the tests use from Go modules (VictoriaLogs, Jaeger v2, kube-apiserver, kube-controller-manager, kubectl; cached)
	bash e2e/tools/build.sh

.PHONY: generate
generate: ## Rebuild the BPF objects, their Go bindings and the record kinds' Go constants (probes/kind, from probes/include/ring.h; needs clang)
	$(GO) generate ./probes/...

.PHONY: check-generate
check-generate: generate ## Fail if the committed BPF objects or record kinds differ from the sources
	@git diff --exit-code -- probes/ || { echo "generated BPF files or record kinds are stale: run make generate and commit"; exit 1; }

.PHONY: dashboards
dashboards: ## Write the dashboards' JSON, the PrometheusRule manifest and the example SLO's rules from their Go and YAML sources
	$(GO) run ./dashboards/gen
	$(GO) run ./agent/cmd/strata slo generate dashboards/slo/example/checkout.yaml --rules dashboards/slo/example/checkout.rules.yaml --dashboard dashboards/slo/example/checkout.dashboard.json

.PHONY: check-dashboards
check-dashboards: dashboards ## Fail if the committed dashboards, rules manifest or SLO example differ from their sources
	@paths="dashboards/ manifests/components/monitoring/prometheusrule.yaml"; \
	if [ -n "$$(git status --porcelain -- $$paths)" ]; then git status --short -- $$paths; git diff -- $$paths | head -50; \
		echo "generated dashboards or rules are stale: run make dashboards and commit"; exit 1; fi

.PHONY: build
build: ## Build bin/strata-agent (static, version from git describe: the image's binary)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/stratanet/strata/agent.Version=$(VERSION)" -o $(AGENT) ./agent/cmd/strata-agent

.PHONY: image
image: build ## Build the agent's image (FROM scratch, offline, podman) into bin/strata-agent-image.tar (OCI archive)
	@command -v podman >/dev/null || { echo "make image: podman not installed (make deps)"; exit 1; }
	rm -rf bin/image && mkdir -p bin/image $(PODMAN_DIR)
	cp $(AGENT) bin/image/strata-agent
	cp /etc/ssl/certs/ca-certificates.crt bin/image/
	@# Stamped with the commit's time, not now: the same commit gives the same image.
	set -e; meta=(); for kv in title=strata-agent version=$(VERSION) revision=$$(git rev-parse HEAD) \
		source=$(SOURCE_URL) licenses=Apache-2.0 "description=eBPF connectivity observability agent for Kubernetes"; do \
		meta+=(--annotation "org.opencontainers.image.$$kv" --label "org.opencontainers.image.$$kv"); done; \
	$(PODMAN) build --network=none --pull=never --timestamp $$(git log -1 --format=%ct) \
		-f agent/cmd/strata-agent/Containerfile -t $(IMAGE) "$${meta[@]}" bin/image
	@# Earlier builds' tags go: the store outside the repo stays one image large.
	$(PODMAN) images --format '{{.Repository}}:{{.Tag}}' localhost/strata-agent | grep -vxF '$(IMAGE)' | xargs -r $(PODMAN) rmi >/dev/null || true
	rm -f $(IMAGE_TAR)
	$(PODMAN) save --format oci-archive -o $(IMAGE_TAR) $(IMAGE)
	@echo "$(IMAGE) -> $(IMAGE_TAR) ($$(du -h $(IMAGE_TAR) | cut -f1))"

.PHONY: run
run: build ## Build and start the agent in standalone mode (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make run: the agent loads eBPF programs; run as root (sudo make run)"; exit 1; fi
	@echo "Strata agent (standalone). Metrics: http://$(METRICS_ADDR)/metrics   (Ctrl-C stops it)"
	./$(AGENT) --kubernetes=off --metrics-addr $(METRICS_ADDR)

.PHONY: demo
demo: deps build ## Test cluster + sample shop + agent (--kubernetes=on); prints where to look; Ctrl-C removes it (root; DEMO_FLAGS for the agent)
	@if [ "$$(id -u)" != 0 ]; then echo "make demo: the cluster's namespaces and the agent need root (sudo make demo)"; exit 1; fi
	bash e2e/tools/build.sh k8s
	$(GO) build -o bin/demo ./e2e/cmd/demo
	./bin/demo --agent $(AGENT) --metrics-addr $(METRICS_ADDR) -- $(DEMO_FLAGS)

.PHONY: lint
lint: ## gofmt, go vet, and no module requiring an AGPL Grafana server
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	@# Mimir, Loki, Tempo and Grafana are AGPL: never a dependency, not even of a test tool.
	@agpl=$$(grep -lE 'github.com/grafana/(loki/v3|mimir|tempo|grafana)[ /]' $$(git ls-files '*go.mod')); \
	if [ -n "$$agpl" ]; then echo "these go.mod files require an AGPL Grafana server: $$agpl"; exit 1; fi

.PHONY: test
test: deps tools lint image ## Run every test, BPF and network tests included (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make test: BPF and network-namespace tests need root (sudo make test)"; exit 1; fi
	@# The pure-Go packages under the race detector; the probes' tests (BPF,
	@# their concurrency is the kernel's) without it.
	CI=$(CI) $(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v -e /e2e/ -e /probes/)
	CI=$(CI) $(GO) test -count=1 -timeout 30m ./probes/...
	@# One end-to-end package at a time: each agent sees every namespace of
	@# the machine, so two packages' labs (same addresses, same programs)
	@# would be counted by each other's agents.
	CI=$(CI) $(GO) test -count=1 -timeout 45m -p 1 ./e2e/...
	CI=$(CI) $(GO) run ./e2e/kernels -kernels $(TEST_KERNELS)

.PHONY: test-kernels
test-kernels: deps ## Boot Debian's 5.10, 6.1 and 6.12 kernels under qemu, run the probes' tests and an end-to-end scenario in each; table into docs/kernels.md (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make test-kernels: the VMs share the host's root and load BPF; run as root"; exit 1; fi
	CI=$(CI) $(GO) run ./e2e/kernels -kernels $(KERNELS) -out docs/kernels.md

.PHONY: test-unit
test-unit: ## Run the tests that need neither root nor a kernel (privileged ones skip without root)
	$(GO) test -count=1 ./agent/... ./identity/... ./exporters/... ./probes/... ./dashboards/...

.PHONY: fuzz
fuzz: ## Fuzz the record decoders (TCP, HTTP and its tallies, DNS) and the HTTP parser, FUZZTIME each (default 2m)
	$(GO) test ./probes/tcp/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-2m}
	$(GO) test ./probes/http/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-2m}
	$(GO) test ./probes/http/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-2m}
	$(GO) test ./probes/http/ -run '^$$' -fuzz '^FuzzDecodeTally$$' -fuzztime $${FUZZTIME:-2m}
	$(GO) test ./probes/dns/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-2m}

.PHONY: bench
bench: ## Go benchmarks of the agent's per-record work (decode, pair, count)
	$(GO) test -run '^$$' -bench . -benchmem ./agent/... ./probes/...

.PHONY: bench-overhead
bench-overhead: deps build ## No agent, default, TCP only, DNS, HTTP floor, HTTP, both beside DNS, interleaved: ns per exchange, wrk ratios, targets (root)
	AGENT=$(AGENT) bash e2e/bench/overhead.sh

.PHONY: bench-scale
bench-scale: deps build ## Agent memory and naming in a large cluster: 50 000 pods, 10 000 Services, churn at 50 pods/s (root; ~25 min; STRATA_SCALE_* to resize, STRATA_SCALE_BASELINE=agent to compare)
	@if [ "$$(id -u)" != 0 ]; then echo "make bench-scale: the cluster's namespaces and the agent need root (sudo make bench-scale)"; exit 1; fi
	bash e2e/tools/build.sh k8s
	STRATA_SCALE=1 CI=$(CI) $(GO) test -count=1 -timeout 60m -v -run '^TestScale$$' ./e2e/scale/

.PHONY: bench-storm
bench-storm: deps build ## Eight connection storms at once, each in its own pair of namespaces (20 000 connections each): counted exactly at both ends or not, records lost, agent CPU and RSS (root; STORMS, CONNS, PARALLEL, LATE, PROFILE)
	AGENT=$(AGENT) bash e2e/bench/storm.sh

.PHONY: bench-sockets
bench-sockets: deps build ## 100 000 live sockets across 20 namespaces: sweep time per socket, agent RSS, exact bytes of every pair (root; PAIRS, PER, SWEEP)
	AGENT=$(AGENT) bash e2e/bench/sockets.sh

.PHONY: clean
clean: ## Remove build output
	rm -rf bin/
