"""Command-line overrides applied on top of a validated config (still validated, still located)."""

from __future__ import annotations

from typing import Any

from reflex.errors import ConfigError, ConfigIssue
from reflex.recording.formats import KNOWN_FORMATS


def parse_formats(value: str | None, source: str) -> list[str] | None:
    """``--format lerobot,jsonl`` -> list; unknown names are a config error, never a silent no-record."""
    if value is None:
        return None
    names = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [n for n in names if n not in KNOWN_FORMATS]
    if not names or unknown:
        raise ConfigError(
            source,
            [ConfigIssue("--format", f"unknown recording format(s) {unknown or [value]}; "
                         f"expected a comma list of {sorted(KNOWN_FORMATS)}")],
        )
    return names


def apply_record_overrides(config: Any, source: str, formats: list[str] | None) -> Any:
    if formats is None:
        return config
    record = config.record.model_copy(update={"formats": formats})
    return config.model_copy(update={"record": record})
