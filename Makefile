# The two set-up commands of the README. Both install what they need first, so they work on a
# fresh machine and in CI alike, and both install through the lock (requirements/dev.lock), so
# the same commit gets the same packages on any machine on any day. `make lock` refreshes it.
PY ?= python3
PIP = $(PY) -m pip
PIP_FLAGS ?= -q --disable-pip-version-check
LOCK ?= requirements/dev.lock
CONSTRAINTS ?= -c $(LOCK)
# everything the tests and the demo use: all extras but gpu, one ONNX Runtime (cpu), the readers
DEV_EXTRAS = all,cpu,dev,readers,export,fleet
# the CPU build of torch first (the recording tests' LeRobot loader needs it); a bare torch pulls CUDA
TORCH = torch==2.13.0
# openpi-client (interop tests) pins numpy<2, which rerun-sdk cannot use: its needed parts are in dev
OPENPI = openpi-client==0.1.2

.PHONY: demo test test-loaded install-dev install-export lint schema bench lock
# LeRobot pins torch<2.11: its policy code is installed without its pins (docs/export.md)
LEROBOT = lerobot==0.4.4

demo:
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) -e ".[cpu]"
	$(PY) -m reflex connect --config configs/sim_demo.yaml --json

install-dev:
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) "$(TORCH)"
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) -e ".[$(DEV_EXTRAS)]"
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) --no-deps "$(OPENPI)" "$(LEROBOT)"

# What `reflex export` needs, on CPU torch (docs/export.md)
install-export:
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) "$(TORCH)" "torchvision==0.28.0"
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) -e ".[export,cpu]"
	$(PIP) install $(PIP_FLAGS) $(CONSTRAINTS) --no-deps "$(LEROBOT)"

test: install-dev
	$(PY) -m pytest -q

# the whole suite while two CPU-bound processes compete for the cores (stopped whatever happens)
test-loaded: install-dev
	$(PY) tools/loaded.py --burners 2 -q

lint:
	$(PY) -m ruff check reflex tests bench connectors tools
	$(PY) -m mypy

schema:
	$(PY) -m reflex schema

bench:
	$(PY) bench/loop_bench.py
	$(PY) bench/export_bench.py

# re-resolve every dev package from the version ranges in a fresh venv and rewrite the lock
lock:
	$(PY) tools/lock.py --out $(LOCK) --extras "$(DEV_EXTRAS)" --first "$(TORCH)" --no-deps "$(OPENPI)" --no-deps "$(LEROBOT)"
