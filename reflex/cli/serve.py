"""``reflex serve EXPORT_DIR``: host one policy over HTTP, WebSocket (openpi) and WebRTC."""

from __future__ import annotations

import logging
import os
import sys

import typer

from reflex.serve.options import DEFAULT_MAX_IMAGE_PIXELS


def serve(
    export: str = typer.Argument(..., metavar="EXPORT_DIR", help="Export directory, or builtin:demo."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to bind; 0 picks a free one (printed)."),
    api_key_env: str = typer.Option(
        "REFLEX_SERVE_API_KEY",
        "--api-key-env",
        help="Environment variable holding the API key every endpoint requires (unset: no key).",
    ),
    max_request_mb: float = typer.Option(32.0, "--max-request-mb", help="Largest request body accepted."),
    max_concurrent: int | None = typer.Option(
        None, "--max-concurrent",
        help="Requests admitted (queued + computing) before 429; default 4, or 2 x --max-batch when batching.",
    ),
    max_batch: int | None = typer.Option(
        None, "--max-batch",
        help="Group up to this many concurrent requests (robots) into one inference call (default 1; ray: 8).",
    ),
    max_wait_ms: float = typer.Option(
        2.0, "--max-wait-ms", help="How long a batch opened on an idle model waits for more requests (batching only)."
    ),
    providers: str | None = typer.Option(None, "--providers", help="Execution providers, best first: cuda,cpu."),
    strict_providers: bool = typer.Option(False, "--strict-providers", help="Fail if a provider is missing."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the policy noise (default: the export's)."),
    threads: int = typer.Option(1, "--threads", help="ONNX Runtime threads for one inference."),
    warmup: bool = typer.Option(True, "--warmup/--no-warmup", help="Run one inference before /health is 200."),
    resize_images: bool = typer.Option(
        False, "--resize-images", help="Resize images of another size instead of answering 422."
    ),
    webrtc: bool = typer.Option(True, "--webrtc/--no-webrtc", help="Offer WebRTC signaling on /webrtc/offer."),
    ice_address: list[str] = typer.Option(
        [], "--ice-address", help="Local address offered as a WebRTC candidate (repeatable)."
    ),
    max_image_pixels: int = typer.Option(
        DEFAULT_MAX_IMAGE_PIXELS, "--max-image-pixels",
        help="Largest image (width x height, read from its header before decoding) a request may carry.",
    ),
    max_peers_per_client: int = typer.Option(
        2, "--max-peers-per-client", help="WebRTC peers one client address may hold."
    ),
    peer_connect_timeout: float = typer.Option(
        10.0, "--peer-connect-timeout",
        help="Seconds an answered WebRTC offer has to connect before its slot is freed.",
    ),
    backend: str = typer.Option(
        "aiohttp", "--backend", help="aiohttp: this process serves; ray: deploy on Ray Serve (the 'fleet' extra)."
    ),
    replicas: int = typer.Option(1, "--replicas", help="Ray: model replicas (each loads the model)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address",
        help="Ray: join this cluster (auto, or HOST:6379 on a cluster node); unset: local Ray on loopback.",
    ),
    autoscaling: str | None = typer.Option(
        None, "--autoscaling", help='Ray: AutoscalingConfig as JSON, e.g. \'{"min_replicas":1,"max_replicas":4}\'.'
    ),
    num_gpus: float = typer.Option(0.0, "--num-gpus", help="Ray: GPUs per model replica (fractions pack replicas)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Serve a policy: POST /act, GET /health, openpi WebSocket on /, WebRTC on /webrtc/offer."""
    from reflex.serve.app import print_listening, print_ready, run_server
    from reflex.serve.host import PolicyHost
    from reflex.serve.model import load_onnx_export
    from reflex.serve.options import ServeOptions

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr)
    if max_batch is None:
        max_batch = 8 if backend == "ray" else 1
    if max_batch < 1 or not 0 <= max_wait_ms <= 1000:
        typer.echo("reflex serve: --max-batch must be >= 1 and --max-wait-ms in [0, 1000]", err=True)
        raise typer.Exit(2)
    if max_concurrent is None:
        max_concurrent = max(4, 2 * max_batch) if max_batch > 1 else 4
    if max_concurrent < 1 or not 0 < max_request_mb <= 4096 or max_image_pixels < 1 or max_peers_per_client < 1 \
            or not 0 < peer_connect_timeout <= 600:
        typer.echo("reflex serve: --max-concurrent, --max-image-pixels and --max-peers-per-client must be >= 1, "
                   "--max-request-mb in (0, 4096], --peer-connect-timeout in (0, 600]", err=True)
        raise typer.Exit(2)
    provider_list = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    options = ServeOptions(
        host=host,
        port=port,
        api_key=os.environ.get(api_key_env) or None,
        max_request_bytes=int(max_request_mb * 1024 * 1024),
        max_concurrent=max_concurrent,
        resize_images=resize_images,
        webrtc=webrtc,
        ice_addresses=list(ice_address) or None,
        access_log=verbose,
        max_image_pixels=max_image_pixels,
        max_peers_per_client=max_peers_per_client,
        peer_connect_timeout_s=peer_connect_timeout,
    )

    problem = export_problem(export)
    if problem is not None:  # a bad path is bad input: say so before binding anything
        typer.echo(f"reflex serve: EXPORT_DIR {problem}", err=True)
        raise typer.Exit(2)

    if backend == "ray":
        serve_on_ray(export, options, replicas, ray_address, autoscaling, num_gpus, max_batch, max_wait_ms,
                     provider_list, strict_providers, seed, threads, warmup)
        return
    if backend != "aiohttp":
        typer.echo(f"reflex serve: --backend must be aiohttp or ray, not '{backend}'", err=True)
        raise typer.Exit(2)

    def loader() -> tuple[object, object]:
        return load_onnx_export(export, provider_list, strict_providers, seed, threads)

    policy_host = PolicyHost(
        loader, max_concurrent=max_concurrent, warmup=warmup, max_batch=max_batch, max_wait_ms=max_wait_ms  # type: ignore[arg-type]
    )
    try:
        state = run_server(
            policy_host,
            options,
            on_listen=lambda p: print_listening(host, p),
            on_ready=lambda p: print_ready(options, policy_host, p),
        )
    except OSError as exc:
        typer.echo(f"reflex serve: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(3) from None
    if state == "failed":
        typer.echo(f"reflex serve: the model in '{export}' does not load: {policy_host.error}", err=True)
        raise typer.Exit(3)


def export_problem(export: str) -> str | None:
    """What is wrong with the EXPORT_DIR argument as a path, or None (loading may still fail)."""
    from pathlib import Path

    from pydantic import ValidationError

    from reflex.targets.export_manifest import MANIFEST_NAME, load_manifest, resolve_export_dir

    try:
        export_dir = resolve_export_dir(export, Path.cwd())
    except FileNotFoundError as exc:
        return f"'{export}': {exc}"
    if not export_dir.exists():
        return f"'{export}' does not exist (expected an export directory or builtin:NAME)"
    if not (export_dir / MANIFEST_NAME).is_file():
        return f"'{export}' is not an export: no {MANIFEST_NAME} in {export_dir}"
    try:
        load_manifest(export_dir)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:8])
        return f"'{export}': {MANIFEST_NAME} is not a valid export manifest: {fields}"
    except (OSError, ValueError) as exc:
        return f"'{export}': {MANIFEST_NAME} is not a valid export manifest: {exc}"
    return None


def serve_on_ray(export: str, options: object, replicas: int, ray_address: str | None, autoscaling: str | None,
                 num_gpus: float, max_batch: int, max_wait_ms: float, providers: list[str] | None,
                 strict_providers: bool, seed: int | None, threads: int, warmup: bool) -> None:
    """``--backend ray``: the same endpoints as a Ray Serve application (docs/fleet.md)."""
    import dataclasses
    import json

    from reflex.serve.app import print_listening
    from reflex.serve.options import ServeOptions

    assert isinstance(options, ServeOptions)
    from reflex.serve.ray_app import RayOptions, parse_autoscaling, run_ray_server

    try:
        import fastapi  # noqa: F401
        import ray.serve  # noqa: F401
    except ImportError as exc:
        typer.echo(f"reflex serve: --backend ray needs Ray Serve: pip install 'reflex-runtime[fleet]' ({exc})",
                   err=True)
        raise typer.Exit(2) from None
    try:
        scaling = parse_autoscaling(autoscaling)
    except (ValueError, json.JSONDecodeError) as exc:
        typer.echo(f"reflex serve: --autoscaling: {exc}", err=True)
        raise typer.Exit(2) from None
    if replicas < 1 or num_gpus < 0:
        typer.echo("reflex serve: --replicas must be >= 1 and --num-gpus >= 0", err=True)
        raise typer.Exit(2)
    if options.port == 0:  # Ray's proxy needs a fixed port: pick a free one now
        import socket

        with socket.socket() as sock:
            sock.bind((options.host, 0))
            options = dataclasses.replace(options, port=int(sock.getsockname()[1]))
    ray_options = RayOptions(
        address=ray_address, replicas=replicas, autoscaling=scaling, num_gpus=num_gpus, max_batch=max_batch,
        max_wait_ms=max_wait_ms, providers=providers, strict_providers=strict_providers, seed=seed,
        threads=threads, warmup=warmup,
    )

    def ready(port: int) -> None:
        print_listening(options.host, port)
        print(f"reflex serve: ready on http://{options.host}:{port} (Ray Serve, {replicas} model replica(s), "
              f"max batch {max_batch}); endpoints: POST /act; GET /health; GET /healthz; GET /metrics; "
              "WebSocket / (openpi protocol)", flush=True)

    try:
        run_ray_server(export, options, ray_options, on_ready=ready)
    except Exception as exc:  # Ray start-up or deployment failure: say so, exit non-zero
        typer.echo(f"reflex serve: Ray Serve deployment failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(3) from None
