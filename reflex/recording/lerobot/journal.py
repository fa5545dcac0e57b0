"""Crash-safe row journal: an Arrow IPC stream, one record batch per flush (about once a second).

After ``kill -9`` every batch written before the last flush reads back; a torn last batch is
ignored. The parquet files of the dataset are built from this journal when the episode ends (or
when an interrupted recording is repaired), so both paths share one code path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from reflex.recording.lerobot.layout import EPISODE_COLUMN, TASK_COLUMN

_ARROW_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}


def arrow_type(feature: dict[str, Any]) -> pa.DataType:
    base = _ARROW_TYPES[feature["dtype"]]
    shape = feature["shape"]
    return base if list(shape) == [1] else pa.list_(base, int(np.prod(shape)))


def journal_schema(features: dict[str, dict[str, Any]], binary_columns: list[str] | None = None) -> pa.Schema:
    """``binary_columns``: PNG frames journaled with their rows (``image_encoding: lossless``)."""
    fields = [pa.field(name, arrow_type(f), nullable=False) for name, f in features.items()]
    fields += [pa.field(name, pa.binary(), nullable=False) for name in binary_columns or []]
    return pa.schema([
        *fields,
        pa.field(EPISODE_COLUMN, pa.int64(), nullable=False),
        pa.field(TASK_COLUMN, pa.string(), nullable=False),
    ])


class RowJournal:
    """Buffers rows in columns and appends them as one record batch per :meth:`flush`."""

    def __init__(
        self, path: Path, features: dict[str, dict[str, Any]], binary_columns: list[str] | None = None,
        keep: pa.Table | None = None,
    ) -> None:
        """``keep``: rows of an interrupted recording to start from (``--resume``). They go to a
        new file that replaces ``path`` only once complete and synced: a crash meanwhile leaves
        the old journal as it was."""
        self.path = path
        self.features = features
        self.schema = journal_schema(features, binary_columns)
        fresh = path.with_name(path.name + ".resume") if keep is not None else path
        self._fh: IO[bytes] = fresh.open("wb")
        self._writer = pa.ipc.new_stream(self._fh, self.schema)
        self._columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        self.rows_written = 0
        if keep is not None:
            if keep.num_rows:
                self._writer.write_table(keep.select(self.schema.names).cast(self.schema))
            self.rows_written = keep.num_rows
            self._fh.flush()
            os.fsync(self._fh.fileno())
            os.replace(fresh, path)  # the open file is the journal now

    def append(self, row: dict[str, Any]) -> None:
        for name, values in self._columns.items():
            values.append(row[name])

    @property
    def pending(self) -> int:
        return len(self._columns[TASK_COLUMN])

    def flush(self, upto: int | None = None) -> None:
        """Append the pending rows, or only those with a total index below ``upto`` (rows whose
        video frames are not on disk yet wait for the next flush), then fsync."""
        take = self.pending if upto is None else max(0, min(self.pending, upto - self.rows_written))
        if take:
            arrays = []
            for field in self.schema:
                values = self._columns[field.name][:take]
                if pa.types.is_fixed_size_list(field.type):
                    flat = np.concatenate([np.asarray(v).ravel() for v in values])
                    dtype = field.type.value_type.to_pandas_dtype()
                    arrays.append(pa.FixedSizeListArray.from_arrays(
                        pa.array(flat.astype(dtype, copy=False), type=field.type.value_type),
                        field.type.list_size,
                    ))
                else:  # shape [1] is a plain column in LeRobot (e.g. per-camera values, one camera)
                    scalars = [v.reshape(-1)[0].item() if isinstance(v, np.ndarray) else v for v in values]
                    arrays.append(pa.array(scalars, type=field.type))
            self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
            self.rows_written += take
            for values in self._columns.values():
                del values[:take]
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self.flush()
        self._writer.close()
        self._fh.close()


def read_journal(path: Path) -> tuple[pa.Table | None, bool]:
    """All complete batches of a journal, and whether it ended cleanly (False: torn or cut)."""
    if not path.exists() or path.stat().st_size == 0:
        return None, False
    batches: list[pa.RecordBatch] = []
    clean = True
    with pa.OSFile(str(path), "rb") as source:
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError):
            return None, False
        schema = reader.schema
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, EOFError):
                clean = False  # the batch being written when the process died
                break
    return pa.Table.from_batches(batches, schema=schema), clean
