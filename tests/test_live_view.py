"""``reflex connect --view``: the session streamed live to Rerun. Headless, the stream is served
over gRPC; a real Rerun client (the ``rerun`` CLI of the installed rerun-sdk) connects, saves what
it receives, and Rerun's own reader checks the entities."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, base_session, subprocess_env, write_session

pytest.importorskip("rerun")
WAIT_S = 120.0  # upper bound for each event below; nothing waits for a fixed time


def rerun_exe() -> list[str]:
    from reflex.recording.rerun_recorder import rerun_cli

    return rerun_cli()


def read_line_with(proc: subprocess.Popen[str], needle: str) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline()
            if needle in line:
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no line with {needle!r} from the session")


def wait_for_port(port: int, owner: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert owner.poll() is None, "the viewer exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def entities(path: Path, complete: bool = True) -> dict[str, int]:
    """Entity path -> rows holding it, read by Rerun's own reader (``complete``: the file has its footer)."""
    import warnings

    import rerun as rr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = rr.chunk.RrdReader(path)
        store = reader.store().stream().collect() if complete else reader.stream().collect()
    table = store.reader(index="capture_time", fill_latest_at=False).to_arrow_table()
    out: dict[str, int] = {}
    for name in table.column_names:
        entity = name.split(":")[0]
        if entity.startswith("/"):
            out[entity] = max(out.get(entity, 0), len(table) - table.column(name).null_count)
    return out


def test_served_view_reaches_a_rerun_client(tmp_path: Path) -> None:
    from reflex.view.stream import free_port

    port, client_port = free_port(), free_port()
    # runs until interrupted: the test stops it once the client has data, not after a fixed time
    session = base_session(mode="apply_actions", control_rate_hz=50, max_steps=0,
                           cameras={"top": {"kind": "sim", "width": 128, "height": 96, "fps": 30}})
    config = write_session(tmp_path, session)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", str(config), "--no-record", "--view", f"serve:{port}", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(), cwd=REPO,
    )
    saved = tmp_path / "received.rrd"
    client = None
    try:
        line = read_line_with(proc, "serving the live view on")
        url = f"rerun+http://127.0.0.1:{port}/proxy"
        assert url in line
        client = subprocess.Popen([*rerun_exe(), "--port", str(client_port), "--save", str(saved), url],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the client writes what it receives as it comes: wait until chunks have reached it
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (not saved.exists() or saved.stat().st_size < 200_000):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # one Ctrl-C: the session finishes cleanly, the stream ends
        out, err = proc.communicate(timeout=WAIT_S)
        assert client.wait(timeout=WAIT_S) == 0
    finally:
        for p in (proc, client):
            if p is not None and p.poll() is None:
                p.kill()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["view"]["view"]["sent"] > 0 and result["view"]["view"]["failed"] is None
    found = entities(saved)
    for entity in ("/camera/top", "/robot/state", "/action/applied", "/policy/predicted", "/events"):
        assert found.get(entity, 0) > 0, (entity, found)
    # each chunk's whole predicted trajectory is there (a row per action), not just its first action
    assert found["/policy/predicted"] > found["/policy/chunk_id"] > 0


def test_view_value_is_optional_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reflex.cli.app import fill_optional_values
    from reflex.view.stream import ViewError, parse_view

    assert fill_optional_values(["connect", "r.yaml", "--view"]) == ["connect", "r.yaml", "--view", "auto"]
    assert fill_optional_values(["connect", "--view", "r.yaml"]) == ["connect", "--view", "auto", "r.yaml"]
    assert fill_optional_values(["connect", "--view", "--json", "r.yaml"])[2] == "auto"
    assert fill_optional_values(["connect", "r.yaml", "--view", "serve"])[-1] == "serve"
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert parse_view("auto").how == "serve"  # headless: serve for a remote viewer
    assert parse_view("serve:7000").port == 7000 and parse_view("rerun+http://h:9/proxy").how == "connect"
    with pytest.raises(ViewError):
        parse_view("bogus")
    proc = subprocess.run([sys.executable, "-m", "reflex", "connect", str(write_session(tmp_path, base_session())),
                           "--view", "bogus", "--json"], capture_output=True, text=True, env=subprocess_env(),
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "--view" in json.loads(proc.stdout)["errors"][0]


def test_view_connects_to_a_running_viewer(tmp_path: Path) -> None:
    """``--view rerun+http://...``: a Rerun process listening (as ``rerun`` does on 9876) receives it."""
    from reflex.view.stream import free_port

    port = free_port()
    saved = tmp_path / "viewer.rrd"
    viewer = subprocess.Popen([*rerun_exe(), "--port", str(port), "--save", str(saved)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, viewer)  # the viewer is up before the session starts
        session = base_session(mode="apply_actions", control_rate_hz=50, max_steps=60,
                               cameras={"top": {"kind": "sim", "width": 128, "height": 96, "fps": 30}})
        proc = subprocess.run(
            [sys.executable, "-m", "reflex", "connect", str(write_session(tmp_path, session)), "--no-record",
             "--view", f"rerun+http://127.0.0.1:{port}/proxy", "--json"],
            capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=WAIT_S,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["view"]["view"]["failed"] is None
    finally:
        viewer.terminate()  # a viewer outlives the sessions it shows: stop it (its file has no footer then)
        viewer.wait(timeout=WAIT_S)
    found = entities(saved, complete=False)
    for entity in ("/camera/top", "/robot/state", "/action/applied", "/policy/predicted"):
        assert found.get(entity, 0) > 0, (entity, found)
