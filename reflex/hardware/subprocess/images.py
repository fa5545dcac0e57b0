"""Images delivered inside observations: decoding them, and the Camera objects that expose them.

The encoding is declared by each payload (``jpeg``, ``png``, ``rgb8``, ``path``), never guessed
from the bytes; a payload whose bytes do not match its declared format is an error.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import numpy as np

from reflex.hardware.subprocess.contract import EncodedImage, ImagePayload, PathImage, RawImage
from reflex.hardware.subprocess.errors import ContractViolation
from reflex.ports import Frame

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG"}


def decode_image(name: str, payload: ImagePayload, width: int, height: int, cwd: Path) -> np.ndarray:
    """An RGB uint8 (height, width, 3) array, or :class:`ContractViolation`."""
    where = f"images.{name}"
    if isinstance(payload, RawImage):
        raw = _b64(payload.data, where)
        expected = width * height * 3
        if len(raw) != expected:
            raise ContractViolation(
                f"{where}: rgb8 data has {len(raw)} bytes, expected {height}x{width}x3 = {expected}"
            )
        return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    if isinstance(payload, EncodedImage):
        data = _b64(payload.data, where)
        image = _open(io.BytesIO(data), PIL_FORMATS[payload.encoding], where)
    else:
        assert isinstance(payload, PathImage)
        path = Path(payload.path).expanduser()
        path = path if path.is_absolute() else cwd / path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ContractViolation(f"{where}: cannot read image file {path}: {exc.strerror}") from None
        image = _open(io.BytesIO(data), None, f"{where} ({path})")
    if image.shape[:2] != (height, width):
        raise ContractViolation(
            f"{where}: image is {image.shape[1]}x{image.shape[0]} (WxH), declared {width}x{height}"
        )
    return image


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContractViolation(f"{where}: data is not valid base64 ({exc})") from None


def _open(stream: io.BytesIO, expected_format: str | None, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(stream) as img:
            fmt = img.format
            if expected_format is not None and fmt != expected_format:
                raise ContractViolation(f"{where}: declared {expected_format} but the bytes are {fmt}")
            if fmt not in PIL_FORMATS.values():
                raise ContractViolation(f"{where}: image files must be JPEG or PNG, got {fmt}")
            rgb = img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ContractViolation(f"{where}: cannot decode image ({exc})") from None


class SubprocessCamera:
    """A camera whose frames arrive with the connector's observations (the Camera port).

    ``latest`` returns the frame of the most recent observation that carried this camera, with
    that image's capture timestamp, so staleness checks in the runner see real image age.
    """

    def __init__(self, name: str, width: int, height: int) -> None:
        self.name = name
        self.width = width
        self.height = height
        self._frame: Frame | None = None
        self._seq = 0

    def start(self) -> None:
        pass

    def latest(self) -> Frame | None:
        return self._frame

    def stop(self) -> None:
        self._frame = None

    def push(self, image: np.ndarray, t_capture: float) -> None:
        self._seq += 1
        image.setflags(write=False)  # handed to the policy and recorders without copying
        self._frame = Frame(image=image, t_capture=t_capture, seq=self._seq)
