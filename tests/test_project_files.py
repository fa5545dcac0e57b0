"""Committed artefacts stay in sync with the code that generates them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from reflex.schemas import dumps, render_all


def test_committed_schemas_and_reference_are_up_to_date() -> None:
    from reflex.config.reference import render_reference

    expected = {REPO / "schemas" / rel: text for rel, text in render_all().items()}
    expected[REPO / "docs" / "config-reference.md"] = render_reference()
    for path, text in expected.items():
        assert path.is_file(), f"{path} missing: run `reflex schema`"
        assert path.read_text() == text, f"{path} is stale: run `reflex schema`"


@pytest.mark.parametrize("python_spelling", [True, False])
def test_schema_text_is_the_same_whichever_way_pydantic_spells_discriminator_values(python_spelling: bool) -> None:
    """pydantic < 2.14 writes a bool discriminator's mapping keys as "True"/"False", 2.14 as JSON's
    "true"/"false"; the published text must not depend on which one is installed."""
    keys = ("True", "False", "None") if python_spelling else ("true", "false", "null")
    nested = {"discriminator": {"propertyName": "ok", "mapping": {k: f"#/$defs/{k}" for k in keys}}}
    doc = {"oneOf": [{"$ref": "#/$defs/A"}], "$defs": {"Outer": {"properties": {"x": nested}}}, **nested}
    text = dumps(doc)
    for spelling in ("true", "false", "null"):
        assert f'"{spelling}": ' in text
    for spelling in ("True", "False", "None"):
        assert f'"{spelling}": ' not in text
    assert '"propertyName": "ok"' in text


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_declares_its_schema_and_validates(path: Path) -> None:
    from reflex.config.loader import load_session_config

    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/session.schema.json"
    load_session_config(path)  # raises ConfigError if invalid


@pytest.mark.parametrize(("script", "export"), [("build_export", "demo"), ("build_flow_export", "demo_flow")])
def test_demo_export_is_reproduced_by_its_script(tmp_path: Path, script: str, export: str) -> None:
    pytest.importorskip("onnx")
    subprocess.run([sys.executable, "-m", f"reflex.demo.{script}", str(tmp_path)], check=True, cwd=REPO)
    shipped = REPO / "reflex" / "demo" / "exports" / export
    fixtures = ["fixtures/fixtures.npz"] if (shipped / "fixtures").is_dir() else []
    for name in ("model.onnx", "reflex_config.json", *fixtures):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


def test_help_is_light_and_version_prints() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from reflex.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('onnxruntime', 'numpy', 'pydantic', 'can', 'aiortc', 'av', 'torch',"
        " 'rerun', 'pyarrow', 'mcap', 'aiohttp') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "", f"--help imported heavy modules: {out.stdout}"
    version = subprocess.run([sys.executable, "-m", "reflex", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("reflex ")


def test_check_resolves_without_touching_hardware(tmp_path: Path) -> None:
    from conftest import base_session, write_session
    from reflex_test_plugins import read_journal
    from typer.testing import CliRunner

    from reflex.cli.app import app

    journal = tmp_path / "j.jsonl"
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}}
    session = base_session(hardware=hardware)
    config = str(write_session(tmp_path, session))
    result = CliRunner().invoke(app, ["connect", "--config", config, "--check", "--json"])
    assert result.exit_code == 0, result.output
    assert '"target": "local: state 14-D, action 14-D, chunk 50' in result.output
    calls = [c["call"] for c in read_journal(journal)]  # connected read-only, read once, closed
    assert not {"enable", "apply", "safe_stop", "home_start"} & set(calls), calls
    # a mismatching export is caught by --check
    bad = base_session(target={"kind": "local", "export": str(tmp_path / "missing")})
    result = CliRunner().invoke(app, ["connect", "--config", str(write_session(tmp_path, bad)), "--check", "--json"])
    assert result.exit_code == 3 and "reflex_config.json" in result.output


def test_a_session_without_onnx_runtime_names_the_two_extras() -> None:
    """The core install has no ONNX Runtime (the `cpu` and `gpu` extras each bring one, never
    both): a local target then fails at setup, before anything is touched, naming both extras."""
    code = (
        "import sys\n"
        "sys.modules['onnxruntime'] = None  # as if neither extra were installed\n"
        "from reflex.cli.app import main\n"
        "sys.argv = ['reflex', 'connect', '--config', 'configs/sim_demo.yaml', '--json', '--no-record']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "ONNX Runtime is not installed" in out
    assert "reflex-runtime[cpu]" in out and "reflex-runtime[gpu]" in out


def test_the_dev_lock_pins_every_package_the_dev_install_names() -> None:
    """`make test`/`make demo`/CI install through requirements/dev.lock: each requirement of the
    core and of the extras they install (and the Makefile's extra installs) has exactly one pin."""
    import re

    import tomllib

    def name(req: str) -> str:
        return re.split(r"[\[<>=!~; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")

    pins: dict[str, str] = {}
    for line in (REPO / "requirements" / "dev.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+", line), f"not an exact pin: {line!r}"
        assert name(line) not in pins, f"pinned twice: {line}"
        pins[name(line)] = line
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    makefile = (REPO / "Makefile").read_text()
    dev_extras = re.search(r"^DEV_EXTRAS = (.+)$", makefile, re.M).group(1).split(",")  # type: ignore[union-attr]
    wanted = list(project["dependencies"])
    for extra in dev_extras:
        for req in extras[extra]:
            if req.startswith("reflex-runtime["):  # `all` names other extras
                wanted += [r for e in req[len("reflex-runtime["):-1].split(",") for r in extras[e]]
            else:
                wanted.append(req)
    wanted += [re.search(rf"^{var} = (\S+)$", makefile, re.M).group(1) for var in ("TORCH", "OPENPI")]  # type: ignore[union-attr]
    missing = sorted({name(r) for r in wanted} - set(pins) - {"reflex-runtime"})
    assert not missing, f"not pinned in requirements/dev.lock: {missing} (run `make lock`)"
    assert "onnxruntime-gpu" not in pins, "the dev install uses the cpu ONNX Runtime only"
