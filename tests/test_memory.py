"""keep_freed_memory: freed request-sized buffers are reused instead of page-faulted back in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from reflex.memory import ENV, keep_freed_memory

# Allocate three 1 MiB buffers, touch every page, free them; the minor page faults of the
# second hundred rounds tell whether the allocator gave the memory back to the kernel.
CHURN = """
import resource, sys
if sys.argv[1] == "tuned":
    from reflex.memory import keep_freed_memory
    assert keep_freed_memory()
def churn():
    for _ in range(100):
        bufs = [bytearray(1 << 20) for _ in range(3)]
        for b in bufs:
            b[::4096] = b"\\x01" * len(range(0, len(b), 4096))
        del bufs
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)


def page_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip())


@glibc_only
def test_tuned_allocator_reuses_freed_buffers_instead_of_faulting_them_in() -> None:
    plain, tuned = page_faults("plain"), page_faults("tuned")
    assert plain > 0, "the default allocator should return these buffers to the kernel"
    assert tuned * 10 <= plain, f"tuned {tuned} page faults vs {plain} untuned"


def test_the_environment_switch_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "off")
    assert keep_freed_memory() is False
