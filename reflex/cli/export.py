"""``reflex export`` (LeRobot checkpoint or demo -> export directory) and ``reflex validate``.

Exit codes (docs/export.md): 0 written / passed; 1 parity over the threshold (export: nothing
written); 2 bad input (a missing file, a bad flag, an unsupported policy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

EXIT_OK, EXIT_PARITY, EXIT_INPUT = 0, 1, 2


def export(
    source: str = typer.Argument(..., help="A LeRobot checkpoint directory (save_pretrained), or 'demo'."),
    out: Path = typer.Option(..., "--out", "-o", help="Export directory to write (new, empty, or an export)."),
    like: Path | None = typer.Option(
        None, "--like", help="A session YAML: take the robot's joint names, limits, units, cameras and rate."
    ),
    threshold: float = typer.Option(1e-4, "--threshold", min=0.0, help="Parity gate: largest max_abs accepted."),
    fixtures: int = typer.Option(5, "--fixtures", min=1, max=64, help="Seeded parity fixtures to run and store."),
    action_dt: float | None = typer.Option(
        None, "--action-dt", help="Seconds between a chunk's actions (the training rate; default 1/30, "
        "or the --like session's control period)."
    ),
    name: str | None = typer.Option(None, "--name", help="Model name in reflex_config.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fixtures and of the export's noise inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Export a policy to ONNX + reflex_config.json, gated on parity (docs/export.md)."""
    from reflex.export import ExportError, ParityError

    try:
        robot = _robot(like) if like is not None else None
        if source == "demo":
            if robot is None:
                raise ExportError("reflex export demo needs --like SESSION.yaml (the robot to fit)")
            from reflex.demo.any_robot import build_demo_export

            report = build_demo_export(robot, out, seed=seed, action_dt=action_dt, name=name)
            payload: dict[str, Any] = {"ok": True, "out": str(out), "kind": "demo", **report}
        else:
            from reflex.export.lerobot_export import ExportOptions, export_lerobot

            options = ExportOptions(threshold=threshold, fixtures=fixtures, name=name, seed=seed)
            if robot is not None:
                options.state_names = options.action_names = list(robot["names"])
                options.units = robot["units"]
                options.gripper_ranges = robot["grippers"]
                options.action_dt_s = robot["dt"]
            if action_dt is not None:
                options.action_dt_s = action_dt
            result = export_lerobot(Path(source), out, options)
            parity = result.manifest.parity
            assert parity is not None
            payload = {
                "ok": True, "out": str(out), "kind": "lerobot",
                "policyType": result.manifest.provenance.policy_type if result.manifest.provenance else None,
                "maxAbs": parity.max_abs, "threshold": parity.threshold,
                "fixtures": [r.model_dump() for r in parity.results],
                "exportS": round(result.export_s, 3), "parityS": round(result.parity_s, 3),
                "totalS": round(result.total_s, 3),
            }
    except ParityError as exc:
        _finish({"ok": False, "out": str(out), "error": str(exc)}, as_json, EXIT_PARITY)
    except (ExportError, FileNotFoundError, ValueError) as exc:
        _finish({"ok": False, "out": str(out), "error": str(exc)}, as_json, EXIT_INPUT)
    _finish(payload, as_json, EXIT_OK)


def validate(
    export_dir: Path = typer.Argument(..., help="Export directory with parity fixtures (or builtin:NAME)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    threshold: float | None = typer.Option(None, "--threshold", help="Override the export's parity threshold."),
    providers: list[str] | None = typer.Option(
        None, "--provider", help="ONNX Runtime provider(s) to use (default: the best installed)."
    ),
) -> None:
    """Re-run an export's stored fixtures on this machine and compare with the stored reference.

    Exit codes: 0 every fixture within the threshold; 1 over it; 2 bad input.
    """
    from reflex.export.parity import Fixtures, compare, run_fixtures
    from reflex.policy.onnx_policy import OnnxPolicy
    from reflex.targets.export_manifest import resolve_export_dir

    try:
        root = resolve_export_dir(str(export_dir), Path.cwd())
        policy = OnnxPolicy(root, providers=providers or None)
        parity = policy.manifest.parity
        if parity is None:
            raise ValueError(f"{root}: reflex_config.json has no parity block (export it with reflex export)")
        fixtures = Fixtures.load(root / parity.fixtures_file)
        assert fixtures.reference is not None
        results = compare(fixtures.reference, run_fixtures(policy, fixtures))
    except Exception as exc:  # any unreadable export, manifest or fixture file is bad input
        _finish({"ok": False, "export": str(export_dir), "error": f"{type(exc).__name__}: {exc}"}, as_json,
                 EXIT_INPUT)
    limit = threshold if threshold is not None else parity.threshold
    worst = max(r.max_abs for r in results)
    ok = worst <= limit
    payload = {
        "ok": ok, "export": str(export_dir), "providers": list(policy.providers), "threshold": limit,
        "maxAbs": worst, "fixtures": [r.model_dump() for r in results],
    }
    if not as_json:
        for r in results:
            mark = "ok " if r.max_abs <= limit else "BAD"
            typer.echo(f"{mark} fixture {r.fixture}: max_abs {r.max_abs:.3g}  mean_abs {r.mean_abs:.3g}  "
                       f"cosine {r.cosine:.9f}")
    _finish(payload, as_json, EXIT_OK if ok else EXIT_PARITY)


def _robot(path: Path) -> dict[str, Any]:
    """Joint names, limits, units, grippers, cameras and control period of a session file."""
    from reflex.config.loader import load_session_config
    from reflex.errors import ConfigError
    from reflex.export import ExportError

    try:
        config = load_session_config(path)
    except ConfigError as exc:
        raise ExportError(f"--like {path}: {exc}") from exc
    layout = config.hardware.layout()
    if layout is None:
        raise ExportError(f"--like {path}: the hardware block does not declare its joints "
                          "(state_names, lower, upper) in the file")
    cameras: dict[str, tuple[int, int]] = {}
    hw_cameras = getattr(getattr(config.hardware, "config", None), "cameras", None) or {}
    for camera_name, spec in {**hw_cameras, **config.cameras}.items():
        width, height = getattr(spec, "width", None), getattr(spec, "height", None)
        cameras[camera_name] = (int(height or 96), int(width or 128))
    grippers = {n: [float(lo), float(hi)] for n, lo, hi in zip(layout.names, layout.lower, layout.upper, strict=True)
                if "gripper" in n}
    return {
        "names": layout.names, "lower": layout.lower, "upper": layout.upper,
        "units": list(layout.units) if layout.units else None, "grippers": grippers,
        "cameras": cameras, "dt": 1.0 / config.control_rate_hz, "max_delta": config.safety.max_delta,
    }


def _finish(payload: dict[str, Any], as_json: bool, code: int) -> NoReturn:
    if as_json:
        sys.stdout.write(json.dumps(payload) + "\n")
    elif not payload.get("ok"):
        typer.echo(f"error: {payload.get('error', 'failed')}", err=True)
    elif "kind" in payload:
        typer.echo(f"wrote {payload['out']} ({payload['kind']}"
                   + (f", parity max_abs {payload['maxAbs']:.3g}" if "maxAbs" in payload else "") + ")")
    else:
        typer.echo(f"ok: max_abs {payload['maxAbs']:.3g} <= {payload['threshold']:g} on {payload['providers']}")
    raise typer.Exit(code)
