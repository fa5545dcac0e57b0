"""``loop.realtime``: the control-loop thread alone runs SCHED_FIFO while the loop runs, and a
refusal by the OS is either reported (required: false) or a set-up failure before anything is
powered (required: true). The policies are read from inside the running loop (a sim robot that
looks at its calling thread), and refusals are real ones: a process without CAP_SYS_NICE, a CPU
that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, base_session, json_result, run_cli, subprocess_env, write_session
from reflex_test_plugins import read_journal

from reflex.errors import EXIT_SETUP
from reflex.runtime.realtime import policy_name, thread_policy
from reflex.runtime.session import run_session_file

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO is Linux's")


def fifo_allowed() -> bool:
    """Whether this process may use SCHED_FIFO at all (tried, then undone)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def probing_session(journal: Path, realtime: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    hardware = {"kind": "reflex_test_plugins:SchedulingSim", "config": {"journal": str(journal)}}
    return base_session(hardware=hardware, max_steps=15, loop={"realtime": realtime}, **overrides)


def probe(journal: Path) -> dict[str, Any]:
    probes = [e for e in read_journal(journal) if e["call"] == "probe"]
    assert len(probes) == 1, probes
    return probes[0]


# Drops CAP_SYS_NICE from the capability bounding set (PR_CAPBSET_DROP) and sets RLIMIT_RTPRIO to
# 0, then execs the command: after the exec the process has no CAP_SYS_NICE (root's capabilities
# are recomputed within the bounding set) and no rtprio allowance, so the kernel refuses SCHED_FIFO.
WITHOUT_CAP_SYS_NICE = """
import ctypes, os, resource, sys
PR_CAPBSET_DROP, CAP_SYS_NICE = 24, 23
if ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
    sys.exit(77)
resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def run_without_cap_sys_nice(config: Path) -> tuple[dict[str, Any], str, int]:
    """``reflex connect --json`` in a process the kernel refuses real-time scheduling."""
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_CAP_SYS_NICE, "-m", "reflex", "connect", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=REPO,
    )
    if proc.returncode == 77:
        pytest.skip("cannot drop CAP_SYS_NICE here (no CAP_SETPCAP)")
    return json_result(proc), proc.stderr, proc.returncode


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="a root process dropping CAP_SYS_NICE gives a real refusal")


@linux_only
@pytest.mark.skipif(not fifo_allowed(), reason="this process may not use SCHED_FIFO")
def test_only_the_loop_thread_runs_sched_fifo_and_gets_its_old_class_back(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    cpu = max(os.sched_getaffinity(0))
    before = (thread_policy(), os.sched_getparam(0).sched_priority, os.sched_getaffinity(0))
    session = probing_session(journal, {"priority": 37, "cpu": cpu},
                              record={"enabled": True, "formats": ["jsonl"], "dir": str(tmp_path / "rec")})
    result = run_session_file(write_session(tmp_path, session)).to_json()
    assert result["ok"], result["errors"]
    seen = probe(journal)
    # inside the loop: this thread real-time at the configured priority, pinned
    assert seen["policy"] == "SCHED_FIFO" and seen["priority"] == 37 and seen["cpus"] == [cpu]
    # a thread the loop thread starts does not inherit the class (SCHED_RESET_ON_FORK) ...
    assert seen["started"] == "SCHED_OTHER"
    # ... and the session's other threads (recorder, inference, camera) never had it
    assert any(name.startswith("reflex-rec-") for name in seen["others"]), seen["others"]
    assert "reflex-inference" in seen["others"]
    assert set(seen["others"].values()) == {"SCHED_OTHER"}, seen["others"]
    # afterwards the thread is back where it was
    assert (thread_policy(), os.sched_getparam(0).sched_priority, os.sched_getaffinity(0)) == before
    realtime = result["loop"]["realtime"]
    assert realtime["requested"] and realtime["granted"] and realtime["reason"] is None
    assert realtime["policy"] == "SCHED_FIFO" and realtime["priority"] == 37 and realtime["cpu"] == cpu


def test_without_the_option_the_loop_runs_in_the_normal_class(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    hardware = {"kind": "reflex_test_plugins:SchedulingSim", "config": {"journal": str(journal)}}
    result = run_session_file(write_session(tmp_path, base_session(hardware=hardware, max_steps=15))).to_json()
    assert result["ok"], result["errors"]
    if sys.platform.startswith("linux"):
        assert probe(journal)["policy"] == policy_name(thread_policy())
    assert result["loop"]["realtime"] == {"requested": False, "granted": False, "reason": "not requested"}


@linux_only
@needs_root
def test_a_refusal_warns_once_and_the_session_runs_normally(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    config = write_session(tmp_path, probing_session(journal, {"priority": 50}))
    result, stderr, code = run_without_cap_sys_nice(config)
    assert code == 0 and result["ok"], (result["errors"], stderr)
    realtime = result["loop"]["realtime"]
    assert realtime["requested"] and not realtime["granted"] and realtime["policy"] is None
    assert "EPERM" in realtime["reason"] and "CAP_SYS_NICE" in realtime["reason"]
    assert stderr.count("warning: loop.realtime:") == 1, stderr
    assert probe(journal)["policy"] == "SCHED_OTHER"  # the loop ran, in the normal class
    assert result["steps"] == 15


@linux_only
@needs_root
def test_a_required_refusal_fails_set_up_before_anything_connects_or_powers(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    config = write_session(tmp_path, probing_session(journal, {"priority": 50, "required": True},
                                                       mode="apply_actions"))
    result, stderr, code = run_without_cap_sys_nice(config)
    assert code == EXIT_SETUP == result["exitCode"], stderr
    assert not result["ok"] and result["stopReason"] == "setup_failed"
    assert not result["motorsPowered"] and result["safeStops"] == 0 and result["steps"] == 0
    assert any(e.startswith("loop.realtime:") and "EPERM" in e and "nothing was connected or powered" in e
               for e in result["errors"]), result["errors"]
    assert read_journal(journal) == []  # the robot was never even built
    assert result["loop"]["realtime"]["granted"] is False


@linux_only
def test_a_cpu_the_process_may_not_use_is_a_refusal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    missing = max(os.sched_getaffinity(0)) + 1000
    result = run_session_file(write_session(tmp_path, probing_session(journal, {"cpu": missing}))).to_json()
    assert result["ok"], result["errors"]
    realtime = result["loop"]["realtime"]
    assert not realtime["granted"] and f"CPU {missing} is not one this process may use" in realtime["reason"]
    assert probe(journal)["policy"] == "SCHED_OTHER"

    journal.unlink()
    required = probing_session(journal, {"cpu": missing, "required": True}, mode="apply_actions")
    failed = run_session_file(write_session(tmp_path, required, name="required.yaml"))
    assert failed.exit_code == EXIT_SETUP and failed.setup_failed and not failed.motors_powered
    assert read_journal(journal) == []


def test_the_priority_is_bounded_in_the_config(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    config = write_session(tmp_path, probing_session(journal, {"priority": 99}))
    proc = run_cli(["connect", "--config", str(config), "--json"])
    assert proc.returncode == 2
    assert "loop.realtime.priority" in proc.stdout + proc.stderr
