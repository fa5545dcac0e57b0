"""JPEG for the viewer formats (MCAP, Rerun), encoded once per frame and shared.

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
