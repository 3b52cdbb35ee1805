# The README's commands. Each one bootstraps .venv first (once, then when requirements change).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo run test bench lint format clean

$(STAMP): requirements/base.txt requirements/dev.txt $(wildcard package-lock.json)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@command -v npm >/dev/null || { echo "npm is needed for the page's front-end libraries (apt-get install npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

## make demo: the whole stack against the local Bybit simulator
demo: install
	$(PY) -m optionsite.devstack demo

## make run: the whole stack against live Bybit
run: install
	$(PY) -m optionsite.devstack run

## make test: the whole test suite (starts a private Redis when none answers)
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

## make bench: the benchmarks; figures go to docs/benchmarks.md by hand
bench: install
	$(PY) -m tests.benchmarks

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules staticfiles .run .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts bench-results
