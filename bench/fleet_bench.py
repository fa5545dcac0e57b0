"""Fleet benchmark: K simulated robots against one ``reflex serve``, with batching off, batching
on, and Ray Serve with 2 model replicas.

Each robot is an async client that sends a real-shaped observation (14-D state, one 96x128 RGB
camera as a uint8 array, msgpack, as the http target sends it) at a fixed chunk rate, waits for
its chunk and sends the next one at the next tick (at once if the answer came late). Not full
``connect`` sessions: this measures the server. The model is an ONNX MLP built here in the export
format (the demo export's manifest with a heavier ``model.onnx``), sized so one inference takes
~10-30 ms on a small CPU, i.e. so that batching matters.

Every server runs as a real ``reflex serve`` subprocess. Reported per backend and K: throughput
(chunks/s), p50/p99 latency, refusals (429) and errors; then the targets at K=16:
batching >= 2x the throughput of no batching, and p99 <= 2.5x the single-robot p50 (no
batching, K=1, measured in the same run). The machine is shared and one 3-second round holds only
~30 single-robot requests, so every K and backend is measured ``--rounds`` times, interleaved
(both plain servers stay up and are measured back to back in each round): every round's figures
and load average are printed, the table gives the median of the rounds (with the p99 range), and
each target is computed per round against that round's own baseline, the median deciding. The
bench also checks that a robot's chunk from the batching server is bit-identical to the one from
the unbatched server.

Usage: python bench/fleet_bench.py [--robots 1,4,16,32] [--seconds 3] [--rounds 5] [--rate-hz 10] [--threads 1]
       [--no-ray] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reflex.wire.msgpack_numpy import packb, unpackb  # noqa: E402

STATE_DIM, CHUNK, HEIGHT, WIDTH = 14, 50, 96, 128
HIDDEN = 2048  # one inference ~17-20 ms on a quiet 2-core x86 (the issue asks for ~10-30 ms; docs/fleet.md)
THREADS = 1  # ONNX Runtime intra-op threads of every server (reflex serve --threads)


def build_heavy_export(out: Path, hidden: int = HIDDEN) -> Path:
    """The demo export's manifest with an MLP (image -> hidden -> chunk + noise) whose first layer
    (3*96*128 x ``hidden`` weights, ~47M at the default) makes one inference memory-bound."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    demo = REPO / "reflex" / "demo" / "exports" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((demo / "reflex_config.json").read_text())
    manifest["name"] = "fleet-bench-mlp"
    manifest["description"] = "Benchmark model built by bench/fleet_bench.py (untrained MLP)."
    manifest["parity"] = None
    rng = np.random.default_rng(0)
    pixels = 3 * HEIGHT * WIDTH
    weights = {
        "w1": (rng.standard_normal((pixels, hidden)) / np.sqrt(pixels)).astype(np.float32),
        "w2": (rng.standard_normal((hidden + STATE_DIM, hidden)) / np.sqrt(hidden)).astype(np.float32),
        "w3": (rng.standard_normal((hidden, CHUNK * STATE_DIM)) * 0.01).astype(np.float32),
        "flat": np.array([-1, pixels], dtype=np.int64),
        "chunk_shape": np.array([-1, CHUNK, STATE_DIM], dtype=np.int64),
        "noise_scale": np.array(0.05, dtype=np.float32),
    }
    nodes = [
        helper.make_node("Reshape", ["image", "flat"], ["x"]),
        helper.make_node("MatMul", ["x", "w1"], ["h1_pre"]),
        helper.make_node("Relu", ["h1_pre"], ["h1"]),
        helper.make_node("Concat", ["h1", "state"], ["h1s"], axis=1),
        helper.make_node("MatMul", ["h1s", "w2"], ["h2_pre"]),
        helper.make_node("Relu", ["h2_pre"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w3"], ["y"]),
        helper.make_node("Reshape", ["y", "chunk_shape"], ["y3"]),
        helper.make_node("Mul", ["noise", "noise_scale"], ["n"]),
        helper.make_node("Add", ["y3", "n"], ["actions"]),
    ]
    graph = helper.make_graph(
        nodes, "fleet_bench_mlp",
        [
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", STATE_DIM]),
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, HEIGHT, WIDTH]),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", CHUNK, STATE_DIM]),
        ],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", CHUNK, STATE_DIM])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(out / "model.onnx"))
    (out / "reflex_config.json").write_text(json.dumps(manifest, indent=2))
    return out


def batch_costs_ms(export: Path, threads: int = 1, sizes: tuple[int, ...] = (1, 2, 3, 4, 8, 16),
                   reps: int = 12) -> dict[int, float]:
    """p50 ms of one batched call per batch size, in this process (no server): how much a batch of
    n costs over one observation. Sizes are interleaved so a busy spell hits all of them alike."""
    from reflex.serve.model import load_onnx_export

    policy, _ = load_onnx_export(str(export), intra_op_threads=threads)
    img = np.random.default_rng(1).integers(0, 256, (max(sizes), HEIGHT, WIDTH, 3), dtype=np.uint8)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for rep in range(reps + 2):
        for n in sizes:
            t0 = time.perf_counter()
            policy.predict_batch(np.zeros((n, STATE_DIM)), {"top": img[:n]}, list(range(n)))  # type: ignore[attr-defined]
            if rep >= 2:  # the first two rounds warm up
                times[n].append(time.perf_counter() - t0)
    return {n: float(np.median(t)) * 1e3 for n, t in times.items()}


class Server:
    """``reflex serve`` as a subprocess; stopped with SIGTERM, then SIGKILL to its process group."""

    def __init__(self, export: Path, args: list[str], env: dict[str, str], timeout_s: float) -> None:
        self.tmp = tempfile.mkdtemp(prefix="fb")
        self.log = open(os.path.join(self.tmp, "serve.err"), "w+")  # noqa: SIM115 (closed in stop)
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": self.tmp, **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reflex", "serve", str(export), "--port", "0", "--no-webrtc", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=full_env, cwd=REPO, start_new_session=True,
        )
        self.port = self._wait(timeout_s)

    def _wait(self, timeout_s: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        port = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline()
                if "listening on" in line:
                    port = int(line.strip().rsplit(":", 1)[1])
                    break
        if port is not None:
            import urllib.request

            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                        if resp.status == 200:
                            return port
                except OSError:
                    pass
                time.sleep(0.2)
        self.log.seek(0)
        err = self.log.read()[-2000:]
        self.stop()
        raise RuntimeError(f"server did not start: {err}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(90)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # whatever Ray left in the session
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def observation(robot: int, seq: int) -> bytes:
    rng = np.random.default_rng(robot * 100003 + seq)
    return packb({
        "state": rng.uniform(-0.5, 0.5, STATE_DIM),
        "images": {"top": rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)},
        "step": seq,
        "request_id": f"r{robot}-{seq}",
    })


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far; nan where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_fleet(port: int, robots: int, seconds: float, rate_hz: float,
                    server_pid: int | None = None) -> dict[str, Any]:
    """K robots, each on its own connection, one chunk request per tick (or at once when late)."""
    import aiohttp

    period = 1.0 / rate_hz
    latencies: list[float] = []
    server_parts: list[dict[str, float]] = []  # each answer's Server-Timing: where its time went
    refused = errors = 0
    bodies = [[observation(r, s) for s in range(8)] for r in range(robots)]  # encoded up front
    url = f"http://127.0.0.1:{port}/act"
    headers = {"Content-Type": "application/msgpack"}

    async def robot(index: int, session: aiohttp.ClientSession, t_end: float) -> None:
        nonlocal refused, errors
        tick = time.perf_counter() + (index / max(1, robots)) * period  # robots out of phase
        seq = 0
        while True:
            delay = tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= t_end:
                return
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=bodies[index][seq % 8], headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append(time.perf_counter() - t0)
                        server_parts.append(server_timing(resp.headers.get("Server-Timing", "")))
                    elif resp.status == 429:
                        refused += 1
                    else:
                        errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
            seq += 1
            tick = max(tick + period, time.perf_counter())

    timeout = aiohttp.ClientTimeout(total=30)
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in range(robots)]
    try:
        async def warm_up(index: int, session: aiohttp.ClientSession) -> None:
            async with session.post(url, data=bodies[index][0], headers=headers) as resp:
                await resp.read()  # released: the robot's requests reuse this connection

        await asyncio.gather(*(warm_up(i, s) for i, s in enumerate(sessions)))
        t_start, cpu_robots, cpu_server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid or 0)
        t_end = t_start + seconds
        await asyncio.gather(*(robot(i, s, t_end) for i, s in enumerate(sessions)))
        elapsed = time.perf_counter() - t_start
        cpu_robots = (time.process_time() - cpu_robots) / elapsed  # the load generator: this process
        cpu_server = (cpu_seconds(server_pid or 0) - cpu_server) / elapsed
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    lat = np.asarray(latencies) * 1e3
    return {
        "robots": robots,
        "chunks_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "refused": refused,
        "errors": errors,
        "n": len(latencies),
        "latencies_ms": lat,
        "cpu_robots": cpu_robots,  # cores used by the load generator (this process), on average
        "cpu_server": cpu_server,  # cores used by the server process (every thread); nan for Ray's
        **{f"{part}_ms": [float(np.percentile(v, 50)), float(np.percentile(v, 99))]
           for part in ("queue", "infer") if (v := [t[part] for t in server_parts if part in t])},
    }


def server_timing(header: str) -> dict[str, float]:
    """``queue;dur=1.2, infer;dur=14.0, ...`` -> {"queue": 1.2, "infer": 14.0, ...} (ms)."""
    parts = {}
    for item in header.split(","):
        name, _, dur = item.strip().partition(";dur=")
        with contextlib.suppress(ValueError):
            parts[name] = float(dur)
    return parts


def same_chunks(plain_port: int, batched_port: int, robots: int = 8) -> bool:
    """Each robot's chunk from the batching server (sent concurrently) equals the unbatched one."""
    import aiohttp

    async def fetch(port: int, concurrent: bool) -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            async def one(r: int) -> bytes:
                async with session.post(f"http://127.0.0.1:{port}/act", data=observation(r, 3),
                                        headers={"Content-Type": "application/msgpack"}) as resp:
                    return np.asarray(unpackb(await resp.read())["actions"]).tobytes()
            if concurrent:
                return list(await asyncio.gather(*(one(r) for r in range(robots))))
            return [await one(r) for r in range(robots)]

    return asyncio.run(fetch(plain_port, False)) == asyncio.run(fetch(batched_port, True))


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One table cell from several rounds: the median of each figure, the rounds' p99 spread and
    the p99 of every round's requests together."""
    lat = np.concatenate([r["latencies_ms"] for r in rows])
    return {
        "robots": rows[0]["robots"],
        "chunks_per_s": float(np.median([r["chunks_per_s"] for r in rows])),
        "p50_ms": float(np.median([r["p50_ms"] for r in rows])),
        "p99_ms": float(np.median([r["p99_ms"] for r in rows])),
        "p99_min_ms": min(r["p99_ms"] for r in rows),
        "p99_max_ms": max(r["p99_ms"] for r in rows),
        "p99_pooled_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "refused": sum(r["refused"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "rounds": len(rows),
    }


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robots", default="1,4,16,32", help="K values, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per K, backend and round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="measure every K and backend this many times (interleaved); report the median")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="chunk requests per robot per second")
    parser.add_argument("--max-batch", type=int, default=32)
    # 0: a batch is whatever queued while the previous one ran (a lone robot never waits)
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="ONNX Runtime threads per inference (every server)")
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="the model's hidden width (sets its cost)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Serve backend")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ks = [int(k) for k in args.robots.split(",")]
    most = max(ks)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    export = build_heavy_export(work / "export", args.hidden)
    costs = batch_costs_ms(export, args.threads)
    one_ms, batched_ms = costs[1], costs[16] / 16
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load_average()}; model: MLP "
          f"{3 * HEIGHT * WIDTH}->{args.hidden}->{CHUNK}x{STATE_DIM}, {args.threads} ORT thread(s); one inference "
          f"{one_ms:.1f} ms (in-process); a batch of n costs "
          + ", ".join(f"{n}: {ms / one_ms:.2f}x" for n, ms in costs.items() if n > 1) + " one inference", flush=True)

    common = ["--max-concurrent", str(2 * most), "--threads", str(args.threads)]
    plain: list[tuple[str, list[str]]] = [
        ("batching off", ["--max-batch", "1", *common]),
        ("batching on", ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), *common]),
    ]
    ray_args = ["--backend", "ray", "--replicas", "2", "--max-batch", str(args.max_batch // 2),
                "--max-wait-ms", str(args.max_wait_ms), "--max-concurrent", str(4 * most),
                "--threads", str(args.threads)]
    ray_env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    rounds: dict[str, dict[int, list[dict[str, Any]]]] = {}
    identical: bool | None = None

    def measure(name: str, port: int, rnd: int, pid: int | None = None) -> None:
        for k in ks:
            row = asyncio.run(run_fleet(port, k, args.seconds, args.rate_hz, pid))
            rounds.setdefault(name, {}).setdefault(k, []).append(row)
            print(f"round {rnd + 1}  {name:22s} K={k:3d}: {row['chunks_per_s']:7.1f} chunks/s"
                  f"  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms"
                  f"  refused {row['refused']}  errors {row['errors']}"
                  + "".join(f"  {p} p50/p99 {row[p + '_ms'][0]:.1f}/{row[p + '_ms'][1]:.1f}"
                            for p in ("queue", "infer") if p + "_ms" in row)
                  + f"  cores used: robots {row['cpu_robots']:.2f}"
                  + (f", server {row['cpu_server']:.2f}" if pid is not None else "")
                  + f"  (load average {load_average()})", flush=True)

    servers: list[Server] = []
    try:
        # Both plain servers stay up (an idle server costs nothing) so every round measures them
        # back to back: a busy spell on the machine then hits one round, not one backend.
        for _name, server_args in plain:
            servers.append(Server(export, server_args, {}, 60.0))
        identical = same_chunks(servers[0].port, servers[1].port)
        for rnd in range(args.rounds):
            for (name, _), server in zip(plain, servers, strict=True):
                measure(name, server.port, rnd, server.proc.pid)
        for server in servers:
            server.stop()
        servers.clear()
        if not args.no_ray:  # Ray's processes are not running while the plain servers are measured
            servers.append(Server(export, ray_args, ray_env, 300.0))
            for rnd in range(args.rounds):
                measure("ray serve, 2 replicas", servers[0].port, rnd)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = {name: [pooled(rows) for rows in by_k.values()] for name, by_k in rounds.items()}
    spread = args.rounds > 1
    print(f"\n{'median of ' + str(args.rounds) + ' rounds; p99 range over the rounds in brackets' if spread else ''}")
    print("| backend | K | chunks/s | p50 ms | p99 ms | 429s |\n|---|---|---|---|---|---|")
    for name, rows in results.items():
        for r in rows:
            p99 = f"{r['p99_ms']:.1f}" + (f" ({r['p99_min_ms']:.1f}-{r['p99_max_ms']:.1f})" if spread else "")
            print(f"| {name} | {r['robots']} | {r['chunks_per_s']:.1f} | {r['p50_ms']:.1f} | {p99} | {r['refused']} |")
    summary: dict[str, Any] = {"one_inference_ms": one_ms, "batched_per_obs_ms": batched_ms,
                               "batch_cost_over_one": {n: ms / one_ms for n, ms in costs.items()},
                               "batched_identical": identical, "results": results}
    base, off16, on16 = (rounds.get(name, {}).get(k) for name, k in
                         (("batching off", 1), ("batching off", 16), ("batching on", 16)))
    if base and off16 and on16:
        # each round's ratios from that round's own baseline; the median decides, every round shown
        speedups = [on["chunks_per_s"] / off["chunks_per_s"] for on, off in zip(on16, off16, strict=True)]
        tails = [on["p99_ms"] / b["p50_ms"] for on, b in zip(on16, base, strict=True)]
        p99_all = pooled(on16)["p99_pooled_ms"]
        base_p50 = float(np.median([b["p50_ms"] for b in base]))
        summary.update(speedup_k16=float(np.median(speedups)), p99_over_single_p50_k16=float(np.median(tails)),
                       speedup_k16_rounds=speedups, p99_over_single_p50_k16_rounds=tails,
                       p99_pooled_over_single_p50_k16=p99_all / base_p50)
        print(f"\nK=16: batching gives {np.median(speedups):.2f}x the throughput of no batching (target >= 2; "
              f"rounds {', '.join(f'{x:.2f}' for x in speedups)}); p99 with batching = {np.median(tails):.2f}x the "
              f"single-robot p50 of its round (target <= 2.5; rounds {', '.join(f'{x:.2f}' for x in tails)}; "
              f"every round's requests together: p99 {p99_all:.1f} ms = {p99_all / base_p50:.2f}x the median "
              f"single-robot p50 {base_p50:.1f} ms)")
        # what the machine alone does to a tail: a lone robot's p99 over its own p50, same rounds
        floor = [b["p99_ms"] / b["p50_ms"] for b in base]
        summary.update(single_p99_over_p50_rounds=floor)
        print(f"noise floor: a lone robot's own p99 = {np.median(floor):.2f}x its p50 "
              f"(rounds {', '.join(f'{x:.2f}' for x in floor)})")
    print(f"batched chunks bit-identical to unbatched: {identical}")
    print(f"load average at the end: {load_average()}")
    if args.json:
        print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
