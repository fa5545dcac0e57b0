"""The live Rerun view of a running session (``reflex connect --view``).

It is a sink of the recording hub: the loop only enqueues (a bounded queue, dropped when full),
and this runs on the sink's own writer thread, so a slow or absent viewer never reaches the
loop. It logs what the ``rerun`` recorder logs (cameras, measured joints, the action sent,
guard and session events) plus, for each new chunk, its predicted trajectory
(``policy/predicted``) on the same ``capture_time`` timeline as the executed actions
(``action/applied`` or ``action/not_applied``), so the two can be compared as the session runs.

Where it goes (``--view [WHERE]``):

* ``spawn``: start a local viewer and stream to it;
* ``serve`` or ``serve:PORT``: serve the stream over gRPC (default port 9876) for a viewer on
  another machine: ``rerun rerun+http://HOST:PORT/proxy``; late viewers get the buffered data;
* ``rerun+http://HOST:PORT/proxy``: connect to a viewer that is already running;
* no value (``auto``): spawn a viewer when a display is available, else serve.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reflex.ports import ActionChunk, SessionMeta, StepRecord
from reflex.recording.clock import WallClock
from reflex.recording.jpeg import encoded_image
from reflex.recording.rerun_recorder import APPLICATION_ID, RerunRecorder

DEFAULT_PORT = 9876
VIEW_HZ = 25.0  # steps per second sent to the viewer (joints, actions)
CAMERA_MAX_FPS = 10.0  # frames per camera sent to the viewer: enough to watch, light to encode
SERVER_MEMORY = "512MiB"  # what the gRPC server buffers for viewers that connect late


class ViewError(ValueError):
    """A ``--view`` value that is not spawn, serve[:PORT], auto or a rerun+http URL."""


@dataclass(frozen=True)
class ViewTarget:
    how: str  # spawn | serve | connect
    url: str | None = None
    port: int | None = None


def parse_view(value: str) -> ViewTarget:
    value = value.strip()
    if value in ("", "auto"):
        return ViewTarget("spawn") if has_display() else ViewTarget("serve", port=DEFAULT_PORT)
    if value == "spawn":
        return ViewTarget("spawn")
    if value == "serve" or value.startswith("serve:"):
        port_text = value.partition(":")[2] or str(DEFAULT_PORT)
        if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
            raise ViewError(f"--view {value}: expected serve:PORT with a port number")
        port = int(port_text) or free_port()
        return ViewTarget("serve", port=port)
    if value.startswith(("rerun://", "rerun+http://", "rerun+https://")):
        return ViewTarget("connect", url=value)
    raise ViewError(f"--view {value}: expected spawn, serve, serve:PORT, auto or a rerun+http://HOST:PORT/proxy URL")


def has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveView(RerunRecorder):
    """A hub sink streaming to a Rerun viewer instead of writing ``session.rrd``."""

    name = "view"

    def __init__(self, target: ViewTarget) -> None:
        super().__init__(Path("."), images=True, image_encoding="lossy")
        self.target = target
        self.url: str | None = None
        self.where = ""  # one sentence for the operator: where the stream goes
        self._last_image: dict[str, float] = {}
        self._last_step = -1e9
        self._guard_steps: dict[str, int] = {}
        self._guard_joints: dict[str, set[str]] = {}
        self._joints: list[str] = []

    def start(self) -> str:
        """Open the stream now (before the session), so a bad URL fails first; returns where it goes."""
        from reflex.memory import purge_freed_native_memory

        purge_freed_native_memory()  # before rerun's native library loads, as the recorder does
        import rerun as rr

        self._rr = rr
        rec = rr.RecordingStream(APPLICATION_ID, make_default=False, make_thread_default=False)
        how = self.target.how
        if how == "serve":
            self.url = rec.serve_grpc(grpc_port=self.target.port, server_memory_limit=SERVER_MEMORY)
            where = f"serving the live view on {self.url} (open it with: rerun {self.url})"
        elif how == "connect":
            rec.connect_grpc(self.target.url)
            self.url = self.target.url
            where = f"streaming the live view to {self.url}"
        else:
            port = free_port()
            rec.spawn(port=port, connect=True)
            self.url = f"rerun+http://127.0.0.1:{port}/proxy"
            where = f"streaming the live view to a new viewer ({self.url})"
        # something for a viewer that connects before the session starts (an empty server ends its stream)
        rec.log("session/status", rr.TextDocument("connecting: the session starts when the target answers"),
                static=True)
        self._rec = rec
        self.where = where
        return where

    # -- Recorder port (on the hub's writer thread) ----------------------------------------------
    def open(self, meta: SessionMeta) -> None:
        rr, rec = self._rr, self._rec
        assert rec is not None, "LiveView.start() first"
        self._clock = WallClock(meta)
        self._cameras = set(meta.camera_names)
        self._joints = list(meta.joint_names)
        rec.send_recording_name(meta.session_id)
        for entity in ("robot/state", "action/applied", "action/not_applied", "policy/predicted"):
            rec.log(entity, rr.SeriesLines(names=self._joints), static=True)
        rec.log("session", rr.AnyValues(session_id=meta.session_id, mode=meta.mode, task=meta.task,
                                        control_rate_hz=float(meta.control_rate_hz)), static=True)
        rec.log("task", rr.TextDocument(meta.task), static=True)
        rec.log("session/status", rr.TextDocument(f"running: {meta.mode} at {meta.control_rate_hz:g} Hz"),
                static=True)

    def write_step(self, rec_: StepRecord) -> None:
        """At most ``VIEW_HZ`` steps per second: what a person can follow, and little work (this
        thread shares the interpreter with the control loop). Guard events in between are counted
        and sent with the next step."""
        rr, rec = self._rr, self._rec
        assert rec is not None and self._clock is not None
        now = time.monotonic()
        ns = self._clock.ns
        for event in rec_.guard_events:
            self._guard_steps[event.kind] = self._guard_steps.get(event.kind, 0) + 1
            self._guard_joints.setdefault(event.kind, set()).update(event.joints)
        if now - self._last_step < 1.0 / VIEW_HZ:
            return
        self._last_step = now
        rec.set_time("step", sequence=rec_.step)
        if self._guard_steps:  # guard activity since the last step sent, as one event
            rec.set_time("capture_time", timestamp=np.datetime64(ns(rec_.t_tick), "ns"))
            text = "; ".join(f"{kind} on {n} step(s): {', '.join(sorted(self._guard_joints[kind]))}"
                             for kind, n in self._guard_steps.items())
            rec.log("events", rr.TextLog(f"guard {text}", level="WARN"))
            self._guard_steps, self._guard_joints = {}, {}
        for cam, frame in rec_.frames.items():
            if cam in self._cameras and now - self._last_image.get(cam, -1e9) >= 1.0 / CAMERA_MAX_FPS:
                self._last_image[cam] = now
                rec.set_time("capture_time", timestamp=np.datetime64(ns(frame.t_capture), "ns"))
                data, fmt = encoded_image(frame, "lossy")
                rec.log(f"camera/{cam}", rr.EncodedImage(contents=data, media_type=f"image/{fmt}"))
                self.counts["images"] += 1
        rec.set_time("capture_time", timestamp=np.datetime64(ns(rec_.state.t_capture), "ns"))
        rec.log("robot/state", rr.Scalars(np.asarray(rec_.state.position, dtype=np.float64)))
        if rec_.action is not None:
            rec.set_time("capture_time", timestamp=np.datetime64(ns(rec_.t_tick), "ns"))
            entity = "action/applied" if rec_.applied else "action/not_applied"
            rec.log(entity, rr.Scalars(np.asarray(rec_.action, dtype=np.float64)))
        self.counts["steps"] += 1

    def write_chunk(self, chunk: ActionChunk) -> None:
        """The chunk's predicted trajectory, each action at the time it is meant for."""
        rr, rec = self._rr, self._rec
        assert rec is not None and self._clock is not None
        actions = np.asarray(chunk.actions, dtype=np.float64)
        times = [self._clock.ns(chunk.t_origin + i * chunk.dt) for i in range(actions.shape[0])]
        rec.send_columns(
            "policy/predicted",
            indexes=[rr.TimeColumn("capture_time", timestamp=np.asarray(times, dtype="datetime64[ns]"))],
            columns=rr.Scalars.columns(scalars=actions),
        )
        rec.set_time("step", sequence=chunk.obs_step)
        rec.set_time("capture_time", timestamp=np.datetime64(self._clock.ns(chunk.t_origin), "ns"))
        rec.log("policy/chunk_id", rr.Scalars(float(chunk.chunk_id)))
        self.counts["chunks"] += 1

    def flush(self) -> None:
        """Nothing to do: Rerun's batcher sends on its own; waiting here would only hold this thread."""

    def close(self) -> None:
        rec, self._rec = self._rec, None
        if rec is None:
            return
        rec.log("session/status", self._rr.TextDocument("ended"), static=True)
        rec.flush(timeout_sec=2.0)
        rec.disconnect()


def view_sink(value: str) -> LiveView:
    """A started live view for ``--view VALUE`` (raises ViewError on a bad value)."""
    view = LiveView(parse_view(value))
    view.start()
    return view
