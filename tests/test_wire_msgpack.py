"""reflex.wire.msgpack_numpy against openpi_client's codec, byte for byte."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb

openpi_msgpack = pytest.importorskip("openpi_client.msgpack_numpy", reason="make install-dev installs openpi-client")


def sample_messages() -> list[object]:
    rng = np.random.default_rng(0)
    return [
        {"a": np.arange(3, dtype=np.float32)},
        {
            "state": rng.standard_normal(14),
            "images": {"cam_high": rng.integers(0, 255, (3, 224, 224), dtype=np.uint8)},
            "prompt": "fold the towel",
        },
        {"actions": np.zeros((50, 14)), "server_timing": {"infer_ms": 1.5}, "ok": True, "none": None},
        {"scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.float64(2.25)], "raw": b"\x00\x01"},
        {"strided": np.arange(24, dtype=np.int16).reshape(4, 6)[:, ::2], "fortran": np.asfortranarray(np.eye(3))},
        {"empty": np.zeros((0, 5), dtype=np.float32), "half": np.ones(4, dtype=np.float16), "big": np.ones(20)},
        {f"k{i}": i for i in range(40)},  # map16 header
        [list(range(20)), "x" * 300],  # array16, str16
    ]


@pytest.mark.parametrize("index", range(len(sample_messages())))
def test_encoding_is_byte_identical_to_openpi(index: int) -> None:
    obj = sample_messages()[index]
    assert packb(obj) == openpi_msgpack.packb(obj)


def test_byte_layout_matches_the_documented_example() -> None:
    data = packb({"a": np.arange(3, dtype=np.float32)})
    expected = (
        b"\x81\xa1a\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc4\x0c"
        + np.arange(3, dtype=np.float32).tobytes()
        + b"\xc4\x05dtype\xa3<f4\xc4\x05shape\x91\x03"
    )
    assert data == expected


def test_decodes_what_openpi_encodes_and_vice_versa() -> None:
    obs = sample_messages()[1]
    ours = unpackb(openpi_msgpack.packb(obs))
    theirs = openpi_msgpack.unpackb(packb(obs))
    for decoded in (ours, theirs):
        np.testing.assert_array_equal(decoded["state"], obs["state"])  # type: ignore[index]
        assert decoded["images"]["cam_high"].shape == (3, 224, 224)
        assert decoded["prompt"] == "fold the towel"


def test_scalars_round_trip_like_openpi() -> None:
    out = unpackb(packb({"f32": np.float32(1.5), "f64": np.float64(2.25), "i": np.int64(-3)}))
    assert isinstance(out["f32"], np.float32) and out["f32"] == 1.5
    assert type(out["f64"]) is float  # np.float64 is a float subclass: sent as a plain float
    assert isinstance(out["i"], np.int64) and out["i"] == -3


def test_decoded_arrays_are_read_only_views() -> None:
    out = unpackb(packb({"x": np.arange(5.0)}))
    assert not out["x"].flags.writeable
    with pytest.raises(ValueError):
        out["x"][0] = 1.0


@pytest.mark.parametrize("bad", [np.zeros(2, dtype=complex), np.array([object()]), np.zeros(2, dtype="V4")])
def test_unsupported_dtypes_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unsupported dtype"):
        packb({"x": bad})


def test_str_keyed_array_maps_are_not_arrays() -> None:
    # The interop trap: a peer that writes str keys gets a plain dict back, as with openpi.
    data = msgpack.packb({"__ndarray__": True, "data": b"\x00" * 4, "dtype": "<f4", "shape": [1]})
    assert isinstance(unpackb(data), dict)


def test_malformed_input_is_a_wire_format_error() -> None:
    with pytest.raises(WireFormatError):
        unpackb(b"\xc1")  # never used in msgpack
    with pytest.raises(WireFormatError):
        unpackb(packb({"x": np.zeros(3)})[:-5])  # truncated
    bad_array = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 3, b"dtype": "<f4", b"shape": [1]})
    with pytest.raises(WireFormatError, match="malformed ndarray"):
        unpackb(bad_array)
