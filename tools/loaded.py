"""Run the test suite while CPU-bound processes compete for every core (``make test-loaded``).

Tests must hold on a loaded machine: simulators answer in simulated time, nothing relies on a
sleep for ordering. This starts ``--burners`` busy loops (default 2, one per core here), runs
pytest with the remaining arguments, and always stops the busy loops, whatever happens.

    python tools/loaded.py [--burners N] [pytest args ...]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

BUSY_LOOP = "import os, signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the tests")
    args, pytest_args = parser.parse_known_args(argv)
    burners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(max(0, args.burners))]
    print(f"loaded: {len(burners)} busy loop(s) running (pids {[b.pid for b in burners]})", flush=True)
    # a SIGTERM/SIGHUP to this script must still stop the busy loops: turn it into an exit
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    start = time.monotonic()
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args])
    finally:
        for b in burners:
            b.kill()
        for b in burners:
            b.wait()
    print(f"loaded: pytest exit {code}, wall time {time.monotonic() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
