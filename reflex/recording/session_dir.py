"""Where a recording goes: ``~/.reflex/recordings/<user>/<session>/`` unless told otherwise."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path


def user_slug(api_key: str | None) -> str:
    """First 16 hex digits of SHA-1 of the API key, or ``anonymous``: never the key itself."""
    if not api_key:
        return "anonymous"
    return hashlib.sha1(api_key.encode()).hexdigest()[:16]


def new_session_id() -> str:
    """Unique per session, also for two sessions of one process within the same second (each
    gets its own default recording directory)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"session_{stamp}_{os.getpid() % 100000:05d}_{secrets.token_hex(2)}"


def recording_dir(explicit: str | None, session_id: str, api_key: str | None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    root = os.environ.get("REFLEX_RECORDINGS_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".reflex" / "recordings"
    return (base / user_slug(api_key) / session_id).resolve()
