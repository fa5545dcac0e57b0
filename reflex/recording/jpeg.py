"""JPEG for the viewer formats (MCAP, Rerun), encoded once per frame and shared; PNG instead with
``record.image_encoding: lossless`` (exact pixels, so replay can reproduce an image policy).

The encoded bytes are cached on the :class:`Frame` itself, so when both formats record the same
frame the second one reuses the first one's bytes (Pillow releases the GIL while encoding).
"""

from __future__ import annotations

import io

from reflex.ports import Frame

QUALITY = 90
_ATTR = "_reflex_jpeg"


def jpeg_bytes(frame: Frame, quality: int = QUALITY) -> bytes:
    cached = frame.__dict__.get(_ATTR)
    if cached is not None and cached[0] == quality:
        return bytes(cached[1])
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame.image).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    frame.__dict__[_ATTR] = (quality, data)
    return data


_PNG_ATTR = "_reflex_png"
PNG_LEVEL = 1  # fast zlib: PNG is for exact replay, not for size


def png_bytes(frame: Frame) -> bytes:
    """Lossless PNG (``record.image_encoding: lossless``), cached on the frame like the JPEG."""
    cached = frame.__dict__.get(_PNG_ATTR)
    if cached is not None:
        return bytes(cached)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame.image).save(buf, format="PNG", compress_level=PNG_LEVEL)
    data = buf.getvalue()
    frame.__dict__[_PNG_ATTR] = data
    return data


def encoded_image(frame: Frame, image_encoding: str) -> tuple[bytes, str]:
    """(bytes, format) for ``record.image_encoding``: ``("...", "png")`` or ``("...", "jpeg")``."""
    if image_encoding == "lossless":
        return png_bytes(frame), "png"
    return jpeg_bytes(frame), "jpeg"
