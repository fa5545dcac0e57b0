"""One spec per recording format (``reflex/recording/formats.py``): every consumer reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_testutil import SAMPLE

from reflex.config.base import load_object
from reflex.recording import inspect as rec_inspect
from reflex.recording.factory import build_recorders
from reflex.recording.formats import KNOWN_FORMATS, SPECS
from reflex.replay.readers import READERS, detect_formats


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_spec_resolves_and_describes_the_committed_sample(spec) -> None:  # type: ignore[no-untyped-def]
    reader = load_object(spec.reader)()
    assert reader.name == spec.name
    target = spec.target(SAMPLE / spec.directory)
    assert spec.recorded_in(SAMPLE) and target.exists()
    assert reader.locate(SAMPLE) == target  # the reader finds the file the spec names
    assert load_object(spec.probe)(target)["state"] == "complete"
    assert load_object(spec.repair)(target)["repaired"] is False  # a finished recording is left alone


def test_recorders_write_where_their_spec_says(tmp_path: Path) -> None:
    recorders = build_recorders([s.name for s in SPECS], tmp_path, images=True, image_encoding="lossless")
    assert [r.name for r in recorders] == [s.name for s in SPECS]  # type: ignore[attr-defined]
    for spec, recorder in zip(SPECS, recorders, strict=True):
        where = getattr(recorder, "path", None) or getattr(recorder, "root", None) or recorder.directory  # type: ignore[attr-defined]
        assert Path(where) in (spec.target(tmp_path / spec.directory), tmp_path / spec.directory)


def test_the_tables_derive_from_the_specs() -> None:
    assert list(READERS) == [s.name for s in SPECS]  # replay's preference order
    assert {s.name for s in SPECS} == KNOWN_FORMATS
    assert [name for name, _ in detect_formats(SAMPLE)] == [s.name for s in SPECS]
    summary = rec_inspect.summarize(SAMPLE)
    assert sorted(summary["formats"]) == sorted(s.name for s in SPECS)
