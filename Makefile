# `make run` and `make test` both set up .venv first (every extra: .[all,test]); the install step reruns only when
# setup.py changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/simclr_mnist1d
CONFIG ?= configs/simclr.py:mnist1d
PYTEST_ARGS ?=

.PHONY: run test docs setup clean

setup: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) experiments/main.py --config $(CONFIG) --workdir $(WORKDIR)

test: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=8 $(PY) -m pytest -n 2 --dist loadgroup --durations=15 tests $(PYTEST_ARGS)

# API reference from the docstrings (Google style, KaTeX math) into docs/api/; open docs/api/index.html.
docs: $(STAMP)
	$(PY) -m pdoc --docformat google --math -o docs/api rl

clean:
	rm -rf runs
