"""The one HTTP transport every protocol client uses (native, cog, oip), TCP or Unix socket.

The model server is untrusted. Every exchange has a byte limit (``JSON_LIMIT`` for JSON endpoints,
the output limit for tensors) and one total deadline for connect + request + head + body, not a
timeout per read: a server dripping one byte every two seconds is cut at the deadline. A body with
a ``Content-Length`` is read into one buffer of exactly that size (the output limit costs its size
in memory, not twice). Malformed status lines, headers, framing and JSON become one
:class:`AdapterError` that quotes what the server sent; the wording of every failure lives here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_vdbench.endpoint import AdapterError, Endpoint

#: a JSON protocol sends numbers as text and files as base64: its answer may be this many times the
#: tensor's size before it is decoded (the decoded tensor is then held to the limit itself)
WIRE_FACTOR = 8
WIRE_SLACK = 1 << 16
#: the most a JSON endpoint (health, metadata, requirements, fit, any error answer) may send
JSON_LIMIT = 1 << 20
HEAD_LIMIT = 1 << 16
_STATUS = re.compile(rb"^HTTP/1\.[01] ([1-5]\d\d)(?: [\x20-\x7e\x80-\xff]*)?$")
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class Oversized(AdapterError):
    """The answer is larger than the caller allows (refused before or while it is read)."""


class Malformed(AdapterError):
    """The server broke HTTP or JSON; the message quotes what it sent."""


class Deadline(TimeoutError):
    """The exchange did not finish within its total deadline."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytearray
    seconds: float  # the client's round trip: connect to last byte


def _quote(raw: bytes | bytearray, limit: int = 200) -> str:
    text = repr(bytes(raw[:limit]))
    return text + (f" ... ({len(raw)} bytes)" if len(raw) > limit else "")


class _Conn:
    """One socket under one total deadline."""

    def __init__(self, endpoint: Endpoint, deadline: float, limit_s: float, what: str) -> None:
        self.deadline, self.limit_s, self.what = deadline, limit_s, what
        self.sock = _connect(endpoint, self._left())
        self.pending = bytearray()

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Deadline(f"{self.what} did not answer within {self.limit_s:g}s")
        return left

    def send(self, data: bytes | memoryview) -> None:
        self.sock.settimeout(self._left())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise Deadline(f"{self.what} did not take the request within {self.limit_s:g}s") from None

    def recv_into(self, view: memoryview) -> int:
        self.sock.settimeout(self._left())
        try:
            return self.sock.recv_into(view)
        except TimeoutError:
            raise Deadline(f"{self.what} did not answer within {self.limit_s:g}s") from None

    def recv(self, size: int = 65536) -> bytes:
        if self.pending:
            data, self.pending = bytes(self.pending[:size]), self.pending[size:]
            return data
        buf = bytearray(size)
        got = self.recv_into(memoryview(buf))
        return bytes(buf[:got])

    def close(self) -> None:
        self.sock.close()


def verify_socket(path: str, owner: int | None) -> None:
    """Refuse a socket path that is a symlink, not a socket, or (``owner`` given) owned by someone else."""
    info = os.lstat(path)  # FileNotFoundError while the server has not bound it yet: an OSError, "not listening"
    if stat.S_ISLNK(info.st_mode):
        raise Malformed(f"{path} is a symlink, not the adapter's socket: refusing to connect (the sandbox was tampered with)")
    if not stat.S_ISSOCK(info.st_mode):
        raise Malformed(f"{path} is not a socket (mode {stat.filemode(info.st_mode)}): refusing to connect")
    if owner is not None and info.st_uid != owner:
        raise Malformed(f"{path} is owned by uid {info.st_uid}, not the container user {owner}: refusing to connect")


def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    if endpoint.unix_socket is None:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    verify_socket(endpoint.unix_socket, endpoint.socket_owner)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        # O_NOFOLLOW does not exist for connect(): the check above and this call are close enough in
        # time, and the directory is not writable by the container after the socket is bound
        sock.connect(endpoint.unix_socket)
    except OSError:
        sock.close()
        raise
    return sock


def _read_head(conn: _Conn) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names); informational 1xx answers are skipped."""
    while True:
        buf = bytearray()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > HEAD_LIMIT:
                raise Malformed(f"{conn.what}: the answer's head exceeds {HEAD_LIMIT} bytes: {_quote(buf)}")
            piece = conn.recv()
            if not piece:
                if not buf:
                    raise ConnectionError(f"{conn.what}: the server closed the connection without answering")
                raise Malformed(f"{conn.what}: the server closed the connection inside the answer's head: {_quote(buf)}")
            buf += piece
        conn.pending = buf[end + 4 :] + conn.pending
        status, headers = _parse_head(bytes(buf[:end]), conn.what)
        if status >= 200:
            return status, headers


def _parse_head(raw: bytes, what: str) -> tuple[int, dict[str, str]]:
    lines = raw.split(b"\r\n")
    match = _STATUS.match(lines[0])
    if match is None:
        raise Malformed(f"{what}: the server answered a malformed status line {_quote(lines[0])}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name) or b"\n" in value or b"\r" in value:
            raise Malformed(f"{what}: the server sent a malformed header line {_quote(line)}")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(match.group(1)), headers


def _content_length(headers: Mapping[str, str], what: str) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    values = {v.strip() for v in raw.split(",")}
    value = values.pop()
    if values or not value.isdigit() or len(value) > 18:
        raise Malformed(f"{what}: the server sent an invalid Content-Length {raw[:100]!r}")
    return int(value)


def _read_exact(conn: _Conn, size: int) -> bytearray:
    """``size`` bytes into one preallocated buffer (the memory the answer costs is its size)."""
    body = bytearray(size)
    view = memoryview(body)
    got = min(size, len(conn.pending))
    view[:got] = conn.pending[:got]
    conn.pending = conn.pending[got:]
    while got < size:
        n = conn.recv_into(view[got : got + (1 << 22)])
        if n == 0:
            raise Malformed(f"{conn.what}: the server closed the connection after {got} of {size} body bytes")
        got += n
    return body


def _read_chunked(conn: _Conn, limit: int, over: str) -> bytearray:
    body = bytearray()
    while True:
        line = _read_line(conn)
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
            raise Malformed(f"{conn.what}: the server sent a malformed chunk size line {_quote(line)}")
        size = int(size_text, 16)
        if size == 0:
            while _read_line(conn):  # trailers, bounded by _read_line
                pass
            return body
        if len(body) + size > limit:
            raise Oversized(f"{over}: its chunked body passed {limit} bytes")
        body += _read_exact(conn, size)
        if _read_line(conn):
            raise Malformed(f"{conn.what}: a chunk of the answer is not followed by CRLF")


def _read_line(conn: _Conn) -> bytes:
    buf = bytearray()
    while b"\r\n" not in buf:
        if len(buf) > 4096:
            raise Malformed(f"{conn.what}: a chunked framing line exceeds 4096 bytes: {_quote(buf)}")
        piece = conn.recv(4096)
        if not piece:
            raise Malformed(f"{conn.what}: the server closed the connection inside a chunked body")
        buf += piece
    end = buf.find(b"\r\n")
    conn.pending = buf[end + 2 :] + conn.pending
    return bytes(buf[:end])


def _read_to_close(conn: _Conn, limit: int, over: str) -> bytearray:
    body = bytearray()
    while True:
        piece = conn.recv(1 << 20)
        if not piece:
            return body
        body += piece
        if len(body) > limit:
            raise Oversized(f"{over}: more than {limit} bytes")


def exchange(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    timeout: float,
    max_bytes: int = JSON_LIMIT,
    content_type: str = "application/json",
    what: str | None = None,
) -> Answer:
    """One request under one total deadline; a 2xx body up to ``max_bytes``, any other up to JSON_LIMIT.

    Raises :class:`Deadline` (a TimeoutError), OSError when nothing listens or the connection is
    lost, :class:`Malformed` and :class:`Oversized` (AdapterErrors) for what the server sent.
    """
    what = what or f"{method} {path}"
    started = time.monotonic()
    conn = _Conn(endpoint, started + timeout, timeout, what)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {endpoint.host}\r\nConnection: close\r\nAccept-Encoding: identity\r\n"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        conn.send(head.encode("latin-1") + b"\r\n" + (body if body is not None and len(body) < 65536 else b""))
        if body is not None and len(body) >= 65536:
            conn.send(memoryview(body))
        status, headers = _read_head(conn)
        limit = max_bytes if 200 <= status < 300 else JSON_LIMIT
        over = f"{what} answered {status}, over the limit of {limit} bytes"
        length = _content_length(headers, what)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            data = _read_chunked(conn, limit, over)
        elif length is not None:
            if length > limit:
                raise Oversized(f"{what} answered {status} with {length} bytes, over the limit of {limit}")
            data = _read_exact(conn, length)
        else:
            data = _read_to_close(conn, limit, over)
        return Answer(status, headers, data, time.monotonic() - started)
    finally:
        conn.close()


def parse_json(data: bytes | bytearray, what: str) -> Any:
    """JSON from the server, or :class:`Malformed` quoting it (deep nesting and bad UTF-8 included)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise Malformed(f"{what}: the JSON answer is nested too deeply: {_quote(data)}") from None
    except ValueError as exc:
        raise Malformed(f"{what}: the answer is not valid JSON ({exc}): {_quote(data)}") from None


def parse_object(data: bytes | bytearray) -> dict[str, Any]:
    """A JSON object from ``data`` ({} when empty; the text under 'error' when it is not JSON)."""
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return {"error": bytes(data[:2000]).decode(errors="replace")}
    return body if isinstance(body, dict) else {"value": body}


class Http:
    """The transport bound to one endpoint, with the harness's error wording (one connection per request)."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> tuple[int, Mapping[str, str], bytearray]:
        """Send ``raw`` bytes, or ``body`` as JSON; raises as :func:`exchange` does."""
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        answer = self.answer(method, path, payload, content_type=content_type, timeout=timeout, max_bytes=max_bytes)
        return answer.status, answer.headers, answer.body

    def answer(
        self,
        method: str,
        path: str,
        payload: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Answer:
        return exchange(
            self.endpoint,
            method,
            path,
            payload,
            timeout=timeout or self.timeout,
            max_bytes=JSON_LIMIT if max_bytes is None else max_bytes,
            content_type=content_type,
        )

    def call(
        self,
        what: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        max_bytes: int | None = None,
        limit_name: str | None = None,
    ) -> tuple[int, Mapping[str, str], bytearray]:
        """``request`` with every failure worded for the test report (an :class:`AdapterError`)."""
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        answer = self.answer_or_error(
            what, method, path, payload, content_type=content_type, timeout=timeout, max_bytes=max_bytes, limit_name=limit_name
        )
        return answer.status, answer.headers, answer.body

    def answer_or_error(
        self,
        what: str,
        method: str,
        path: str,
        payload: bytes | None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
        max_bytes: int | None = None,
        limit_name: str | None = None,
    ) -> Answer:
        """:meth:`answer` (the round trip included) with every failure worded as :meth:`call` words it."""
        try:
            return self.answer(method, path, payload, content_type=content_type, timeout=timeout, max_bytes=max_bytes)
        except Exception as exc:
            raise self._worded(exc, what, timeout, limit_name) from None

    def _worded(self, exc: Exception, what: str, timeout: float | None, limit_name: str | None) -> Exception:
        if isinstance(exc, Oversized):
            return AdapterError(f"{what} output refused: {exc} (expect.max_output_bytes)")
        if isinstance(exc, AdapterError):
            return exc
        if isinstance(exc, TimeoutError):
            limit = limit_name or ("timeouts.generate" if what == "generate" else "the client timeout")
            return AdapterError(f"{what} did not answer within {timeout or self.timeout:g}s ({limit})")
        if isinstance(exc, OSError):
            return AdapterError(f"{what} failed: connection lost ({exc!r}); did the model crash?")
        return exc

    def get_json(self, path: str, *, timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        """GET ``path``; (status, JSON object, or {} for an empty body); OSError when nothing answers.

        A malformed answer is returned as status 502 with the quote under ``error``, so readiness
        polling reports it instead of crashing.
        """
        try:
            status, _, data = self.request("GET", path, timeout=timeout)
        except (Malformed, Oversized) as exc:
            return 502, {"status": "malformed answer", "error": str(exc)}
        return status, parse_object(data)
