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

.PHONY: serve test lint lock pretrained eval benchmark figures import-models clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Serving installs only what serving runs (no torch), pinned by the same lock file as the Bento;
# EXTRA=gpu takes onnxruntime-gpu instead.
LOCK := requirements/$(EXTRA).lock.txt
$(VENV)/.serve-installed: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -q -r $(LOCK)
	$(PIP) install -q --no-deps -e .
	touch $@

# Re-pin requirements/*.lock.txt from a fresh venv holding only `pip install .[serve]`.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q --upgrade pip && build/lock-venv/bin/pip install -q '.[serve]'
	{ echo "# Everything the serving Bento installs, pinned: bentoml build needs no resolver (bentofile.yaml)."; \
	  echo "# Made by \`make lock\`: pip freeze of a venv with only \`pip install .[serve]\` (no torch)."; \
	  build/lock-venv/bin/pip freeze --exclude ganzoo; } > requirements/serve.lock.txt
	{ echo "# The GPU Bento's pins (bentofile.gpu.yaml): serve.lock.txt with onnxruntime-gpu instead of onnxruntime"; \
	  echo "# (it needs the same four packages). Made by \`make lock\`."; \
	  grep -v '^#' requirements/serve.lock.txt | sed "s/^onnxruntime==.*/onnxruntime-gpu==$$(build/lock-venv/bin/pip index versions onnxruntime-gpu 2>/dev/null | head -1 | sed 's/.*(\(.*\))/\1/')/"; } > requirements/gpu.lock.txt
	rm -rf build/lock-venv

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

# Reproduce the shipped artifacts in serving/pretrained/ from the data (hours on a 2-core CPU);
# NAMES="dcgan cgan" re-runs only those recipes. Each export ships its run's training curves.
NAMES ?= all
pretrained: $(VENV)/.dev-installed
	$(PY) -m training.recipes $(NAMES) --data $(DATA)

eval: $(VENV)/.dev-installed
	$(PY) -m training eval all --data $(DATA)

# The pictures in README.md, docs/RESULTS.md and the cards, from serving/pretrained/ (seconds, deterministic).
figures: $(VENV)/.dev-installed
	$(PY) docs/figures.py --data $(DATA)

benchmark: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_generate.py --out docs/PERFORMANCE.md
	$(PY) benchmarks/bench_serving.py --out docs/PERFORMANCE.md

clean:
	rm -rf $(VENV) runs build *.egg-info
