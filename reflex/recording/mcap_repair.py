"""Rewrite an MCAP file whose writer died (no summary, maybe a torn last chunk).

Every complete record before the tear is copied (schemas, channels, messages, metadata,
attachments) into a new file with chunk indexes and a summary, which then opens in Foxglove and
in ``mcap.reader.make_reader`` like any finished file. Like ``mcap recover`` of the Go CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def mcap_is_complete(path: Path) -> bool:
    """True when the file ends with a footer and the closing magic."""
    from mcap.reader import make_reader

    try:
        with path.open("rb") as fh:
            summary = make_reader(fh).get_summary()
        return summary is not None
    except Exception:
        return False


def repair_mcap(path: Path) -> dict[str, Any]:
    from mcap.records import Attachment, Channel, DataEnd, Footer, Header, Message, Metadata, Schema
    from mcap.stream_reader import StreamReader
    from mcap.writer import CompressionType, Writer

    if mcap_is_complete(path):
        return {"status": "complete", "repaired": False}
    tmp = path.with_name(path.name + ".repair")
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    messages = 0
    error = ""
    with path.open("rb") as src, tmp.open("wb") as dst:
        writer: Any = None
        try:
            for record in StreamReader(src, validate_crcs=True).records:
                if isinstance(record, Header):
                    writer = Writer(dst, compression=CompressionType.LZ4)
                    writer.start(profile=record.profile, library=record.library)
                    continue
                if writer is None:
                    break
                if isinstance(record, Schema) and record.id not in schemas:
                    schemas[record.id] = writer.register_schema(record.name, record.encoding, record.data)
                elif isinstance(record, Channel) and record.id not in channels:
                    channels[record.id] = writer.register_channel(
                        record.topic, record.message_encoding, schemas.get(record.schema_id, 0), record.metadata
                    )
                elif isinstance(record, Message) and record.channel_id in channels:
                    writer.add_message(channels[record.channel_id], record.log_time, record.data,
                                       record.publish_time, record.sequence)
                    messages += 1
                elif isinstance(record, Metadata):
                    writer.add_metadata(record.name, dict(record.metadata))
                elif isinstance(record, Attachment):
                    writer.add_attachment(record.create_time, record.log_time, record.name,
                                          record.media_type, record.data)
                elif isinstance(record, (DataEnd, Footer)):
                    break
        except Exception as exc:  # the record torn by the crash, and everything after it
            error = f"{type(exc).__name__}: {exc}"
        if writer is None:
            tmp.unlink(missing_ok=True)
            return {"status": "excluded", "repaired": False, "reason": "no MCAP header: nothing was written"}
        writer.finish()
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)
    return {"status": "repaired", "repaired": True, "messages": messages, "torn": error}
