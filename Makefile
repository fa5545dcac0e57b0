# The two set-up commands of the README. Both install what they need first, so they work on a
# fresh machine and in CI alike.
PY ?= python3
PIP = $(PY) -m pip
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test install-dev lint schema bench

demo:
	$(PIP) install $(PIP_FLAGS) -e .
	$(PY) -m reflex connect --config configs/sim_demo.yaml --json

install-dev:
	# the CPU build of torch first (the recording tests' LeRobot loader needs it); a bare torch pulls CUDA
	$(PIP) install $(PIP_FLAGS) "torch==2.13.0"
	$(PIP) install $(PIP_FLAGS) -e ".[all,dev,readers]"
	# openpi-client (interop tests) pins numpy<2, which rerun-sdk cannot use: its needed parts are in dev
	$(PIP) install $(PIP_FLAGS) --no-deps "openpi-client==0.1.2"

test: install-dev
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check reflex tests bench connectors
	$(PY) -m mypy

schema:
	$(PY) -m reflex schema

bench:
	$(PY) bench/loop_bench.py
