"""Optional API key, checked on every endpoint in constant time.

Accepted forms: ``Authorization: Bearer <key>``, ``Authorization: Api-Key <key>`` (what
openpi-client sends), ``X-Reflex-Key: <key>`` and ``X-API-Key: <key>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from reflex.serve.request import RequestError

KEY_HEADERS = ("X-Reflex-Key", "X-API-Key")
AUTH_SCHEMES = ("bearer", "api-key")


def presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() in AUTH_SCHEMES and value.strip():
            return value.strip()
    for name in KEY_HEADERS:
        header = headers.get(name)
        if header:
            return header.strip()
    return None


def check_key(expected: str | None, headers: Mapping[str, str]) -> None:
    """Raise 401 unless no key is configured or the request presents the right one."""
    if not expected:
        return
    given = presented_key(headers)
    if given is None:
        raise RequestError(
            401, "unauthorized", "this server needs an API key (Authorization: Bearer <key> or X-Reflex-Key)"
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestError(401, "unauthorized", "API key rejected")
