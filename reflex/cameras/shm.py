"""``kind: shm``: frames published into shared memory by another process (``reflex camera publish``).

``latest()`` copies the newest frame out of the channel once per new frame (converting BGR to
RGB in the same pass) and reports the publisher's own capture timestamp, so a frozen or dead
publisher shows up as an ageing frame that the session's ``max_age_ms`` check refuses. The
camera also watches the channel: a publisher that died is reported once, and a restarted
publisher (a new channel under the same name) is picked up without restarting the session.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from pydantic import Field

from reflex.cameras.base import CameraSpec
from reflex.cameras.expect import check_size
from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.ports import Camera, Frame
from reflex.shm.layout import ChannelHeader, LayoutError
from reflex.shm.reader import ShmReader
from reflex.shm.segments import ChannelError, ChannelNotFound, channel_path, remove_if_stale

log = logging.getLogger("reflex.cameras.shm")
HEALTH_CHECK_S = 0.1  # how often a camera without new frames looks at its publisher
RETRY_S = 0.05


class ShmCameraSpec(CameraSpec):
    """A camera published into shared memory by ``reflex camera publish NAME``."""

    kind: Literal["shm"] = "shm"
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,48}$",
        description="Channel name given to `reflex camera publish`; default: this camera's name.",
    )
    wait_s: float = Field(
        5.0, ge=0, description="How long session start waits for a live publisher on the channel."
    )

    def build(self, name: str, ctx: BuildContext) -> Camera:
        return ShmCamera(name, self)


class ShmCamera:
    def __init__(self, name: str, spec: ShmCameraSpec) -> None:
        self.name = name
        self.channel = spec.name or name
        self._spec = spec
        self._reader: ShmReader | None = None
        self._frame: Frame | None = None
        self._seq = 0  # our own count: stays monotonic across publisher restarts
        self._last_number = 0
        self._last_check = 0.0
        self._reported_dead = False
        self._rejected: str | None = None
        self.restarts = 0  # publisher restarts picked up during the session
        self.stage = f"cameras.{name}"

    # -- Camera port ----------------------------------------------------------------------------

    def start(self) -> None:
        """Attach to a live publisher (waiting up to ``wait_s``) and check size and colour order."""
        deadline = time.monotonic() + self._spec.wait_s
        while True:
            try:
                reader = ShmReader.attach(self.channel, wait_s=max(0.0, deadline - time.monotonic()))
            except ChannelNotFound as exc:
                raise SetupError(self.stage, f"{exc} (waited {self._spec.wait_s:g} s)") from None
            except LayoutError as exc:
                raise SetupError(self.stage, str(exc)) from None
            if reader.publisher_alive() and reader.state() != "closed":
                break
            why = self._dead_reason(reader)
            reader.close()
            if time.monotonic() >= deadline:
                raise SetupError(
                    self.stage,
                    f"channel '{self.channel}' is stale: {why}; start its publisher, e.g. "
                    f"`reflex camera publish {self.channel} --source ...`",
                )
            time.sleep(RETRY_S)  # a restarting publisher replaces the stale channel
        problem = self._mismatch(reader.header)
        if problem is not None:
            reader.close()
            raise SetupError(self.stage, problem)
        self._reader = reader
        self._last_check = time.monotonic()

    def latest(self) -> Frame | None:
        reader = self._reader
        if reader is None:
            return self._frame
        if reader.latest_number() != self._last_number:
            data = reader.read_rgb()
            if data is not None:  # None only if the publisher lapped every attempt: next tick
                self._last_number = data.frame_number
                self._seq += 1
                self._frame = Frame(image=data.image, t_capture=data.t_capture, seq=self._seq)
                return self._frame
        now = time.monotonic()
        if now - self._last_check >= HEALTH_CHECK_S:
            self._last_check = now
            self._check_publisher(reader)
        return self._frame

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is None:
            return
        dead = not reader.publisher_alive()
        inode, path = reader.inode, reader.path
        reader.close()
        if dead:  # clean up after a publisher that crashed (normally its watchdog already did)
            remove_if_stale(path, only_inode=inode)

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """Channel state for diagnostics (publisher alive, restarts, measured publish rate)."""
        reader = self._reader
        if reader is None:
            return {"channel": self.channel, "attached": False, "restarts": self.restarts}
        return {
            "channel": self.channel,
            "attached": True,
            "path": str(reader.path),
            "publisherPid": reader.header.pid,
            "publisherAlive": reader.publisher_alive(),
            "state": reader.state(),
            "publishFps": round(reader.fps_measured(), 2),
            "restarts": self.restarts,
        }

    def _check_publisher(self, reader: ShmReader) -> None:
        if reader.replaced() and self._try_reattach(reader):
            return
        alive = reader.publisher_alive() and reader.state() != "closed"
        if not alive and not self._reported_dead:
            log.warning("camera '%s': %s; waiting for a publisher", self.name, self._dead_reason(reader))
        self._reported_dead = not alive

    def _try_reattach(self, old: ShmReader) -> bool:
        """Switch to the channel now at the path (a restarted publisher) if it fits the config."""
        try:
            new = ShmReader.attach(self.channel)
        except (ChannelError, LayoutError, OSError):
            return False  # removed (publisher gone, watchdog cleaned up) and not back yet
        problem = self._mismatch(new.header)
        if problem is not None or not new.publisher_alive():
            new.close()
            if problem is not None and problem != self._rejected:
                log.error("camera '%s': restarted publisher rejected: %s", self.name, problem)
                self._rejected = problem
            return False
        old.close()
        self._reader = new
        self._last_number = 0
        self._reported_dead = False
        self._rejected = None
        self.restarts += 1
        log.info(
            "camera '%s': publisher pid %d took over channel '%s'", self.name, new.header.pid, self.channel
        )
        return True

    def _dead_reason(self, reader: ShmReader) -> str:
        if reader.state() == "closed":
            return f"publisher pid {reader.header.pid} closed channel '{self.channel}'"
        age = reader.heartbeat_age()
        return (
            f"publisher pid {reader.header.pid} of channel '{self.channel}' is gone "
            f"(last sign of life {age:.1f} s ago)"
        )

    def _mismatch(self, header: ChannelHeader) -> str | None:
        try:
            check_size(
                self.name, f"channel '{self.channel}' ({channel_path(self.channel)})",
                (self._spec.width, self._spec.height), (header.width, header.height),
            )  # fmt: skip
        except SetupError as exc:
            return str(exc).removeprefix(f"{self.stage}: ")
        expected = "rgb24" if self._spec.color_order == "rgb" else "bgr24"
        if header.pixel_format != expected:
            return (
                f"channel '{self.channel}' carries {header.pixel_format} frames, the config says "
                f"color_order {self._spec.color_order} (cameras.{self.name}.color_order): set it to "
                f"{header.pixel_format[:3]} or publish with --pixel-format {expected}"
            )
        return None
