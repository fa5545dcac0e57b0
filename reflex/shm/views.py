"""Typed views into a mapped channel: shared by the writer and every reader."""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

from reflex.shm import layout
from reflex.shm.layout import ChannelHeader


@dataclass
class ChannelViews:
    """The header words (as u64 and f64), each slot's header words, and each slot's pixels."""

    hq: memoryview[int]
    hd: memoryview[float]
    slot_q: list[memoryview[int]]
    slot_d: list[memoryview[float]]
    pixels: list[np.ndarray]


def map_views(mm: mmap.mmap, header: ChannelHeader) -> ChannelViews:
    whole = memoryview(mm)
    shape = (header.height, header.width, header.channels)
    views = ChannelViews(
        hq=whole[: layout.HEADER_SIZE].cast("Q"),
        hd=whole[: layout.HEADER_SIZE].cast("d"),
        slot_q=[],
        slot_d=[],
        pixels=[],
    )
    for i in range(header.slot_count):
        off = header.slot_offset(i)
        views.slot_q.append(whole[off : off + layout.SLOT_HEADER_SIZE].cast("Q"))
        views.slot_d.append(whole[off : off + layout.SLOT_HEADER_SIZE].cast("d"))
        pixels = np.frombuffer(mm, np.uint8, count=header.frame_bytes, offset=off + layout.SLOT_HEADER_SIZE)
        views.pixels.append(pixels.reshape(shape))
    whole.release()
    return views
