# Temporal worker pools operator. `make help` lists the verbs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extras installed for development and tests: llm brings torch + transformers for the GPU pack.
EXTRAS ?= dev,llm
PYTEST_ARGS ?=
# One version number: worker_runtime.__version__.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' worker_runtime/__init__.py)
IMG_TAG ?= $(VERSION)
# make release: where to publish (host[:port][/path]) and the cosign private key that signs.
REGISTRY ?=
COSIGN_KEY ?=
# make release ARCHS="amd64 arm64": operator and runtime for both, published as image indexes
# (the foreign one is built under qemu-user-static: slow). Empty: this machine's only.
ARCHS ?=
comma := ,

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with the project and test dependencies

##@ Build

.PHONY: crds
crds: venv ## Generate crds/ from the pydantic API model
	$(PY) -m workerpool_operator.api.crdgen crds
	$(PY) -m hack.chart_crds

.PHONY: controlplane
controlplane: ## Build (or reuse) kube-apiserver, controller-manager, scheduler, kubelet, etcd, kwok, kubectl; fetch upstream CRDs
	bash hack/build-controlplane.sh
	bash hack/fetch-crds.sh

.PHONY: docker-build
docker-build: venv ## Build the operator, runtime and runtime-gpu images offline (IMAGES= to pick; debootstrap base)
	bash hack/setup-docker.sh
	PYTHON=$(PY) IMG_TAG=$(IMG_TAG) bash hack/build-images.sh $(IMAGES)

.PHONY: tools
# The four scripts build at once (each builds its tools in parallel too): link steps, module
# downloads and the long single-package compiles of one overlap with the others.
tools: ## Build (or reuse) helm, promtool, kstatus, KEDA, metrics-server, an OpenTelemetry Collector, crane, cosign, syft, Prometheus, prometheus-operator and kube-state-metrics for the tests (cached)
	bash hack/build-tools.sh & \
	bash hack/build-keda.sh & \
	bash hack/build-release-tools.sh & \
	bash hack/build-monitoring.sh >/dev/null & \
	rc=0; for j in 1 2 3 4; do wait -n || rc=1; done; exit $$rc

.PHONY: monitoring
monitoring: ## Build (or reuse) Prometheus, prometheus-operator and kube-state-metrics for the live-alert test alone (cached; make tools builds them too)
	bash hack/build-monitoring.sh

.PHONY: release-tools
release-tools: ## Build (or reuse) crane, cosign and syft for make release and its e2e test (cached)
	bash hack/build-release-tools.sh

.PHONY: release
release: venv ## Build, SBOM, sign and push the three images and the chart to REGISTRY (COSIGN_KEY=key file; ARCHS="amd64 arm64" for multi-arch)
	bash hack/setup-docker.sh
	PYTHON=$(PY) REGISTRY=$(REGISTRY) COSIGN_KEY=$(COSIGN_KEY) ARCHS="$(ARCHS)" bash hack/release.sh

.PHONY: rbac
rbac: venv ## Regenerate manifests/rbac.yaml and the chart's RBAC from workerpool_operator/kinds.py
	$(PY) -m workerpool_operator.rbac

##@ Check

.PHONY: lint
lint: venv ## ruff, ruff format --check, mypy --strict, import layering, CRD and Kubernetes-schema drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m workerpool_operator.api.crdgen --check crds
	$(PY) -m hack.k8s_schemas --check
	$(PY) -m workerpool_operator.rbac --check
	$(PY) -m hack.chart_crds --check
	$(PY) -m hack.chart_values_doc --check

.PHONY: realnode
realnode: ## containerd, runc, CNI plugins (apt-get, root) and the pause binary for the bed's real kubelet node
	bash hack/setup-realnode.sh

.PHONY: setup
setup: venv controlplane realnode ## Everything the tests need: venv, control plane (kubelet too), Docker engine and base image, real-node runtime
	bash hack/setup-docker.sh

# make setup (and so CI's fresh clone) builds the chart/alert/GitOps tools too.
setup: tools

.PHONY: test
test: setup ## All tests: unit, integration and e2e on the local control plane, runtime on the Temporal dev server, images
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: unit
unit: venv ## Fast tests only (no cluster, no Temporal server)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: e2e
e2e: venv controlplane tools realnode ## Integration, e2e, hostile-input and crash tests (local cluster and its real node, or TWP_E2E_KUBECONFIG)
	$(PY) -m pytest tests/integration tests/e2e tests/hostile tests/chaos $(PYTEST_ARGS)

.PHONY: e2e-alerts
e2e-alerts: setup ## Just the live-alert test of make test: the chart's alerts fire and resolve on a live Prometheus (about 5 min)
	$(PY) -m pytest tests/e2e/test_alerts_live.py $(PYTEST_ARGS)

.PHONY: e2e-release-gpu
e2e-release-gpu: setup ## The release test with runtime-gpu published, signed and attested too (6 GB image: about 8 min warm, 17 cold; not part of make test)
	WORKERPOOLS_RELEASE_GPU=1 $(PY) -m pytest tests/e2e/test_release.py $(PYTEST_ARGS)

.PHONY: e2e-multiarch
e2e-multiarch: venv release-tools ## A release with amd64 + arm64 image indexes on a loopback registry; the arm64 Python runs under qemu (slow; not part of make test)
	bash hack/setup-docker.sh
	WORKERPOOLS_MULTIARCH=1 $(PY) -m pytest tests/e2e/test_release_multiarch.py $(PYTEST_ARGS)

.PHONY: chaos
chaos: setup ## Crash and fault tests at full size (200 pools, 20 SIGKILLs; make test runs them smaller)
	CHAOS_SCALE=full $(PY) -m pytest tests/chaos $(PYTEST_ARGS)

# Every benchmark runs even when one misses a goal or times out (exit 1); make fails after.
.PHONY: bench
bench: venv controlplane tools ## Benchmarks: operator, runtime throughput, autoscaling Builtin vs real KEDA, versioned rollouts (tables + bench-results/)
	mkdir -p bench-results
	rc=0; \
	$(PY) -m bench.bench_operator || rc=1; \
	$(PY) -m bench.bench_runtime || rc=1; \
	$(PY) -m bench.bench_autoscaling --runs 3 || rc=1; \
	$(PY) -m bench.bench_rollout || rc=1; \
	$(PY) -m bench.sim_autoscaling || rc=1; \
	exit $$rc

.PHONY: bench-compare
bench-compare: venv controlplane tools ## The benchmarks of two revisions in one run, one before/after table (BEFORE=rev AFTER=rev COMPARE_ARGS=...)
	mkdir -p bench-results
	WORKERPOOLS_CLUSTER_NAME=$${WORKERPOOLS_CLUSTER_NAME:-compare} $(PY) -m bench.compare \
		--before $(or $(BEFORE),34ca8b4) --after $(or $(AFTER),HEAD) $(COMPARE_ARGS)

.PHONY: sim
sim: venv ## Trace-driven autoscaling study: decide() policies vs a KEDA+HPA model, no cluster (seconds) -> bench-results/sim_autoscaling.json
	$(PY) -m bench.sim_autoscaling $(SIM_ARGS)

.PHONY: gpu-check
gpu-check: venv ## RunLLMOnGPU vs raw transformers generate (tokens/s, ratio, peak GPU memory, cancel latency) -> bench-results/gpu.json
	mkdir -p bench-results
	$(PY) -m bench.gpu_check

##@ Run

.PHONY: run
run: venv controlplane realnode ## Local demo: cluster (+ real node when it can) + Temporal dev server + operator + sample pools (Ctrl-C stops all)
	$(PY) -m hack.run_local $(RUN_ARGS)

.PHONY: cluster-up
cluster-up: venv controlplane ## Start (or reuse) the local kwok cluster; prints the kubeconfig path
	$(PY) -m testbed up

.PHONY: cluster-down
cluster-down: venv ## Stop the local cluster and remove its files
	$(PY) -m testbed down

.PHONY: kind-up
kind-up: ## Create a kind cluster with the same CRDs and fake GPU nodes (needs Docker)
	bash hack/kind-up.sh

##@ Deploy (current kubectl context)

.PHONY: install
install: ## Install the CRD into the cluster
	kubectl apply --server-side -k crds

.PHONY: uninstall
uninstall: ## Remove the CRD (and every pool with it)
	kubectl delete -k crds --ignore-not-found

.PHONY: deploy
deploy: ## Install CRD, RBAC and the operator Deployment (kubectl apply -k manifests)
	kubectl apply --server-side -k manifests

.PHONY: undeploy
undeploy: ## Remove the operator, RBAC and CRD
	kubectl delete -k manifests --ignore-not-found
