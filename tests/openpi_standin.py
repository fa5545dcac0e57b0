"""A stand-in for openpi's ``WebsocketPolicyServer`` and its ALOHA and DROID policies.

Written from openpi's published behaviour (the research note on openpi's server, sections 1-9),
not from Reflex's client, and using openpi-client's own msgpack-numpy codec (the module openpi's
server imports). What it reproduces:

- ``websockets`` asyncio server with ``compression=None, max_size=None``, default keepalive;
  ``GET /healthz`` answers 200 ``OK\\n``, any other plain GET gets websockets' 426;
- the first frame is binary msgpack metadata: ``{}`` (DROID checkpoints: exactly ``0x80``) or
  ``{"reset_pose": [0, -1.5, 1.5, 0, 0, 0]}`` (ALOHA checkpoints, ints and floats mixed);
- strict turns: one binary request, one binary reply; unpack, ``infer`` run synchronously *on
  the event loop*, reply with ``actions`` plus ``policy_timing.infer_ms`` and
  ``server_timing.infer_ms``, ``server_timing.prev_total_ms`` from the second reply on;
- any exception (unpack, a text frame, a missing key, the policy): the traceback as a *text*
  frame, then close 1011 with openpi's exact reason, then re-raise; the listener keeps serving;
- the policies check inputs as openpi's transforms do: ALOHA takes only the four known camera
  names, needs ``cam_high``, treats images as CHW; DROID takes flat ``observation/...`` keys and
  accepts HWC or CHW; both need a prompt unless a default prompt is configured.
"""

from __future__ import annotations

import asyncio
import http
import ssl
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from openpi_client import msgpack_numpy

ALOHA_METADATA: dict[str, Any] = {"reset_pose": [0, -1.5, 1.5, 0, 0, 0]}
ALOHA_CAMERAS = {"cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"}
CLOSE_REASON = "Internal server error. Traceback included in previous frame."


class AlohaPolicy:
    """pi05_aloha's input/output contract: state (14,), CHW uint8 images, (50, 14) absolute joints.

    Actions are a deterministic function of every input (state, each image's mean, the prompt
    length), so a wrong or missing field shows in the chunk."""

    horizon = 50

    def __init__(self, default_prompt: str | None = None, fail_on_prompt: str | None = None) -> None:
        self.default_prompt = default_prompt
        self.fail_on_prompt = fail_on_prompt

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        images = obs["images"]
        unknown = set(images) - ALOHA_CAMERAS
        if unknown:
            raise ValueError(f"Expected images to contain {sorted(ALOHA_CAMERAS)}, got {sorted(images)}")
        base = images["cam_high"]  # KeyError when missing, as in AlohaInputs
        prompt = _prompt(obs, self.default_prompt)
        if prompt == self.fail_on_prompt:
            raise ValueError(f"policy cannot do '{prompt}'")
        state = np.asarray(obs["state"], dtype=np.float64)
        means = [float(np.mean(_as_uint8(images[k]))) for k in sorted(images)]
        assert base.shape[0] == 3, "ALOHA images are CHW"
        rows = np.arange(self.horizon, dtype=np.float64)[:, None] * 1e-3
        return {"actions": state[None, :14] + rows + sum(means) * 1e-5 + len(prompt) * 1e-4}


class DroidPolicy:
    """pi05_droid's contract: flat keys, HWC (or CHW) images, joints (7,) + gripper (1,) ->
    (15, 8): 7 joint velocities + 1 gripper position."""

    horizon = 15

    def __init__(self, default_prompt: str | None = None) -> None:
        self.default_prompt = default_prompt

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        joints = np.asarray(obs["observation/joint_position"], dtype=np.float64)
        gripper = np.asarray(obs["observation/gripper_position"], dtype=np.float64).reshape(-1)
        state = np.concatenate([joints, gripper])  # DroidInputs: (8,)
        prompt = _prompt(obs, self.default_prompt)
        if isinstance(prompt, bytes):
            prompt = prompt.decode()
        means = []
        for key in ("observation/exterior_image_1_left", "observation/wrist_image_left"):
            image = _as_uint8(obs[key])
            if image.shape[0] == 3:  # CHW -> HWC, as DroidInputs does
                image = np.transpose(image, (1, 2, 0))
            means.append(float(np.mean(image)))
        velocity = np.full((self.horizon, 7), 0.01) * np.sign(np.arange(1, 8) % 2 - 0.5)
        grip = np.full((self.horizon, 1), float(state[7] > 0.5))
        bias = sum(means) * 1e-6 + len(prompt) * 1e-5
        return {"actions": np.concatenate([velocity + bias, grip], axis=1)}


def _prompt(obs: dict[str, Any], default: str | None) -> Any:
    prompt = obs.get("prompt", default)
    if prompt is None:
        raise ValueError("Prompt is required")
    return prompt


def _as_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return (255 * image).astype(np.uint8) if np.issubdtype(image.dtype, np.floating) else image


class OpenpiStandin:
    """The server on 127.0.0.1:<free port>, on its own event-loop thread. ``received`` holds
    every decoded observation (copies: openpi's decoded arrays are read-only views)."""

    def __init__(self, policy: Any, metadata: dict[str, Any] | None = None,
                 on_request: Callable[[int], None] | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self.ssl_context = ssl_context
        self.metadata = {} if metadata is None else metadata
        self.on_request = on_request
        self.port = 0
        self.received: list[dict[str, Any]] = []
        self.sent: list[np.ndarray] = []
        self.failures = 0
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> OpenpiStandin:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}"

    async def _start(self) -> Any:
        from websockets.asyncio.server import serve

        return await serve(self._handler, "127.0.0.1", 0, compression=None, max_size=None,
                           process_request=_health_check, ssl=self.ssl_context)

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        packer = msgpack_numpy.Packer()
        await ws.send(packer.pack(self.metadata))
        prev_total_time = None
        while True:
            try:
                start_time = time.monotonic()
                obs = msgpack_numpy.unpackb(await ws.recv())
                self.received.append(_copy(obs))
                if self.on_request is not None:
                    self.on_request(len(self.received))
                infer_time = time.monotonic()
                action = self.policy.infer(obs)
                infer_time = time.monotonic() - infer_time
                action = dict(action)
                action["policy_timing"] = {"infer_ms": infer_time * 1000}
                action["server_timing"] = {"infer_ms": infer_time * 1000}
                if prev_total_time is not None:
                    action["server_timing"]["prev_total_ms"] = prev_total_time * 1000
                self.sent.append(np.array(action["actions"]))
                await ws.send(packer.pack(action))
                prev_total_time = time.monotonic() - start_time
            except ConnectionClosed:
                return
            except Exception:
                self.failures += 1
                await ws.send(traceback.format_exc())
                await ws.close(code=1011, reason=CLOSE_REASON)
                raise

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _health_check(connection: Any, request: Any) -> Any:
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None  # everything else: the upgrade (or websockets' 426 for plain HTTP)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.copy()
    return value
