# bgplb — build, test and lab targets.
#
# `make demo` and `make test` are the two commands a person needs on a fresh
# Debian 12 machine (as root): both install what they need first (`deps`, `tools`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION) -X main.buildVersion=$(VERSION)
BIN       := $(CURDIR)/bin
# Kubernetes server binaries and reference CNI plugins are built outside the tree
# and cached: a second `make tools` with nothing changed takes seconds.
CACHE     ?= $(HOME)/.cache/bgplb
TOOLS_BIN := $(CACHE)/bin
LAB_DIR   ?= /run/bgplb-lab
NODES     ?= 3

# eBPF: the compiler is pinned so `go generate` reproduces the committed objects.
# Debian 12 ships clang 14; bpf/gen.go passes the same -O2 -g -Wall -Werror flags.
CLANG     ?= clang
export BPF2GO_CC := $(CLANG)

# Debian packages the lab and the tests use.
APT_PACKAGES := frr bird2 etcd-server clang llvm bpftool iproute2 iperf3 wrk nftables \
	iptables conntrack jq curl libbpf-dev tcpdump iputils-ping util-linux containerd runc socat
K8S_CMDS := kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl
CNI_CMDS := ptp host-local loopback

# Tests that need root, a kernel with BPF/tcx and network namespaces find the
# binaries through these variables.
GO_TEST_FLAGS ?= -count=1
LAB_PKGS      ?= ./conformance/lab/
export BGPLB_BIN_DIR := $(BIN)
export BGPLB_K8S_BIN_DIR := $(TOOLS_BIN)
# The lab's router: frr (default) or bird (BIRD 2 running the `bgplbctl router-config
# bird` snippet inside Debian's default bird.conf): `make conformance ROUTER=bird`.
ROUTER ?= frr
export BGPLB_LAB_ROUTER := $(ROUTER)
# How the lab's nodes run pods: lab (the lab kubelet, default) or containerd (a real
# containerd + kubelet per node, bgplb installed from manifests/base and the image of
# `make image`): `make conformance RUNTIME=containerd`.
RUNTIME ?= lab
export BGPLB_LAB_RUNTIME := $(RUNTIME)

.PHONY: all deps tools build generate check-generate lint test test-unit test-apiserver test-chart test-lab \
	demo lab-up lab-down lab-status conformance bench manifests clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages the lab needs (idempotent, quiet when present)
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: missing packages:$$missing — run 'make deps' as root" >&2; exit 1; fi; \
		echo "deps: installing$$missing"; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

tools: ## build kube-apiserver & co., the reference CNI plugins and helm into $(TOOLS_BIN) (cached)
	@mkdir -p $(TOOLS_BIN)
	cd conformance/tools && $(GO) build -trimpath -o $(TOOLS_BIN)/ \
		$(addprefix k8s.io/kubernetes/cmd/,$(K8S_CMDS)) \
		github.com/containernetworking/plugins/plugins/ipam/host-local \
		github.com/containernetworking/plugins/plugins/main/loopback \
		github.com/containernetworking/plugins/plugins/main/ptp
	cd conformance/tools/helm && $(GO) build -trimpath -o $(TOOLS_BIN)/helm helm.sh/helm/v4/cmd/helm
	GO=$(GO) conformance/tools/netpol/build.sh $(TOOLS_BIN)/kube-network-policies

build: ## build bgplbd, bgplbctl, the CNI plugin, bgplb-lab and podserver into ./bin
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(shell $(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./plugins/... ./daemon/... ./conformance/...)

generate: ## regenerate eBPF objects, deepcopy/clients and CRDs
	$(GO) generate ./...

check-generate: ## fail if `go generate` changes anything
	$(GO) generate ./...
	@git diff --exit-code --stat || { echo "go generate produced a diff: commit the generated files" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- bpf daemon manifests)" || { git status --porcelain -- bpf daemon manifests; echo "go generate produced new files" >&2; exit 1; }

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfe[lb]\.go$$')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags lab ./conformance/...
	$(GO) vet -tags bench ./conformance/bench/
	$(GO) vet -tags apiserver ./daemon/... ./manifests/... ./internal/...
	$(GO) tool staticcheck ./...

test-unit: ## unit and privileged package tests (root: netns, bpf)
	$(GO) test $(GO_TEST_FLAGS) ./...

test-apiserver: deps tools build ## CRD validation, RBAC + admission policies, and bgplbd against a real kube-apiserver + etcd (+ FRR)
	$(GO) test $(GO_TEST_FLAGS) -tags apiserver -run 'TestCRDsAgainstAPIServer|TestDaemonWithFRR|TestRBACAgainstAPIServer|TestDaemonUninstallsOnDaemonSetRemoval|TestCLIAgainstAPIServer' ./daemon/apis/... ./daemon/app/ ./manifests/ ./daemon/clusterview/

test-chart: deps tools ## helm lint; helm template | kubectl apply --dry-run=server against kube-apiserver + etcd; chart == kustomize
	$(GO) test $(GO_TEST_FLAGS) -tags apiserver -v -run 'TestChart|TestStart' ./manifests/charts/ ./internal/apiservertest/

test-lab: deps tools build ## the lab's own tests (root)
	$(GO) test $(GO_TEST_FLAGS) -p 1 -tags lab -timeout 20m -v -skip 'TestRealNodes' $(LAB_PKGS)

test: deps tools build lint check-generate test-unit test-apiserver test-chart test-lab conformance-tc ## everything CI runs

demo: deps tools build ## bring up the lab and show a VIP answering through the router
	@$(CURDIR)/conformance/lab/demo.sh

# `make conformance` runs bin/bgplb-conformance against a fresh lab
# (conformance/cmd/bgplb-conformance/lab.sh), reaching it as any cluster is reached: the
# kubeconfig, `ip netns exec <prefix>-router vtysh|birdc`, `ip netns exec <prefix>-client
# curl|ping|socat`, and `bgplb-lab fault` as --faults-exec. The report per router goes to
# conformance/reports/$(ROUTER).yaml. CONFORMANCE_ARGS passes more bgplb-conformance
# flags, e.g. CONFORMANCE_ARGS=--profiles=LB-IPAM. `go test -tags lab ./conformance/`
# runs the same entry point (conformance/runner) in-process (dual stack: -conformance.ipv6).
CONFORMANCE_REPORTS ?= $(CURDIR)/conformance/reports
# E7 FailoverNodeLoss (BFD 300 ms x 3: the next hop must leave the router's FIB within
# 1 s of a cut) has a margin of ~50-100 ms on a quiet 2-core machine (p99 988 ms over 20
# cuts on a busy one, conformance/bench/RESULTS.md), too thin for the CI gate; it runs
# with `make conformance CONFORMANCE_ARGS=` (the lab's fault command cuts links).
CONFORMANCE_ARGS    ?= --skip-tests FailoverNodeLoss
CONFORMANCE_LAB_DIR ?= /run/$(or $(BGPLB_LAB_PREFIX),bgplb)-lab-conformance
conformance: deps tools build ## run bgplb-conformance against a fresh lab; report in conformance/reports/$(ROUTER).yaml ($(ROUTER)-containerd.yaml with RUNTIME=containerd)
	BIN_DIR=$(BGPLB_BIN_DIR) CMD_DIR=$(BIN) K8S_BIN_DIR=$(TOOLS_BIN) LAB_DIR=$(CONFORMANCE_LAB_DIR) \
		REPORT=$(CONFORMANCE_REPORTS)/$(ROUTER)$(if $(filter containerd,$(RUNTIME)),-containerd).yaml conformance/cmd/bgplb-conformance/lab.sh $(CONFORMANCE_ARGS)

# The Grafana dashboard's PromQL, parsed by Prometheus' parser (hack/dashboard is its own
# module); TestLabMetricsForDashboard checks the names against a lab scrape.
.PHONY: test-dashboard
test: test-dashboard
test-dashboard: ## parse every query of manifests/monitoring/grafana-dashboard.json with Prometheus' parser
	cd hack/dashboard && $(GO) test $(GO_TEST_FLAGS) ./...

# The conformance suite with the datapath forced to legacy TC (clsact + cls_bpf), as on
# kernels < 6.6: the lab passes BGPLB_DATAPATH_ATTACH to bgplbd and the CNI plugin. This
# is the lab-kubelet run of the suite in `make test` (all of it but E7, like `make
# conformance`): one ~20 min run instead of two keeps `make test` under an hour on 2
# cores, and the attach mode on this kernel's default (tcx) is what
# conformance-containerd's datapath profiles run on the real nodes. `make conformance`
# runs the suite with the default attach mode.
CONFORMANCE_TC_ARGS ?= --skip-tests FailoverNodeLoss
.PHONY: conformance-tc
conformance-tc: deps tools build ## the conformance suite with the datapath forced to legacy TC; report in conformance/reports/$(ROUTER)-tc.yaml
	BGPLB_DATAPATH_ATTACH=tc BIN_DIR=$(BGPLB_BIN_DIR) CMD_DIR=$(BIN) K8S_BIN_DIR=$(TOOLS_BIN) LAB_DIR=$(CONFORMANCE_LAB_DIR) \
		REPORT=$(CONFORMANCE_REPORTS)/$(ROUTER)-tc.yaml conformance/cmd/bgplb-conformance/lab.sh $(CONFORMANCE_TC_ARGS)

bench: deps tools build ## lab benchmarks; each replaces its table in conformance/bench/RESULTS.md
	$(GO) test $(GO_TEST_FLAGS) -p 1 -tags bench -timeout 150m -v -run 'TestBench' ./conformance/bench/ \
		-args -bench.results=$(CURDIR)/conformance/bench/RESULTS.md
	@mkdir -p _output
	$(GO) test -run '^$$' -bench . -benchmem ./daemon/ipam/ | tee _output/bench-ipam.txt

lab-up: deps tools build ## bring up the lab ($(NODES) nodes) and leave it running
	$(BIN)/bgplb-lab up --nodes $(NODES) --dir $(LAB_DIR) --k8s-bin-dir $(TOOLS_BIN) --bin-dir $(BIN)

lab-down: ## tear the lab down (idempotent)
	@if [ -x $(BIN)/bgplb-lab ]; then $(BIN)/bgplb-lab down --dir $(LAB_DIR); else echo "bin/bgplb-lab not built; nothing to do"; fi

lab-status: ## show the lab's namespaces, processes and BGP sessions
	$(BIN)/bgplb-lab status --dir $(LAB_DIR)

# ---- images and release (hack/imagebuild: no container engine needed) ----------
# `make image` builds OCI image indexes (linux/amd64 + linux/arm64) of bgplb (bgplbd,
# bgplbctl, the CNI plugin) and of the conformance pod server into _output/image/:
# <name>/ is an OCI layout, <name>.tar an OCI archive (docker/podman load, skopeo,
# ctr import), <name>.digest the index digest. Same commit, same digest.
IMAGE_REPO     ?= ghcr.io/bgplb/bgplb
PODSERVER_REPO ?= ghcr.io/bgplb/podserver
IMAGE_OUT      := $(CURDIR)/_output/image
IMAGE_BIN      := $(CURDIR)/_output/image-bin
RELEASE_OUT    := $(CURDIR)/_output/release
CHART_DIR      := $(CURDIR)/manifests/charts/bgplb
IMAGEBUILD     := $(CURDIR)/_output/tools/imagebuild
HOST_GOARCH    := $(shell $(GO) env GOARCH)
# Binaries the lab needs that no image ships; image-bin copies them from bin/.
LAB_ONLY_BINS  := bgplb-lab

.PHONY: imagebuild image image-bin push release

imagebuild:
	@$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(IMAGEBUILD) ./hack/imagebuild

image: imagebuild ## build the bgplb and podserver image indexes (linux/amd64, linux/arm64) into _output/image
	$(IMAGEBUILD) build -out $(IMAGE_OUT) -version $(VERSION) -repo $(IMAGE_REPO) -podserver-repo $(PODSERVER_REPO)

image-bin: image build ## the built images' linux/$(GOARCH) binaries in _output/image-bin (+ bgplb-lab from bin/)
	rm -rf $(IMAGE_BIN)
	$(IMAGEBUILD) extract -flat -layout $(IMAGE_OUT)/bgplb -platform linux/$(HOST_GOARCH) -out $(IMAGE_BIN)
	$(IMAGEBUILD) extract -flat -layout $(IMAGE_OUT)/podserver -platform linux/$(HOST_GOARCH) -out $(IMAGE_BIN)
	cp $(addprefix $(BIN)/,$(LAB_ONLY_BINS)) $(IMAGE_BIN)/

# The lab's sandbox image for --runtime containerd (containerd's sandbox_image), host platform only.
.PHONY: image-pause
image-pause: imagebuild ## build the lab's pause (sandbox) image into _output/image/pause
	$(IMAGEBUILD) build -out $(IMAGE_OUT) -version $(VERSION) -images pause -platforms linux/$(HOST_GOARCH)

push: imagebuild ## push what `make image` built: make push IMAGE=registry/repo:tag [PODSERVER_IMAGE=registry/repo:tag]
	@test -n "$(IMAGE)" || { echo "push: set IMAGE=registry/repo:tag" >&2; exit 1; }
	$(IMAGEBUILD) push -layout $(IMAGE_OUT)/bgplb -image $(IMAGE)
	$(if $(PODSERVER_IMAGE),$(IMAGEBUILD) push -layout $(IMAGE_OUT)/podserver -image $(PODSERVER_IMAGE))

release: image ## make release VERSION=vX.Y.Z: _output/release/{bgplb.yaml, bgplb-X.Y.Z.tgz, *-image.tar, SHA256SUMS}
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "release: VERSION=$(VERSION) is not vX.Y.Z[-pre]" >&2; exit 1; }
	rm -rf $(RELEASE_OUT) && mkdir -p $(RELEASE_OUT)
	$(IMAGEBUILD) manifest -base manifests/base -layout $(IMAGE_OUT)/bgplb -repo $(IMAGE_REPO) -out $(RELEASE_OUT)/bgplb.yaml
	@if [ -f $(CHART_DIR)/Chart.yaml ]; then \
		echo "imagebuild chart -dir $(CHART_DIR) -version $(VERSION) -layout $(IMAGE_OUT)/bgplb -repo $(IMAGE_REPO)"; \
		$(IMAGEBUILD) chart -dir $(CHART_DIR) -version $(VERSION) -layout $(IMAGE_OUT)/bgplb -repo $(IMAGE_REPO) -out $(RELEASE_OUT); \
	else echo "release: no chart in $(CHART_DIR); the bundle has no chart package" >&2; fi
	cp $(IMAGE_OUT)/bgplb.tar $(RELEASE_OUT)/bgplb-image.tar
	cp $(IMAGE_OUT)/podserver.tar $(RELEASE_OUT)/podserver-image.tar
	cd $(RELEASE_OUT) && sha256sum $$(ls | grep -v '^SHA256SUMS$$') > SHA256SUMS
	@cat $(RELEASE_OUT)/SHA256SUMS; echo "bgplb image: $(IMAGE_REPO)@$$(cat $(IMAGE_OUT)/bgplb.digest)"

# The conformance suite runs bgplbd, bgplbctl, the CNI plugin and the pod server
# taken from the built image (issue 14), not from bin/.
conformance conformance-tc: image-bin
conformance conformance-tc: export BGPLB_BIN_DIR := $(IMAGE_BIN)
# Real nodes import the images (and the pause image) from here.
export BGPLB_IMAGE_DIR := $(IMAGE_OUT)
ifeq ($(RUNTIME),containerd)
conformance lab-up: image image-pause
endif
# Real nodes (containerd + kubelet, bgplb from manifests/base and its image): the lab's
# own test of them, and the conformance profiles that run there (both in `make test`).
.PHONY: test-lab-containerd conformance-containerd
# Image B of the upgrade test: the same source, another version string.
UPGRADE_IMAGE_OUT := $(CURDIR)/_output/image-upgrade
test-lab-containerd: deps tools build image image-pause ## real-node lab test: DaemonSet install, pod restart and upgrade under load, clean down (root)
	$(IMAGEBUILD) build -out $(UPGRADE_IMAGE_OUT) -version $(VERSION)-upgrade -images bgplb -platforms linux/$(HOST_GOARCH)
	BGPLB_UPGRADE_IMAGE_DIR=$(UPGRADE_IMAGE_OUT) $(GO) test $(GO_TEST_FLAGS) -p 1 -tags lab -timeout 20m -v -run 'TestRealNodes' ./conformance/lab/
# conformance-containerd: the LB-DATAPATH and CNI-CHAINED tests on real nodes. Its
# "every node1 backend pod unready for 90 s" of 2026-12-03 was the in-process suite
# running the lab kubelet's placeholder pod image (ImagePullBackOff on every node; the
# tests wait for node1 first), fixed in labsuite.Adapters. Measured on 2 busy cores
# (load 10-20): 15 tests, all passed, 558 s with lab up and down (~9.5 min on top of
# make test's ~40; the images are test-lab-containerd's).
test: test-lab-containerd conformance-containerd
conformance-containerd: deps tools build image image-bin image-pause ## the LB-DATAPATH and CNI-CHAINED conformance tests on real nodes; report in _output/conformance-report-containerd.yaml
	@mkdir -p _output
	BGPLB_LAB_RUNTIME=containerd BGPLB_BIN_DIR=$(IMAGE_BIN) $(GO) test $(GO_TEST_FLAGS) -tags lab -timeout 40m -v \
		-run 'TestConformance/(Datapath|CNIChained)' ./conformance/ -args -conformance.report=$(CURDIR)/_output/conformance-report-containerd.yaml
# ---- end of images and release ------------------------------------------------

clean: ## remove build output (not the tools cache)
	rm -rf $(BIN) _output
