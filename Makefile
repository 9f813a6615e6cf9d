# fangpin: two commands on a fresh machine with Python 3.11 — `make demo` and `make test`.
# Both create the virtual environment (.venv, from uv.lock) first; `make demo` also generates the demo county.
PYTHON ?= python3.11
# The interpreter of .venv: the distribution's own python3.11 where there is one, else $(PYTHON). On this machine the
# first python3.11 on PATH is pyenv's default build (libpython as a shared library, no profile-guided optimisation);
# Debian's /usr/bin/python3.11 has libpython linked in and runs pure Python ~13% faster; a province county's CPU moved
# by ~2%, within the machine's noise (ten side-by-side pairs, median 0.98; bench/FINDINGS.md, session 34).
# Set VENV_PYTHON to choose another.
VENV_PYTHON ?= $(or $(wildcard /usr/bin/python3.11),$(PYTHON))
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
# Compile every installed module to bytecode once, at install (pip's default; uv's is off). Without it, on a machine
# with PYTHONDONTWRITEBYTECODE=1 every process compiled Dagster and great-expectations from source: ~10 s per run.
export UV_COMPILE_BYTECODE := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_DISABLE_TELEMETRY := 1
export FANGPIN_DATA_DIR ?= $(CURDIR)/data

.PHONY: demo test ui bench env clean

env: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv .tools || python3 -m venv .tools
	.tools/bin/pip install --quiet uv==0.13.8

$(VENV)/.synced: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --python $(VENV_PYTHON)
	touch $@

demo: env  ## generate the demo county and run its latest months through Dagster
	$(VENV)/bin/fangpin demo --data-dir $(FANGPIN_DATA_DIR)

test: env  ## the whole test suite (a few minutes)
	$(VENV)/bin/pytest -n 2 --dist loadfile

ui: env  ## the Dagster UI on the same instance as the CLI's runs (http://127.0.0.1:3000)
	$(VENV)/bin/python -c "from fangpin.instance import dagster_home; dagster_home()"
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) .tools .dagster_home

# `make bench` runs every scenario of the issue; `make bench county` / `make bench province` (the province as county
# partitions, then as one run: province-one-run) one each (the extra words are goals that do nothing by themselves).
# Inputs are cached in bench/cache/; results go to bench/results.md.
BENCH_SCENARIOS := $(filter county province province-one-run province-small,$(MAKECMDGOALS))
BENCH_SCENARIOS := $(sort $(BENCH_SCENARIOS) $(if $(filter province,$(BENCH_SCENARIOS)),province-one-run))

bench: env  ## benchmark the real `fangpin run` against the fastest readers (bench/results.md)
	$(VENV)/bin/python -m bench.run $(BENCH_SCENARIOS) $(BENCH_ARGS)

ifneq ($(filter bench,$(MAKECMDGOALS)),)
.PHONY: county province province-one-run province-small
county province province-one-run province-small:
	@:
endif
