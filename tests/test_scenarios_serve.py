"""Scenario suite, remote servers: ``reflex serve`` fed what an attacker or a broken client sends.

Every refusal is a 4xx with a JSON body naming the code (and field); the server stays healthy
for every other robot; long-lived resources (WebRTC peers, WebSockets) are bounded per client
and freed when a peer never connects; decoded sizes are bounded before decoding (RSS measured
on the real ``reflex serve`` process).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import zlib
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
from rss_testutil import peak_of
from serve_testutil import (
    IMAGE_HW,
    STATE_DIM,
    ServeProcess,
    ServerThread,
    http_json,
    policy_host,
)

from reflex.serve.options import ServeOptions
from reflex.wire.jpeg import encode_jpeg
from reflex.wire.msgpack_numpy import packb

pytestmark = pytest.mark.timeout(120)


def png_bomb(width: int, height: int) -> bytes:
    """A real, decodable all-black PNG that is tiny on the wire and width*height*3 bytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 3)
    body = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_with_header(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to announce another size."""
    data = bytearray(encode_jpeg(np.zeros((16, 16, 3), np.uint8), 90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(13000, 13000)


@pytest.fixture(scope="module")
def server() -> Any:
    with ServerThread(policy_host(), ServeOptions(port=0, webrtc=True, max_image_pixels=640 * 480)) as srv:
        yield srv


def state() -> list[float]:
    return [0.1] * STATE_DIM


def small_png() -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((*IMAGE_HW, 3), 50, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def assert_json_error(status: int, body: Any, want_status: int, code: str, field: str | None = None) -> None:
    assert status == want_status, (status, body)
    assert isinstance(body, dict) and body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["field"] == field, body


DEEP = "[" * 100_000 + "]" * 100_000

# (id, raw body, content type, status, code)
BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("json 100000 deep", DEEP.encode(), "application/json", 400, "invalid_body"),
    ("json deep inside state", ('{"state": ' + DEEP + "}").encode(), "application/json", 400, "invalid_body"),
    ("json not utf-8", b"\xff\xfe{\x00", "application/json", 400, "invalid_body"),
    ("json truncated", b'{"state": [0.1, 0.2', "application/json", 400, "invalid_body"),
    ("json array", b"[1, 2, 3]", "application/json", 400, "invalid_body"),
    ("json string", b'"hello"', "application/json", 400, "invalid_body"),
    ("json null", b"null", "application/json", 400, "invalid_body"),
    ("json empty", b"", "application/json", 400, "invalid_body"),
    ("json NaN state", b'{"state": [NaN, 1]}', "application/json", 422, "invalid_field"),
    ("json state of objects", b'{"state": [{"a": 1}]}', "application/json", 422, "invalid_field"),
    ("json huge step", b'{"state": [0], "step": 1e400}', "application/json", 422, "invalid_field"),
    ("json images as list", ('{"state": ' + json.dumps([0.1] * STATE_DIM) + ', "images": [1]}').encode(),
     "application/json", 422, "invalid_field"),
    ("json image not base64", ('{"state": ' + json.dumps([0.1] * STATE_DIM) + ', "images": {"top": "%%%"}}')
     .encode(), "application/json", 422, "invalid_field"),
    ("json image base64 of junk", ('{"state": ' + json.dumps([0.1] * STATE_DIM) + ', "images": {"top": "'
                                   + base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode() + '"}}').encode(),
     "application/json", 422, "invalid_field"),
    ("msgpack garbage", b"\xc1\xc1\xc1", "application/msgpack", 400, "invalid_body"),
    ("msgpack 200000 deep", b"\x91" * 200_000 + b"\x01", "application/msgpack", 400, "invalid_body"),
    ("msgpack state as a forged array map", packb({"state": {"__ndarray__": True, "data": b"x", "dtype": "<f8",
                                                              "shape": [9]}}),
     "application/msgpack", 422, "invalid_field"),
    ("text/plain body", b"hello", "text/plain", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("name,raw,ctype,status,code", BODIES, ids=[b[0] for b in BODIES])
def test_malformed_act_bodies_are_4xx_json(
    server: ServerThread, name: str, raw: bytes, ctype: str, status: int, code: str
) -> None:
    got, body, headers = http_json(server.port, "POST", "/act", raw=raw, content_type=ctype)
    assert_json_error(got, body, status, code)
    assert headers["Content-Type"].startswith("application/json")
    assert http_json(server.port, "GET", "/health")[0] == 200


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_image_over_the_pixel_budget_is_refused_from_its_header(server: ServerThread, bomb: bytes, kind: str) -> None:
    data = bomb if kind == "png" else jpeg_with_header(60000, 60000)
    request = {"state": state(), "images": {"top": base64.b64encode(data).decode()}}
    status, body, _ = http_json(server.port, "POST", "/act", body=request)
    assert_json_error(status, body, 413, "image_too_large", "images.top")
    assert "pixels" in body["error"]["message"]
    ok, result, _ = http_json(server.port, "POST", "/act", body={"state": state(), "images": {"top": small_png()}})
    assert ok == 200 and len(result["actions"]) > 0


def test_msgpack_image_bytes_over_budget_are_refused_too(server: ServerThread) -> None:
    data = jpeg_with_header(4000, 3000)
    status, body, _ = http_json(server.port, "POST", "/act", raw=packb({"state": np.array(state()),
                                "images": {"top": data}}), content_type="application/msgpack")
    assert_json_error(status, body, 413, "image_too_large", "images.top")


JUNK_OFFERS: list[tuple[str, Any, int, str]] = [
    ("garbage sdp", {"sdp": "garbage", "type": "offer"}, 422, "invalid_field"),
    ("sdp without data channel", {"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                                  "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:x\r\n", "type": "offer"},
     422, "invalid_field"),
    ("sdp with a binary line", {"sdp": "v=0\r\n\x00\x01\r\n", "type": "offer"}, 422, "invalid_field"),
    ("sdp 1 MB", {"sdp": "v=0\r\n" + "a=x\r\n" * 200_000, "type": "offer"}, 422, "invalid_field"),
    ("answer instead of offer", {"sdp": "v=0", "type": "answer"}, 422, "invalid_field"),
    ("offer is a list", [1, 2], 400, "invalid_body"),
    ("offer 100000 deep", None, 400, "invalid_body"),
    ("offer unknown field", {"sdp": "v=0", "type": "offer", "x": 1}, 422, "unknown_field"),
]


@pytest.mark.parametrize("name,body,status,code", JUNK_OFFERS, ids=[o[0] for o in JUNK_OFFERS])
def test_junk_webrtc_offers_are_refused_and_take_no_slot(
    server: ServerThread, name: str, body: Any, status: int, code: str
) -> None:
    raw = DEEP.encode() if body is None else json.dumps(body).encode()
    for _ in range(9):  # more than max_peers (8): none may hold a slot
        got, answer, _ = http_json(server.port, "POST", "/webrtc/offer", raw=raw)
        assert_json_error(got, answer, status, code)
    assert http_json(server.port, "GET", "/health")[0] == 200


async def real_offer() -> tuple[Any, str]:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.createDataChannel("reflex")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def post_offer(port: int, sdp: str) -> tuple[int, Any]:
    status, body, _ = http_json(port, "POST", "/webrtc/offer", body={"sdp": sdp, "type": "offer"})
    return status, body


def test_a_peer_that_never_connects_is_dropped_and_its_slot_freed() -> None:
    """An answered offer whose client walks away must not hold the only slot for good."""
    pytest.importorskip("aiortc")
    options = ServeOptions(port=0, webrtc=True, max_peers=1, peer_connect_timeout_s=0.5)
    with ServerThread(policy_host(), options) as srv:
        async def scenario() -> tuple[int, int, int]:
            first, sdp = await real_offer()
            status_first, _ = await asyncio.to_thread(post_offer, srv.port, sdp)
            await first.close()  # walks away without ever connecting
            second, sdp2 = await real_offer()
            status_full, _ = await asyncio.to_thread(post_offer, srv.port, sdp2)
            deadline = time.monotonic() + 60
            status_later = 429
            while status_later == 429 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                status_later, _ = await asyncio.to_thread(post_offer, srv.port, sdp2)
            await second.close()
            return status_first, status_full, status_later

        first, full, later = asyncio.run(scenario())
    assert first == 200 and full == 429 and later == 200


def test_one_client_cannot_take_every_peer_slot() -> None:
    pytest.importorskip("aiortc")
    options = ServeOptions(port=0, webrtc=True, max_peers=8, max_peers_per_client=2)
    with ServerThread(policy_host(), options) as srv:
        async def scenario() -> list[tuple[int, Any]]:
            out = []
            pcs = []
            for _ in range(3):
                pc, sdp = await real_offer()
                pcs.append(pc)
                out.append(await asyncio.to_thread(post_offer, srv.port, sdp))
            for pc in pcs:
                await pc.close()
            return out

        results = asyncio.run(scenario())
    assert [s for s, _ in results] == [200, 200, 429]
    assert "max_peers_per_client 2" in results[2][1]["error"]["message"]


def test_one_client_cannot_hold_every_websocket() -> None:
    websockets = pytest.importorskip("websockets")
    options = ServeOptions(port=0, webrtc=False, max_sockets_per_client=2)
    with ServerThread(policy_host(), options) as srv:
        async def scenario() -> int:
            from websockets.asyncio.client import connect

            async with connect(f"ws://127.0.0.1:{srv.port}/"), connect(f"ws://127.0.0.1:{srv.port}/"):
                try:
                    async with connect(f"ws://127.0.0.1:{srv.port}/"):
                        return 101
                except websockets.exceptions.InvalidStatus as exc:
                    return int(exc.response.status_code)

        assert asyncio.run(scenario()) == 429


# -- RSS of the real ``reflex serve`` process ----------------------------------------------------

@pytest.fixture(scope="module")
def serve_process() -> Any:
    proc = ServeProcess("builtin:demo", args=["--no-webrtc", "--max-request-mb", "4"])
    yield proc
    proc.stop()


def demo_request(image_b64: str) -> dict[str, Any]:
    return {"state": [0.0] * 14, "images": {"top": image_b64}}


def test_decompression_bomb_leaves_server_rss_flat(serve_process: ServeProcess, bomb: bytes) -> None:
    """A 13000x13000 PNG (507 MB decoded, 20x the default budget) raised RSS by 2.25 GB."""
    port, pid = serve_process.port, serve_process.proc.pid
    encoded = base64.b64encode(bomb).decode()
    http_json(port, "POST", "/act", body=demo_request(encoded))  # warm-up: the same path once
    base = peak_of(pid)
    for _ in range(5):
        status, body, _ = http_json(port, "POST", "/act", body=demo_request(encoded))
        assert_json_error(status, body, 413, "image_too_large", "images.top")
    growth_mib = (peak_of(pid) - base) / 1024
    assert growth_mib < 64, f"server peak RSS grew {growth_mib:.0f} MiB"
    assert http_json(port, "GET", "/health")[0] == 200


def test_request_bodies_over_the_cap_leave_server_rss_flat(serve_process: ServeProcess) -> None:
    port, pid = serve_process.port, serve_process.proc.pid
    cap = 4 * 1024 * 1024
    big = b"[" + b"0," * (5 * cap) + b"0]"  # 10x the cap
    http_json(port, "POST", "/act", raw=big)
    base = peak_of(pid)
    for _ in range(3):
        status, body, _ = http_json(port, "POST", "/act", raw=big)
        assert_json_error(status, body, 413, "too_large")
        status, body, _ = http_json(port, "POST", "/act", raw=DEEP.encode())
        assert_json_error(status, body, 400, "invalid_body")
    growth_mib = (peak_of(pid) - base) / 1024
    assert growth_mib < 3 * cap / 2**20 + 16, f"server peak RSS grew {growth_mib:.0f} MiB"
