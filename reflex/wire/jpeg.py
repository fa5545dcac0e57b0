"""Image codecs for the wire: JPEG within a per-camera byte budget, and decoding JPEG/PNG.

WebRTC data channels move about 10 KB per millisecond through aiortc's Python SCTP stack, so
images must be compressed: each camera gets a byte budget and the encoder keeps, per camera,
the quality that fitted last time. A steady scene therefore costs one encode per frame; a frame
over budget steps the quality down (and the next frames probe back up slowly).

JPEG goes through simplejpeg (libjpeg-turbo, in the ``serve``, ``http`` and ``webrtc`` extras)
when it is there: about 3x faster than Pillow at decoding the small frames policies take (three
Pillow decodes were a sixth of a WebRTC round trip). Pillow stays the fallback and handles PNG
and the rare JPEG that turbojpeg refuses.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageCodecError(ValueError):
    """Bytes that are not a decodable JPEG/PNG image, or a budget no quality can meet."""


class ImageTooLarge(ImageCodecError):
    """The header announces more pixels than the decode budget: refused before any decoding."""


def image_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(width, height) from the JPEG/PNG header alone: nothing is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data))) as img:
                return int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:  # Pillow's own limit: far over any budget
        raise ImageTooLarge(str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageCodecError(f"cannot read the image header: {exc}") from exc


def is_encoded_image(data: bytes | bytearray | memoryview) -> bool:
    head = bytes(data[:8])
    return head.startswith(JPEG_MAGIC) or head.startswith(PNG_MAGIC)


@functools.cache
def _turbo() -> ModuleType | None:
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """RGB HxWx3 uint8 -> JPEG bytes (4:2:0, no optimisation pass: speed over a few bytes)."""
    turbo = _turbo()
    if turbo is not None:
        rgb = np.ascontiguousarray(image)
        return bytes(turbo.encode_jpeg(rgb, quality=int(quality), colorspace="RGB", colorsubsampling="420"))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def decode_image(data: bytes | bytearray | memoryview, max_pixels: int | None = None) -> np.ndarray:
    """JPEG or PNG bytes -> RGB HxWx3 uint8. With ``max_pixels``, the size announced in the header
    is checked first: a small file that would decode to gigabytes is refused without decoding."""
    from PIL import Image, UnidentifiedImageError

    if not is_encoded_image(data):
        raise ImageCodecError("not a JPEG or PNG image (bad magic bytes)")
    if max_pixels is not None:
        width, height = image_size(data)
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"image is {width}x{height} ({width * height} pixels), over the decode budget of "
                f"{max_pixels} pixels"
            )
    turbo = _turbo()
    if turbo is not None and bytes(data[:3]) == JPEG_MAGIC:
        try:
            return np.asarray(turbo.decode_jpeg(data, colorspace="RGB"))
        except ValueError:
            pass  # e.g. an unusual subsampling: Pillow decodes it or names the problem
    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageCodecError(f"cannot decode image: {exc}") from exc


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an RGB uint8 image (no-op when the size already matches)."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image), mode="RGB").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized)


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Letterbox: scale to fit inside ``height x width`` keeping the aspect ratio (bilinear),
    centred on black. What openpi's clients do before sending (``tf.image.resize_with_pad``
    semantics: sizes truncated, offsets floored), so a policy sees what it was trained on."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    ratio = max(w / width, h / height)
    new_h, new_w = int(h / ratio), int(w / ratio)
    resized = resize_rgb(image, new_h, new_w)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
    out[top : top + new_h, left : left + new_w] = resized
    return out


@dataclass
class JpegBudgetEncoder:
    """Encodes each camera's frames as JPEG no larger than ``budget_bytes``.

    ``max_quality`` is where every camera starts; a frame over budget is re-encoded at lower
    qualities (``step`` apart) down to ``min_quality``; below that the frame is an error, never
    silently sent over budget. Every ``probe_every`` frames a camera tries one step higher.
    """

    budget_bytes: int
    max_quality: int = 90
    min_quality: int = 30
    step: int = 10
    probe_every: int = 30
    _quality: dict[str, int] = field(default_factory=dict)
    _count: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.min_quality <= self.max_quality <= 100:
            raise ValueError("need 1 <= min_quality <= max_quality <= 100")
        if self.budget_bytes <= 0:
            raise ValueError("budget_bytes must be > 0")

    def quality(self, camera: str) -> int:
        return self._quality.get(camera, self.max_quality)

    def encode(self, camera: str, image: np.ndarray) -> bytes:
        n = self._count.get(camera, 0) + 1
        self._count[camera] = n
        quality = self.quality(camera)
        if n % self.probe_every == 0 and quality < self.max_quality:
            quality = min(self.max_quality, quality + self.step)
        while True:
            data = encode_jpeg(image, quality)
            if len(data) <= self.budget_bytes:
                self._quality[camera] = quality
                return data
            if quality <= self.min_quality:
                raise ImageCodecError(
                    f"camera '{camera}': {image.shape[1]}x{image.shape[0]} frame is {len(data)} bytes "
                    f"at JPEG quality {quality}, over the {self.budget_bytes}-byte budget; raise "
                    "jpeg_budget_bytes or lower image_size"
                )
            quality = max(self.min_quality, quality - self.step)
