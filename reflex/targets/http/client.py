"""A persistent HTTP/1.1 connection (stdlib only): one TCP connection reused for every request."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from reflex.wire.remote_client import TransportFailure

_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, socket.timeout)


class HttpSession:
    def __init__(self, url: str, headers: dict[str, str], timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url '{url}': expected http://host:port or https://host:port")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.headers = headers
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout_s)
            try:
                conn.connect()
            except _TRANSPORT_ERRORS as exc:
                raise TransportFailure(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        """``(status, content type, body)``; connection problems raise TransportFailure."""
        conn = self._connection()
        try:
            conn.request(method, self.base_path + path, body=body, headers={**self.headers, **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
        except _TRANSPORT_ERRORS as exc:
            self.close()  # a half-used connection cannot carry the next request
            raise TransportFailure(f"{method} {path} to {self.host}:{self.port} failed: {exc!r}") from exc
        if resp.will_close:
            self.close()
        return resp.status, resp.getheader("Content-Type", "") or "", data

    def get_json(self, path: str) -> tuple[int, Any]:
        status, _ctype, data = self.request("GET", path, headers={"Accept": "application/json"})
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
