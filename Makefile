# The course's commands. `make course` runs the whole course headless; `make test` runs every check (CI calls it).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# PYTHON: an interpreter to build the venv with (default: the newest of 3.13, 3.12, 3.11 found on PATH or in pyenv's
# versions folder, see scripts/find_python.sh). INSTALLER: uv (default) or pip, both from requirements.lock.
PYTHON    ?=
VENV      ?= .venv
INSTALLER ?= uv
UV_VERSION := 0.13.9
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
NANNYML_STAMP := $(VENV)/nannyml/.installed
BROWSER_STAMP := $(VENV)/browser/.installed
PROXY_STAMP   := $(VENV)/proxy/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export FEAST_USAGE := False

WORKSPACE ?= workspace
WHEELHOUSE ?= wheelhouse
PORT      ?= 5000

.PHONY: help system-deps setup nannyml course lab lab-reset mlflow-ui browser-deps browser proxy-deps test newest-venv unit-newest lint format unit unit-slow unit-fast notebooks nbval rerun rerun-after-nbval test-jobs refresh lock bench faults clean student

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

system-deps:  ## Prometheus, Alertmanager, shellcheck and Chromium (browser test) from Debian/Ubuntu packages (sudo unless root)
	@if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && command -v shellcheck >/dev/null \
	  && [ -x /usr/bin/chromium ]; then \
	  echo "prometheus, prometheus-alertmanager, shellcheck and chromium are installed"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus prometheus-alertmanager shellcheck chromium; \
	fi

setup: $(STAMP) $(NANNYML_STAMP)  ## create .venv (newest Python 3.11-3.13, or PYTHON=...), install the pinned environment, the kernel
	@$(PY) scripts/feast_env.py venv  # Feast's own venv (notebook 11), with this Python; a no-op when up to date
	@echo "course environment: $(VENV), $$($(PY) --version)"

# NannyML (notebook 12) without its 1.16 GB of dependencies: the few packages it imports beyond the course lock,
# with --no-deps, into $(VENV)/nannyml (outside site-packages: `pip check` stays clean); the notebook runs it in a
# subprocess with that folder on PYTHONPATH. About 100 MB, a few seconds from the package cache.
nannyml: $(NANNYML_STAMP)  ## NannyML for notebook 12, into $(VENV)/nannyml (setup does it too)
$(NANNYML_STAMP): requirements-nannyml.txt $(STAMP)
	rm -rf $(VENV)/nannyml
	@wheels=$(WHEELHOUSE)/$$($(PY) -c 'import sys; print("cp%d%d" % sys.version_info[:2])'); \
	if [ -f $$wheels/.complete ]; then index="--no-index --find-links $$wheels"; else index=""; fi; \
	if [ -x $(VENV)/bin/uv ]; then \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --target $(VENV)/nannyml \
	    $${index:-$$($(PY) scripts/uv_index_args.py)} -r requirements-nannyml.txt; \
	else \
	  $(PY) -m pip install --quiet --no-deps --target $(VENV)/nannyml $$index -r requirements-nannyml.txt; \
	fi
	@touch $(NANNYML_STAMP)

# PYTHON given and the venv has another Python version: set it up again (scripts/setup.sh makes it anew).
ifneq ($(PYTHON),)
ifneq ($(shell $(PY) -VV 2>/dev/null),$(shell $(PYTHON) -VV 2>/dev/null))
.PHONY: $(STAMP)
endif
endif
$(STAMP): requirements.lock pyproject.toml scripts/setup.sh
	@PYTHON="$(PYTHON)" VENV="$(VENV)" INSTALLER="$(INSTALLER)" UV_VERSION="$(UV_VERSION)" WHEELHOUSE="$(WHEELHOUSE)" scripts/setup.sh
	@touch $(STAMP)

course: setup  ## run every notebook headless (papermill) in a fresh workspace and print the table
	$(PY) -m mlops_helpers.course run

lab: setup proxy-deps  ## JupyterLab on 127.0.0.1 on your own copy of the notebooks (lab/notebooks, git-ignored; see scripts/lab.py)
	$(PY) scripts/lab.py start --workspace $(CURDIR)/workspace

lab-reset: setup  ## your lab copy fresh from the course (NB="06" for some), the old one kept in lab/backups/
	$(PY) scripts/lab.py reset $(NB)

# TRACKING: the folder holding the mlflow.db to show: the workspace's own, or notebook 02's tracking server
# (`make mlflow-ui TRACKING=workspace/server`, whose artifacts are under its artifacts/ folder).
TRACKING ?= $(WORKSPACE)
mlflow-ui: setup  ## the MLflow UI on 127.0.0.1:$(PORT) for $(WORKSPACE) (or TRACKING=workspace/server: notebook 02's runs)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --workers 1 --host 127.0.0.1 --port $(PORT) \
	  --backend-store-uri sqlite:///$(abspath $(TRACKING))/mlflow.db --artifacts-destination $(abspath $(TRACKING))/artifacts

# make test is one graph of jobs, three at a time (the machine has 2 cores; the notebook runs often wait on servers),
# each target's output printed as a block when it ends. nbval and the unit tests' two halves start at once (the slow
# half, `-m slow` in tests/conftest.py, runs notebooks and kills pipelines: about three quarters of the unit time);
# the second venv's set-up, the browser test and the version-dependent unit tests follow as slots free up; the re-run
# of the student edition (tests/notebook_runs/test_rerun.py) starts as soon as nbval has left its workspace.
# NEWEST_VENV (CI sets it, e.g. .venv-3.13, with NEWEST_PYTHON to build it): a second Python version's venv; the re-run
# then executes every notebook on that Python, and the unit tests that depend on the Python version (`-m "not slow"`)
# run there too. One course run on each Python, not a third.
NEWEST_VENV   ?=
NEWEST_PYTHON ?=
RERUN_VENV    := $(or $(NEWEST_VENV),$(VENV))
test: setup lint  ## everything CI checks: lint; nbval, the unit and browser tests, the student edition's re-run
	$(MAKE) --no-print-directory -j3 --output-sync=target test-jobs

test-jobs: nbval unit-slow unit-fast $(if $(NEWEST_VENV),newest-venv,) browser $(if $(NEWEST_VENV),unit-newest,) rerun-after-nbval

newest-venv:  ## the NEWEST_VENV for make test (NEWEST_PYTHON builds it)
	@test -n "$(NEWEST_VENV)" || { echo "set NEWEST_VENV (and NEWEST_PYTHON)"; exit 1; }
	@mkdir -p workspace
	$(MAKE) --no-print-directory setup PYTHON="$(NEWEST_PYTHON)" VENV="$(NEWEST_VENV)" > workspace/newest-venv.log 2>&1 \
	  || { cat workspace/newest-venv.log; exit 1; }

unit-newest: newest-venv  ## the unit tests that depend on the Python version, on NEWEST_VENV
	$(NEWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider --basetemp=workspace/pytest-newest --durations=5 \
	  -m "not slow" $(UNIT_TESTS)

lint: setup  ## ruff over the package, the tests and the notebooks
	$(VENV)/bin/ruff check mlops_helpers tests benchmarks scripts cluster notebooks
	$(VENV)/bin/ruff format --check mlops_helpers tests benchmarks scripts cluster

format: setup  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix mlops_helpers tests benchmarks scripts cluster notebooks
	$(VENV)/bin/ruff format mlops_helpers tests benchmarks scripts cluster

UNIT_TESTS := tests --ignore=tests/notebook_runs --ignore=tests/test_browser.py
unit: setup proxy-deps  ## unit tests of the package, the data, the environment and the committed notebooks' structure
	$(PY) -m pytest -q --durations=8 $(UNIT_TESTS)

unit-slow: setup proxy-deps  ## the unit tests marked slow (tests/conftest.py): make test runs the halves side by side
	$(PY) -m pytest -q -p no:cacheprovider --basetemp=workspace/pytest-slow --durations=8 -m slow $(UNIT_TESTS)

unit-fast: setup proxy-deps  ## the other unit tests
	$(PY) -m pytest -q -p no:cacheprovider --basetemp=workspace/pytest-fast --durations=5 -m "not slow" $(UNIT_TESTS)

# jupyter-server-proxy for a shared JupyterHub (issue 16): the MLflow UI at <lab>/mlflow/, any server a notebook starts
# at <lab>/proxy/<port>/. Into $(VENV)/proxy with --no-deps (its dependencies are in the lock but simpervisor, which
# requirements-proxy.txt pins); `make lab` loads it when the folder exists (scripts/lab.py). About 1 MB.
proxy-deps: $(PROXY_STAMP)  ## jupyter-server-proxy into $(VENV)/proxy: the lab then proxies the MLflow UI and notebook servers
$(PROXY_STAMP): requirements-proxy.txt $(STAMP)
	rm -rf $(VENV)/proxy
	@wheels=$(WHEELHOUSE)/$$($(PY) -c 'import sys; print("cp%d%d" % sys.version_info[:2])'); \
	if [ -f $$wheels/.complete ]; then index="--no-index --find-links $$wheels"; else index=""; fi; \
	if [ -x $(VENV)/bin/uv ]; then \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --target $(VENV)/proxy \
	    $${index:-$$($(PY) scripts/uv_index_args.py)} -r requirements-proxy.txt; \
	else \
	  $(PY) -m pip install --quiet --no-deps --target $(VENV)/proxy $$index -r requirements-proxy.txt; \
	fi
	@touch $(PROXY_STAMP)

# The lab in a real browser (Debian's Chromium driven by Playwright, issue 16): scripts/lab.py as `make lab` runs it,
# notebook 01 run from the learner copy, a saved report and the MLflow UI opened, no request to any outside host.
browser-deps: $(BROWSER_STAMP)  ## Playwright for the browser test, into $(VENV)/browser (Chromium: make system-deps)
$(BROWSER_STAMP): requirements-browser.txt $(STAMP)
	rm -rf $(VENV)/browser
	@if [ -x $(VENV)/bin/uv ]; then \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --target $(VENV)/browser \
	    $$($(PY) scripts/uv_index_args.py) -r requirements-browser.txt; \
	else \
	  $(PY) -m pip install --quiet --no-deps --target $(VENV)/browser -r requirements-browser.txt; \
	fi
	@touch $(BROWSER_STAMP)

browser: setup browser-deps  ## the real-browser test of the lab (Chromium + Playwright; screenshots in workspace/browser)
	PYTHONPATH=$(CURDIR)/$(VENV)/browser $(PY) -m pytest -q -p no:cacheprovider tests/test_browser.py

notebooks: setup  ## execute every notebook headless with papermill in a fresh workspace (as make course)
	$(PY) -m mlops_helpers.course run

# The re-run (tests/notebook_runs/test_rerun.py): every notebook again, in the workspace nbval just used, as the
# STUDENT edition (solutions removed), with MODEL_NAME renamed, on the second Python when NEWEST_VENV is set. One run
# proves that the notebooks are re-runnable, that the student notebooks run top to bottom, that MODEL_NAME is honoured
# (the default model, which nbval's run promoted, is left exactly as it was) and that it all works on that Python; the
# runner fails any notebook that leaves a process behind. make test starts it as soon as nbval is done.
RERUN = $(RERUN_VENV)/bin/python -m pytest -q -s -p no:cacheprovider --basetemp=workspace/pytest-rerun tests/notebook_runs
rerun: student $(if $(NEWEST_VENV),newest-venv,)  ## every student notebook again, renamed model, in nbval's workspace
	@test -d workspace/nbval || { echo "run make nbval first"; exit 1; }
	$(RERUN)

rerun-after-nbval: nbval student $(if $(NEWEST_VENV),newest-venv,)
	$(RERUN)

student: setup  ## the student edition: the notebooks without their solution cells, in student/ (git-ignored)
	$(PY) scripts/student.py --out student

nbval: setup  ## re-run the committed notebooks and compare their outputs, in a fresh workspace
	rm -rf workspace/nbval && mkdir -p workspace/nbval
	cd notebooks && COURSE_WORKSPACE=$(CURDIR)/workspace/nbval ../$(PY) -m pytest -q -p no:cacheprovider \
	  --nbval --nbval-current-env --nbval-kernel-startup-timeout 180 \
	  --nbval-sanitize-with ../tests/nbval_sanitize.cfg [0-9][0-9]_*.ipynb

refresh: setup  ## maintainers: re-execute notebooks (NB="01 02" for some) and write them back with outputs
	$(PY) -m mlops_helpers.course refresh $(if $(NB),--only $(NB),)

lock:  ## re-resolve requirements.in into requirements.lock (needs the package index)
	PYTHON="$(PYTHON)" UV_VERSION="$(UV_VERSION)" scripts/lock.sh

bench: setup  ## benchmarks, not tests: serving latency (mlflow models serve vs the course service), drift at scale
	$(PY) benchmarks/serving_latency.py
	$(PY) benchmarks/drift.py

TRIALS ?= 30
faults: setup  ## fault injection: TRIALS (30) pipeline runs killed at random, or overlapping; invariants checked (~15 min)
	$(PY) benchmarks/faults.py --trials $(TRIALS)

clean:  ## remove the workspace (tracking database, artifacts, logs, executed notebooks)
	rm -rf workspace

# --- The cluster track (cluster/README.md). No Docker engine here: the serving runtime's image is reproduced as a
# venv from its Dockerfile and lock, and the proof loads the champion with it as KServe and Seldon would. CI runs the
# proof once (.ci/run, and its own job in ci.yml), not in every unit-test run.
.PHONY: runtime-lock runtime-venv runtime-proof

runtime-lock: setup  ## re-resolve docker/serving-runtime.in into docker/serving-runtime.lock (needs the package index)
	$(PY) scripts/serving_runtime.py lock

runtime-venv: setup  ## the serving runtime image's environment as a venv (.runtime-venv, rebuilt when its lock changes)
	$(PY) scripts/serving_runtime.py venv

runtime-proof: runtime-venv  ## load the champion with the runtime image's command, as KServe and Seldon would
	$(PY) scripts/serving_runtime.py prove

# --- Feast's own environment (notebook 11's feature-store half): feast 0.67.0 needs tenacity<9 and
# prometheus_client<0.25, which the course's lock cannot give it, so it gets a venv of its own, driven as a subprocess.
.PHONY: feast-lock feast-venv feast-smoke

feast-lock: setup  ## re-resolve feast/requirements.in into feast/requirements.lock (needs the package index)
	$(PY) scripts/feast_env.py lock

feast-venv: setup  ## Feast's environment as a venv (.feast-venv, with uv; rebuilt when its lock changes; setup does it)

feast-smoke: feast-venv  ## Feast offline: apply, materialize to SQLite, a point-in-time join, an online lookup
	$(PY) scripts/feast_env.py smoke

# --- Workshops (docs/instructor-guide.md). The offline wheelhouse: on a machine with the package index, every wheel
# of requirements.lock (the two pure-Python packages that ship only a source archive, kfp-server-api and DVC's
# antlr4-python3-runtime, and whylogs-sketching on 3.13, are built into wheels here), NannyML's few packages,
# jupyter-server-proxy's two (make lab), uv and pip, for the venv's Python version only (wheelhouse/cp311, cp312,
# cp313: run it once per version the room uses).
# scripts/setup.sh and the nannyml rule then install from it with --no-index: no network needed. Written to a
# .partial folder first and marked complete at the end, so a broken download is never taken for a wheelhouse.
.PHONY: wheelhouse

wheelhouse: setup  ## on a machine with the index: every wheel the course installs into wheelhouse/cpXY (make setup then needs no network)
	@tag=$$($(PY) -c 'import sys; print("cp%d%d" % sys.version_info[:2])'); dir=$(WHEELHOUSE)/$$tag; \
	rm -rf $$dir.partial && mkdir -p $$dir.partial && \
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $$dir.partial -r requirements.lock && \
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $$dir.partial -r requirements-nannyml.txt -r requirements-proxy.txt \
	  "uv==$(UV_VERSION)" "pip==$$($(PY) -m pip --version | cut -d' ' -f2)" && \
	touch $$dir.partial/.complete && rm -rf $$dir && mv $$dir.partial $$dir && \
	echo "$$dir: $$(ls $$dir | wc -l | tr -d ' ') wheels, $$(du -sh $$dir | cut -f1)"
