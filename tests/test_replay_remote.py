"""Replay against a remote target: ``reflex serve`` as a real subprocess on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_testutil import SAMPLE, replay_cli

pytest.importorskip("aiohttp")
pytest.importorskip("msgpack")


@pytest.mark.slow
def test_an_http_target_reproduces_the_recording(tmp_path: Path) -> None:
    from serve_testutil import ServeProcess

    server = ServeProcess("builtin:demo")
    try:
        block = tmp_path / "remote.yaml"
        block.write_text(f"target:\n  kind: http\n  url: {server.url}\n  encoding: msgpack\n")
        code, payload, out = replay_cli(str(SAMPLE), "--target", str(block), "--fail-on", "reproduce")
        assert code == 0, out
        (episode,) = payload["episodes"]
        assert episode["target"]["kind"] == "http"
        assert episode["target"]["modelHash"] == episode["target"]["recordedModelHash"]
        assert episode["determinism"]["status"] == "reproduced"
        assert episode["chunks"]["replayed"] == episode["chunks"]["recorded"] >= 3
        # the server runs with the export's seed: --seed cannot change it, and replay says so
        code, payload, _ = replay_cli(str(SAMPLE), "--target", str(block), "--seed", "3")
        assert code == 0 and payload["episodes"][0]["determinism"]["status"] == "reproduced"
        assert any("--seed ignored" in n for n in payload["episodes"][0]["notes"])
    finally:
        server.stop()
