"""msgpack with numpy arrays, byte-compatible with openpi_client's format.

Layout (a public wire format, see docs/serve.md): an ndarray is a 4-entry map whose keys are
*bin*-typed ``__ndarray__`` (true), ``data`` (C-order raw bytes), ``dtype`` (``dtype.str``, e.g.
``<f4``) and ``shape`` (array of ints); a numpy scalar is ``__npgeneric__`` / ``data`` / ``dtype``.
Strings are str-typed, bytes bin-typed, no ext types.

The encoder writes the msgpack headers itself and joins all parts once, so a 450 KB observation
costs one copy instead of msgpack's growing internal buffer (about 25x faster than
``msgpack.packb(default=...)`` for three 224x224 images). Decoded arrays are zero-copy read-only
views over the received bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

_PACKER = msgpack.Packer(use_bin_type=True)
_KEY_ND = _PACKER.pack(b"__ndarray__")
_KEY_GENERIC = _PACKER.pack(b"__npgeneric__")
_KEY_DATA = _PACKER.pack(b"data")
_KEY_DTYPE = _PACKER.pack(b"dtype")
_KEY_SHAPE = _PACKER.pack(b"shape")
_TRUE = b"\xc3"
_REJECTED_KINDS = ("V", "O", "c")


class WireFormatError(ValueError):
    """Bytes that are not a valid msgpack-numpy message."""


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + bytes((n,))
    if n < 1 << 16:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 1 << 16:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind in _REJECTED_KINDS:
        raise ValueError(f"unsupported dtype {dtype} (void, object and complex cannot be sent)")


def _encode(obj: Any, out: list[bytes | memoryview]) -> None:
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype)
        arr = np.ascontiguousarray(obj)
        out.append(b"\x84" + _KEY_ND + _TRUE + _KEY_DATA + _bin_header(arr.nbytes))
        out.append(memoryview(arr).cast("B") if arr.nbytes else b"")  # type: ignore[arg-type]
        out.append(_KEY_DTYPE + _PACKER.pack(arr.dtype.str) + _KEY_SHAPE + _PACKER.pack(list(arr.shape)))
    elif isinstance(obj, dict):
        out.append(_map_header(len(obj)))
        for key, value in obj.items():
            _encode(key, out)
            _encode(value, out)
    elif isinstance(obj, (list, tuple)):
        out.append(_array_header(len(obj)))
        for value in obj:
            _encode(value, out)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        view = memoryview(obj).cast("B")
        out.append(_bin_header(view.nbytes))
        out.append(view)
    elif isinstance(obj, np.generic) and not isinstance(obj, float):
        # np.float64 subclasses float and goes out as a plain msgpack float64 (as in openpi).
        _check_dtype(obj.dtype)
        out.append(b"\x83" + _KEY_GENERIC + _TRUE + _KEY_DATA + _PACKER.pack(obj.item()))
        out.append(_KEY_DTYPE + _PACKER.pack(obj.dtype.str))
    else:
        out.append(_PACKER.pack(obj))


def pack_parts(obj: Any) -> list[bytes | memoryview]:
    """The encoding of ``obj`` as a list of buffers (array data by reference, not copied).

    For senders that copy anyway (e.g. WebSocket masking): they can write straight from these.
    """
    parts: list[bytes | memoryview] = []
    _encode(obj, parts)
    return parts


def packb(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, bytes, numbers, None, numpy arrays and scalars)."""
    return b"".join(pack_parts(obj))


def _object_hook(obj: dict[Any, Any]) -> Any:
    if b"__ndarray__" in obj:
        try:
            return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireFormatError(f"malformed ndarray entry: {exc}") from exc
    if b"__npgeneric__" in obj:
        try:
            return np.dtype(obj[b"dtype"]).type(obj[b"data"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireFormatError(f"malformed numpy scalar entry: {exc}") from exc
    return obj


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """Decode one message; arrays are read-only views over ``data``."""
    try:
        return msgpack.unpackb(data, object_hook=_object_hook, raw=False)
    except WireFormatError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireFormatError(f"not a msgpack message: {exc}") from exc
