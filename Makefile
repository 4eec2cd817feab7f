# ganzoo: `make serve` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 0.0.0.0
PORT ?= 3000
SERVICE := serving.service:Ganzoo
DATA ?= ../shared/data
EXTRA ?= serve
GRACE ?= 60
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# BentoML's usage tracking is off unless the environment says otherwise.
export BENTOML_DO_NOT_TRACK ?= True

.PHONY: serve test lint pretrained eval benchmark figures import-models clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Serving installs only what serving runs (no torch); EXTRA=gpu takes onnxruntime-gpu instead.
$(VENV)/.serve-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[$(EXTRA)]'
	touch $@

# Tests and training add torch and the example third-party plugin, installed for real with pip.
$(VENV)/.dev-installed: pyproject.toml examples/ganzoo-wgan-gp/pyproject.toml examples/ganzoo-wgan-gp/ganzoo_wgan_gp/__init__.py | $(PY)
	$(PIP) install -q -e '.[serve,train,dev]'
	$(PIP) install -q ./examples/ganzoo-wgan-gp
	touch $(VENV)/.serve-installed $@

import-models: $(VENV)/.serve-installed
	$(PY) -m serving.import_models

# serving/serve.py: `bentoml serve` with a Prometheus directory of this instance's own and
# worker exits logged. SIGTERM or Ctrl-C drains in-flight requests for up to GRACE seconds.
serve: import-models
	$(PY) -m serving.serve $(SERVICE) --host $(HOST) --port $(PORT) --timeout-graceful-shutdown $(GRACE)

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .

test: $(VENV)/.dev-installed lint
	$(PY) -m pytest -q

# Reproduce the shipped artifacts in serving/pretrained/ from the data (hours on a 2-core CPU).
pretrained: $(VENV)/.dev-installed
	$(PY) -m training.recipes all --data $(DATA)

eval: $(VENV)/.dev-installed
	$(PY) -m training eval all --data $(DATA)

# The pictures in README.md, docs/RESULTS.md and the cards, from serving/pretrained/ (seconds, deterministic).
figures: $(VENV)/.dev-installed
	$(PY) docs/figures.py --data $(DATA)

benchmark: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_generate.py --out docs/PERFORMANCE.md

clean:
	rm -rf $(VENV) runs build *.egg-info
