"""HTTP transport: one persistent HTTP/1.1 connection (stdlib ``http.client``), replies size-capped."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from reflex.targets.remote.ports import Reply, Request
from reflex.wire.remote_client import ResponseTooLarge, TransportFailure

_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, socket.timeout)
READ_PIECE = 1 << 20


class HttpSession:
    """One keep-alive connection to ``url`` (``http://`` or ``https://``)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        timeout_s: float,
        max_response_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url '{url}': expected http://host:port or https://host:port")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.headers = headers
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None

    def connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn: http.client.HTTPConnection
            if self.scheme == "https":
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=self.ssl_context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                conn.connect()
            except _TRANSPORT_ERRORS as exc:
                raise TransportFailure(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Reply:
        """One request; connection problems raise TransportFailure, a reply over the cap ResponseTooLarge."""
        conn = self.connection()
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s or self.timeout_s)
        where = f"{method} {path} to {self.host}:{self.port}"
        try:
            conn.request(method, self.base_path + path, body=body, headers={**self.headers, **(headers or {})})
            resp = conn.getresponse()
            data = self._read_capped(resp, where)
        except _TRANSPORT_ERRORS as exc:
            self.close()  # a half-used connection cannot carry the next request
            raise TransportFailure(f"{where} failed: {exc!r}") from exc
        except ResponseTooLarge:
            self.close()  # the rest of the reply is never read
            raise
        if resp.will_close:
            self.close()
        return Reply(resp.status, resp.getheader("Content-Type", "") or "", data)

    def _read_capped(self, resp: http.client.HTTPResponse, where: str) -> bytes:
        cap = self.max_response_bytes
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise ResponseTooLarge(f"{where}: reply of {int(length)} bytes is over max_response_mb ({cap} bytes)")
        pieces: list[bytes] = []
        size = 0
        while True:
            piece = resp.read(min(READ_PIECE, cap + 1 - size))
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)
            size += len(piece)
            if size > cap:
                raise ResponseTooLarge(f"{where}: reply over max_response_mb ({cap} bytes), stopped reading")

    def get_json(self, path: str) -> tuple[int, Any]:
        reply = self.request("GET", path, headers={"Accept": "application/json"})
        try:
            return reply.status, json.loads(bytes(reply.body)) if reply.body else None
        except ValueError:
            return reply.status, bytes(reply.body).decode(errors="replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class HttpTransport:
    """POST each request to ``act_path``; the greeting is ``GET health_path`` (or just a connection)."""

    name = "http"

    def __init__(self, session: HttpSession, url: str, act_path: str, health_path: str | None) -> None:
        self.session = session
        self.url = url
        self.act_path = act_path
        self.health_path = health_path

    def open(self) -> Reply | None:
        if self.health_path is None:
            self.session.connection()
            return None
        return self.session.request("GET", self.health_path, headers={"Accept": "application/json"})

    def exchange(self, request: Request, timeout_s: float) -> Reply:
        body = b"".join(request.parts)
        headers = {"Content-Type": request.content_type, "Accept": request.content_type}
        return self.session.request("POST", self.act_path, body, headers, timeout_s)

    def close(self) -> None:
        self.session.close()
