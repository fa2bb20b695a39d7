# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench services services-stop kube-bins clean

# Runtime packages, transitive ones too, at the versions deploy/constraints.txt pins (the
# image's own), so tests run on what ships and a new upstream release changes nothing here.
$(STAMP): pyproject.toml deploy/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c deploy/constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job on embedded defaults: replay the bundled Azure trace through every
# built-in policy and write the HTML report.
demo: $(STAMP)
	$(BIN)/autoscaler simulate --compare slo,concurrency,queue,hpa,kpa --report report.html

lint: $(STAMP)
	$(BIN)/ruff check autoscaler tests bench devtools
	$(BIN)/ruff format --check autoscaler tests bench devtools
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# kube-bins first: building the Kubernetes binaries on a fresh machine (~13 min) would not fit
# in the `kube` fixture's per-test timeout.
test: lint typecheck kube-bins
	$(BIN)/pytest

# Real Kafka (KRaft), Redis, Prometheus and a Kubernetes control plane with KWOK's fake nodes
# on free loopback ports; endpoints (KUBECONFIG too) in .services/env.
services: $(STAMP)
	$(BIN)/python -m devtools.services start

# Kubernetes control-plane binaries (kube-apiserver, controller-manager, scheduler, etcd, kwok,
# kubectl) built from the Go module proxy into ~/.cache/autoscaler/kube/; reused once built
# (~13 min cold).
kube-bins: $(STAMP)
	$(BIN)/python -m devtools.kube_build --kubectl

services-stop:
	$(PY) -m devtools.services stop

# Simulator, decision core and daemon (a real Kafka broker is started and stopped); about an
# hour. BENCH_ARGS="--only daemon" reruns only the daemon's section (minutes), "--only kube"
# the Kubernetes reaction section (about 3 min), "--quick" smokes.
bench: $(STAMP)
	$(BIN)/python -m bench.run --out BENCHMARKS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) report.html
