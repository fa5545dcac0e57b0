"""The Rerun recorder loads Rerun with its native allocator giving freed pages back at once.

``rerun_bindings`` allocates with its own mimalloc; with its default purge delay the pages freed by
every batch were kept, and a long session's RSS rose with them (docs/performance.md, "Long
sessions"). mimalloc reads its options when the library loads, so the check runs a fresh process
and reads what mimalloc itself reports (``MIMALLOC_VERBOSE=1`` prints every option at start).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

pytest.importorskip("rerun")

OPEN_AND_CLOSE = """
import sys
from pathlib import Path
from test_record_support import make_meta
from reflex.recording.rerun_recorder import RerunRecorder

recorder = RerunRecorder(Path(sys.argv[1]))
recorder.open(make_meta())
recorder.close()
"""


def _purge_delay_seen_by_mimalloc(tmp_path: Path, **env: str) -> str:
    base = {k: v for k, v in subprocess_env(MIMALLOC_VERBOSE="1").items()
            if not k.startswith("MIMALLOC_PURGE") and k != "REFLEX_MALLOC_TUNING"}
    proc = subprocess.run([sys.executable, "-c", OPEN_AND_CLOSE, str(tmp_path)], capture_output=True, text=True,
                          env={**base, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    values = re.findall(r"option 'purge_delay': (-?\d+)", proc.stderr)
    assert values, f"mimalloc printed no purge_delay option: {proc.stderr[-1000:]}"
    return values[-1]


def test_the_recorder_loads_rerun_with_a_zero_purge_delay(tmp_path: Path) -> None:
    assert _purge_delay_seen_by_mimalloc(tmp_path) == "0"
    assert (tmp_path / "rerun" / "session.rrd").stat().st_size > 0


def test_tuning_off_leaves_mimalloc_at_its_default(tmp_path: Path) -> None:
    """The control: without the recorder's setting mimalloc keeps freed pages for a while."""
    assert _purge_delay_seen_by_mimalloc(tmp_path, REFLEX_MALLOC_TUNING="off") != "0"


def test_a_value_the_user_set_is_kept(tmp_path: Path) -> None:
    assert _purge_delay_seen_by_mimalloc(tmp_path, MIMALLOC_PURGE_DELAY="250") == "250"
