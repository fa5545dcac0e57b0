"""CLI conventions every command follows: config positional or -c, -h, readable metavars, errors
that help (builtins listed, did-you-mean), JSON on every command with --json, whole ids and paths."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, base_session, run_cli, subprocess_env, write_session


def _commands() -> list[list[str]]:
    """Every command path of the CLI (``[]`` is the root, ``["can", "scan"]`` a sub-command)."""
    from reflex.cli.app import build

    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        out.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(build(), [])
    return out


def test_config_is_positional_or_dash_c(tmp_path: Path) -> None:
    config = str(write_session(tmp_path, base_session()))
    for args in (["connect", config], ["connect", "-c", config], ["connect", "--config", config]):
        proc = run_cli([*args, "--check", "--json"])
        assert proc.returncode == 0, (args, proc.stderr)
        assert json.loads(proc.stdout)["ok"] is True
    none = run_cli(["connect", "--json"])
    assert none.returncode == 2 and "no config" in json.loads(none.stdout)["errors"][0]


def test_every_command_has_dash_h_and_readable_metavars() -> None:
    commands = _commands()
    assert ["connect"] in commands and ["can", "scan"] in commands and ["recordings", "list"] in commands
    for path in commands:
        proc = run_cli([*path, "-h"], COLUMNS="100")
        assert proc.returncode == 0, (path, proc.stderr)
        assert "Usage:" in proc.stdout
        # typer's raw type labels never reach the user
        assert not re.search(r"<(bool|str|int|float|path|list\[[^]]*\])>", proc.stdout), (path, proc.stdout)


def test_wrong_builtin_lists_the_builtins(tmp_path: Path) -> None:
    session = base_session(target={"kind": "local", "export": "builtin:dmeo"})
    proc = run_cli(["connect", str(write_session(tmp_path, session)), "--json"])
    assert proc.returncode == 2
    [error] = json.loads(proc.stdout)["errors"]
    assert error.startswith("target.export") and "builtin:demo" in error and "builtin:demo_state_only" in error


def test_unknown_keys_get_a_did_you_mean_from_the_field_names(tmp_path: Path) -> None:
    session = base_session(safety={"max_delat": 0.1}, recrod={})
    session["cameras"] = {"top": {"kind": "sim", "widht": 64}}
    proc = run_cli(["connect", str(write_session(tmp_path, session)), "--json"])
    assert proc.returncode == 2
    errors = json.loads(proc.stdout)["errors"]
    assert any(e.startswith("safety.max_delat") and "did you mean 'max_delta'?" in e for e in errors), errors
    assert any(e.startswith("recrod") and "did you mean 'record'?" in e for e in errors), errors
    assert any(e.startswith("cameras.top.widht") and "did you mean 'width'?" in e for e in errors), errors


def test_replay_without_target_uses_the_recorded_export() -> None:
    proc = run_cli(["replay", "recordings/sim_demo", "--format", "jsonl", "--json"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["target"] == "builtin:demo"
    assert report["ok"] is True


def test_json_errors_on_every_command(tmp_path: Path) -> None:
    # a CAN channel that cannot be opened: exit 3 and the error as JSON on stdout
    scan = run_cli(["can", "scan", "reflexnosuch0", "--json"])
    assert scan.returncode == 3
    data = json.loads(scan.stdout)
    assert data["ok"] is False and data["channel"] == "reflexnosuch0" and data["errors"]
    # a usage error (bad --ids) is JSON too
    usage = run_cli(["can", "scan", "sim:x", "--ids", "nope", "--json"])
    assert usage.returncode == 2 and json.loads(usage.stdout)["errors"]
    info = run_cli(["recordings", "info", str(tmp_path / "missing"), "--json"])
    assert info.returncode == 2 and "not a directory" in json.loads(info.stdout)["errors"][0]


def test_recordings_list_shows_only_recordings_with_whole_ids_and_paths(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "a-rather-long-directory-name-to-push-the-path-past-eighty-columns" / "recordings"
    shutil.copytree(REPO / "recordings" / "sim_demo", root / "sim_demo")
    (root / "src" / "lerobot").mkdir(parents=True)  # a source folder named like a format
    (root / "src" / "lerobot" / "reader.py").write_text("")
    proc = run_cli(["recordings", "list", str(root)], COLUMNS="80")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((root / "sim_demo" / "recording.json").read_text())
    assert manifest["session_id"] in proc.stdout
    assert str(root / "sim_demo") in proc.stdout
    assert "unknown" not in proc.stdout and "…" not in proc.stdout
    assert "1 recording(s)" in proc.stdout


def test_schema_writes_only_where_told(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "reflex", "schema", "--out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "session.schema.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no docs/ written here
    check = subprocess.run([sys.executable, "-m", "reflex", "schema", "--out", "out", "--check"], cwd=tmp_path,
                           capture_output=True, text=True, env=subprocess_env())
    assert check.returncode == 0, check.stderr


def test_schemas_ship_in_the_package() -> None:
    proc = run_cli(["schema", "--where"])
    assert proc.returncode == 0
    path = Path(proc.stdout.strip())
    assert path.name == "session.schema.json" and path.is_file()
    assert path.read_text() == (REPO / "schemas" / "session.schema.json").read_text()
    import tomllib

    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "bundled_schemas/*.json" in package_data["reflex"]


def test_summary_has_no_reprs(tmp_path: Path) -> None:
    import io

    from reflex.cli.render import render_result

    config = write_session(tmp_path, base_session(max_steps=30))
    from reflex.runtime.session import run_session_file

    payload = run_session_file(config).to_json()
    buf = io.StringIO()
    render_result(payload, buf)
    text = buf.getvalue()
    assert payload["ok"] is True and text.startswith("reflex connect: ok")
    for repr_mark in ("['", "{'", "None", "ExecutionProvider']"):
        assert repr_mark not in text, text
    assert payload["sessionId"] in text and "guard" in text and "30 steps" in text
