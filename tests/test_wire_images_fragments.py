"""JPEG within a byte budget, and message splitting/reassembly for the SCTP size limit."""

from __future__ import annotations

import numpy as np
import pytest

from reflex.wire import jpeg
from reflex.wire.fragments import HEADER, FragmentError, Reassembler, split_message
from reflex.wire.jpeg import ImageCodecError, JpegBudgetEncoder, decode_image, encode_jpeg, resize_rgb


@pytest.fixture(params=["turbo", "pillow"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every JPEG test runs on both backends: simplejpeg (the extras) and Pillow (core only)."""
    if request.param == "turbo":
        if jpeg._turbo() is None:
            pytest.fail("simplejpeg is part of the serve/http/webrtc extras the tests install")
    else:
        monkeypatch.setattr(jpeg, "_turbo", lambda: None)
    return str(request.param)


def scene(seed: int = 0, noise: float = 6.0, size: int = 224) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 255 / size, yy * 255 / size, (xx + yy) * 127 / size], -1)
    img[60:120, 80:160] = [200, 40, 40]
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def test_jpeg_round_trip_is_close_to_the_original(codec: str) -> None:
    img = scene()
    out = decode_image(encode_jpeg(img, 95))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 6


def test_budget_encoder_stays_within_budget_and_remembers_the_quality(codec: str) -> None:
    enc = JpegBudgetEncoder(budget_bytes=6000, max_quality=95, min_quality=20, step=5)
    sizes = [len(enc.encode("top", scene(i))) for i in range(5)]
    assert max(sizes) <= 6000
    fitted = enc.quality("top")
    assert fitted < 95  # the first frame had to step down ...
    assert len(encode_jpeg(scene(9), fitted + 5)) > 6000 or fitted + 5 > 95  # ... to the highest that fits
    assert enc.quality("other") == 95  # per camera


def test_budget_encoder_probes_back_up_when_the_scene_gets_simpler(codec: str) -> None:
    enc = JpegBudgetEncoder(budget_bytes=5000, max_quality=90, min_quality=10, step=10, probe_every=3)
    enc.encode("top", scene(noise=12.0))
    low = enc.quality("top")
    flat = np.full((224, 224, 3), 128, dtype=np.uint8)
    for _ in range(6):
        enc.encode("top", flat)
    assert enc.quality("top") > low


def test_unreachable_budget_is_an_error_naming_the_camera(codec: str) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    enc = JpegBudgetEncoder(budget_bytes=2000, min_quality=30)
    with pytest.raises(ImageCodecError, match=r"camera 'wrist'.*over the 2000-byte budget"):
        enc.encode("wrist", noise)


def test_decode_rejects_non_images(codec: str) -> None:
    with pytest.raises(ImageCodecError, match="not a JPEG or PNG"):
        decode_image(b"GIF89a....")
    with pytest.raises(ImageCodecError, match="cannot decode"):
        decode_image(b"\xff\xd8\xff" + b"\x00" * 50)


def test_backends_read_each_others_jpeg_and_grayscale_becomes_rgb(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    img = scene(3)
    by_turbo = encode_jpeg(img, 90)
    monkeypatch.setattr(jpeg, "_turbo", lambda: None)
    by_pillow = encode_jpeg(img, 90)
    from_turbo_by_pillow = decode_image(by_turbo)
    monkeypatch.undo()
    from_pillow_by_turbo = decode_image(by_pillow)
    for out in (from_turbo_by_pillow, from_pillow_by_turbo):
        assert out.shape == img.shape and np.abs(out.astype(int) - img.astype(int)).mean() < 6
    gray = io.BytesIO()
    Image.fromarray(img[:, :, 0], mode="L").save(gray, format="JPEG", quality=90)
    out = decode_image(gray.getvalue())
    assert out.shape == img.shape and np.array_equal(out[:, :, 0], out[:, :, 2])


def test_encoder_accepts_non_contiguous_views(codec: str) -> None:
    img = scene(4)
    out = decode_image(encode_jpeg(img[:, ::-1], 95))  # a mirrored view, as a flip transform gives
    assert np.abs(out.astype(int) - img[:, ::-1].astype(int)).mean() < 6


def test_resize_keeps_rgb_uint8() -> None:
    out = resize_rgb(scene(size=100), 48, 64)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_split_and_reassemble_in_any_order() -> None:
    payload = np.random.default_rng(0).bytes(300_000)
    parts = split_message(7, payload, part_bytes=64 * 1024)
    assert len(parts) == 5 and all(len(p) <= 64 * 1024 for p in parts)
    re = Reassembler(max_message_bytes=1 << 20)
    results = [re.feed(p) for p in [parts[3], parts[0], parts[4], parts[2], parts[1]]]
    assert results[:4] == [None] * 4
    assert results[4] == (7, payload)


def test_small_messages_are_one_part_with_a_header() -> None:
    parts = split_message(1, b"hello")
    assert len(parts) == 1 and len(parts[0]) == HEADER.size + 5
    assert Reassembler(100).feed(parts[0]) == (1, b"hello")
    assert Reassembler(100).feed(split_message(2, b"")[0]) == (2, b"")


def test_interleaved_messages_do_not_mix() -> None:
    a, b = split_message(1, b"a" * 50, 32), split_message(2, b"b" * 50, 32)
    re = Reassembler(1000)
    out = [re.feed(p) for pair in zip(a, b, strict=True) for p in pair]
    done = [x for x in out if x is not None]
    assert done == [(1, b"a" * 50), (2, b"b" * 50)]


def test_oversized_and_malformed_parts_are_refused() -> None:
    re = Reassembler(max_message_bytes=100)
    with pytest.raises(FragmentError, match="over the 100-byte limit"):
        re.feed(split_message(1, b"x" * 200)[0])
    parts = split_message(2, b"y" * 300, part_bytes=100)
    re.feed(parts[0])
    with pytest.raises(FragmentError, match="over the 100-byte limit"):
        re.feed(parts[1])
    with pytest.raises(FragmentError, match="bad part header"):
        re.feed(b"XX" + parts[0][2:])
    with pytest.raises(FragmentError, match="shorter than the header"):
        re.feed(b"RX")


def test_pending_messages_are_bounded() -> None:
    re = Reassembler(max_message_bytes=10_000, max_pending=2)
    for msg_id in (1, 2, 3):
        re.feed(split_message(msg_id, b"z" * 100, 40)[0])
    assert re.dropped == 1
    rest = split_message(1, b"z" * 100, 40)[1:]
    assert all(re.feed(p) is None for p in rest)  # message 1 lost its first part: never completes
