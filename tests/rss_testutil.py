"""Peak memory of a process under test, read from /proc (no psutil).

``VmHWM`` is the peak resident set of a process over its life. A test runs the code under test
in a fresh child, which records its own peak after warming up (imports done, the path exercised
once with a small input) and again after the flood; the growth between the two is what the
flood cost. Timing plays no part.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import REPO, subprocess_env

MIB = 1024 * 1024

PRELUDE = '''
import json, os, sys

def peak_kib(pid="self"):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")

def report(**data):
    print("RSS-RESULT " + json.dumps(data), flush=True)
'''


def run_measured(body: str, timeout: float = 120.0, cwd: Path = REPO) -> dict[str, Any]:
    """Run ``body`` (Python, after PRELUDE) in a child; it must call ``report(...)`` once."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True, text=True, timeout=timeout, env=subprocess_env(), cwd=cwd,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RSS-RESULT ")]
    assert proc.returncode == 0 and lines, f"status {proc.returncode}; stderr:\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1][len("RSS-RESULT "):])
    return result


def peak_of(pid: int) -> int:
    """Peak RSS (KiB) of a running process."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")
