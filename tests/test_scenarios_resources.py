"""Scenario suite, resources: connector output that would exhaust memory, and recording
directories that must never be overwritten or shared.

RSS tests feed 10x (or far more than) the cap and assert the peak resident set of the process
under test grew by a bounded amount relative to the cap, never by what was fed.
"""

from __future__ import annotations

from typing import Any

import pytest
from rss_testutil import MIB, run_measured

FLOOD_MIB = 256  # stderr written without a single newline


def test_persistent_connector_stderr_flood_keeps_rss_flat() -> None:
    """The measured case: a connector writing stderr endlessly with no newline took the runner
    to 3 GB. Now the drain keeps a bounded tail whatever arrives."""
    result = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.persistent import PersistentProcess
        from reflex.hardware.subprocess.process import CommandSpec

        def flood(mib):
            code = f"import sys; b = b'x' * 1048576\\nfor _ in range({{mib}}): sys.stderr.buffer.write(b)"
            spec = CommandSpec("command", "flood", (sys.executable, "-c", code), Path("."), {{}})
            proc = PersistentProcess(spec, {{}})
            proc.start()
            proc.wait_exit(60)
            return proc.stderr_tail()

        flood(2)  # warm-up: the same path with a small input
        base = peak_kib()
        tail = flood({FLOOD_MIB})
        report(base=base, peak=peak_kib(), tail_len=len(tail), tail=tail[-200:])
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    assert growth_mib < 16, f"{growth_mib:.1f} MiB for {FLOOD_MIB} MiB of stderr"
    assert "more bytes" in result["tail"] and result["tail_len"] <= 1000


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_per_call_command_output_flood_keeps_rss_flat(stream: str) -> None:
    """A per-call command's stdout is capped (10x the cap is fed: the call fails at the cap);
    its stderr is drained into a bounded tail."""
    cap = 4 * MIB
    fed = 10 * cap if stream == "stdout" else FLOOD_MIB * MIB
    result = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.process import CommandSpec, run_once

        def call(nbytes):
            code = (f"import sys; b = b'x' * 1048576\\nfor _ in range({{nbytes}} // 1048576): "
                    "sys.{stream}.buffer.write(b)")
            spec = CommandSpec("observe_command", "flood", (sys.executable, "-c", code), Path("."), {{}})
            return run_once(spec, b"{{}}", 60.0, {{}}, max_stdout={cap})

        call(1048576)
        base = peak_kib()
        res = call({fed})
        report(base=base, peak=peak_kib(), overflow=res.overflow, returncode=res.returncode,
               out=len(res.stdout), err=len(res.stderr))
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    fed_mib = fed / MIB
    if stream == "stdout":
        assert result["overflow"] is True and result["returncode"] is None
        assert result["out"] == cap
        assert growth_mib < 3 * cap / MIB + 8, f"{growth_mib:.1f} MiB for {fed_mib:.0f} MiB of stdout"
    else:
        assert result["overflow"] is False and result["returncode"] == 0
        assert result["err"] < 8192 and growth_mib < 16, f"{growth_mib:.1f} MiB for {fed_mib:.0f} MiB"


def test_persistent_reply_line_over_the_cap_breaks_the_channel_with_flat_rss() -> None:
    cap = 4 * MIB
    result: dict[str, Any] = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.persistent import ChannelBroken, PersistentProcess
        from reflex.hardware.subprocess.process import CommandSpec

        def reply(nbytes):
            code = (f"import sys; sys.stdin.readline(); b = b'x' * 1048576\\n"
                    f"for _ in range({{nbytes}} // 1048576): sys.stdout.buffer.write(b)\\nsys.stdout.flush()")
            spec = CommandSpec("command", "big", (sys.executable, "-c", code), Path("."), {{}})
            proc = PersistentProcess(spec, {{}}, max_reply_bytes={cap})
            proc.start()
            try:
                proc.exchange(b'{{"id": 1}}\\n', 1, 60.0)
            except ChannelBroken as exc:
                return str(exc)
            return "no error"

        reply(1048576)
        base = peak_kib()
        error = reply({10 * cap})
        report(base=base, peak=peak_kib(), error=error)
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    assert f"exceeded {cap} bytes without a newline" in result["error"]
    assert growth_mib < 3 * cap / MIB + 8, f"{growth_mib:.1f} MiB for {10 * cap / MIB:.0f} MiB"
