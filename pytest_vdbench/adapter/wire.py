"""A bounded HTTP/1.1 server core for the adapter: one selector thread, two small worker pools.

Why not ``http.server``: it spends one thread per connection with no timeouts, so slow or idle
clients exhaust the process. Here one selector thread reads every request's header block under a
total deadline; only complete requests reach a worker. Beyond ``max_connections`` a client gets a
fast ``503`` with ``Retry-After``. Request framing is strict, so a request can never be read as two:
HTTP/0.9, obsolete line folding, ``Transfer-Encoding`` and bodies on ``GET`` are refused and the
connection closed. Standard library only (Python >= 3.8): this module runs inside every image.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import selectors
import socket
import sys
import tempfile
import threading
import time
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Union

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
Body = Union[bytes, List[Any]]  # bytes, or buffers written in order


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"${name}={raw!r} must be a positive finite number")
    return value


class Limits:
    """Every bound the server applies; each can be set with ``$VDBENCH_<NAME>`` (see :meth:`from_env`)."""

    def __init__(
        self,
        max_connections: int = 512,
        workers: int = 8,
        control_workers: int = 2,
        header_timeout: float = 10.0,
        body_timeout: float = 60.0,
        min_body_rate: float = float(1 << 20),
        write_timeout: float = 120.0,
        max_header_bytes: int = 1 << 16,
        retry_after: int = 1,
        linger: float = 2.0,
    ) -> None:
        self.max_connections = max_connections  # open connections; beyond: 503 + Retry-After
        self.workers = workers  # threads for model endpoints (POST)
        self.control_workers = control_workers  # threads for health/metadata (GET): never behind the model
        self.header_timeout = header_timeout  # total seconds from connect (or last answer) to a full header block
        self.body_timeout = body_timeout  # total seconds for a body, plus its size / min_body_rate
        self.min_body_rate = min_body_rate
        self.write_timeout = write_timeout  # per send: a client that stops reading is dropped
        self.max_header_bytes = max_header_bytes
        self.retry_after = retry_after
        self.linger = linger  # seconds to drain a refused request before closing (no RST over the answer)

    @property
    def backlog(self) -> int:
        """The listen backlog: a burst up to the connection cap waits in the kernel, it is not reset."""
        return self.max_connections

    @classmethod
    def from_env(cls) -> "Limits":
        d = cls()
        return cls(
            max_connections=int(_env_number("VDBENCH_MAX_CONNECTIONS", d.max_connections)),
            workers=int(_env_number("VDBENCH_WORKERS", d.workers)),
            header_timeout=_env_number("VDBENCH_HEADER_TIMEOUT", d.header_timeout),
            body_timeout=_env_number("VDBENCH_BODY_TIMEOUT", d.body_timeout),
        )


class HTTPError(Exception):
    """A request the server refuses: answered with ``status`` and a JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class Response:
    """Status, headers and a body (bytes or buffers written in order, e.g. a tensor's memory)."""

    def __init__(self, status: int, body: Body = b"", headers: Optional[Dict[str, str]] = None) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def head(self, keep_alive: bool) -> bytes:
        body = self.body
        size = len(body) if isinstance(body, bytes) else sum(memoryview(b).nbytes for b in body)
        lines = ["HTTP/1.1 %d %s" % (self.status, _REASONS.get(self.status, "Unknown")), "Server: vdbench-adapter"]
        lines += ["%s: %s" % kv for kv in self.headers.items()]
        lines += ["Content-Length: %d" % size, "Connection: %s" % ("keep-alive" if keep_alive else "close")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _as_bytes(body: Body) -> bytes:
    return body if isinstance(body, bytes) else b"".join(bytes(b) for b in body)


def error_response(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> Response:
    import json

    body = json.dumps({"error": message}).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


class Connection:
    """One client socket, the bytes read ahead of the current request, and its deadline."""

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.deadline = deadline
        self.closing = False  # answered and half-closed: drain until EOF or the linger deadline

    def fileno(self) -> int:
        return self.sock.fileno()


class Request:
    """A framed request: method, path, headers (lower-case names) and a body read on demand."""

    def __init__(self, conn: Connection, method: str, target: str, version: Tuple[int, int], headers: Dict[str, str]) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers
        self.length = _content_length(headers)
        self.body_read = not self.length  # no Content-Length: a request without a body (RFC 9112 6.3)
        conn_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.keep_alive = "close" not in conn_tokens and (version >= (1, 1) or "keep-alive" in conn_tokens)

    def _body_deadline(self, limits: Limits) -> float:
        return time.monotonic() + limits.body_timeout + (self.length or 0) / limits.min_body_rate

    def _check_size(self, limit: int) -> int:
        if self.length is None:
            raise HTTPError(411, f"{self.method} {self.path} needs a Content-Length header", close=True)
        if self.length > limit:
            raise HTTPError(413, f"body of {self.length} bytes exceeds the limit of {limit} bytes", close=True)
        if self.headers.get("expect", "").lower() == "100-continue":
            self.conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return self.length

    def _chunks(self, limits: Limits) -> Any:
        """Yield the body in pieces of at most 1 MiB, under one total deadline."""
        remaining = self.length or 0
        deadline = self._body_deadline(limits)
        if self.conn.buf:
            head = bytes(self.conn.buf[:remaining])
            del self.conn.buf[: len(head)]
            remaining -= len(head)
            yield head
        while remaining > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HTTPError(408, f"body not received within {limits.body_timeout:g}s (+1 s per MiB)", close=True)
            self.conn.sock.settimeout(left)
            try:
                piece = self.conn.sock.recv(min(remaining, 1 << 20))
            except socket.timeout:
                continue
            if not piece:
                raise HTTPError(400, f"the client closed the connection with {remaining} body bytes missing", close=True)
            remaining -= len(piece)
            yield piece
        self.body_read = True

    def read_body(self, limit: int, limits: Limits) -> bytes:
        """The whole body (at most ``limit`` bytes), read under the body deadline."""
        self._check_size(limit)
        return b"".join(self._chunks(limits))

    def spool_body(self, limit: int, limits: Limits) -> IO[bytes]:
        """The body streamed into an anonymous temporary file (never all in memory), rewound."""
        self._check_size(limit)
        spool = tempfile.TemporaryFile(prefix="vdbench-upload-")  # noqa: SIM115 - returned open to the caller
        try:
            for piece in self._chunks(limits):
                spool.write(piece)
            spool.flush()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool


def _content_length(headers: Dict[str, str]) -> Optional[int]:
    raw = headers.get("content-length")
    if raw is None:
        return None
    values = {v.strip() for v in raw.split(",")}
    if len(values) != 1:
        raise HTTPError(400, f"conflicting Content-Length values {raw!r}", close=True)
    value = values.pop()
    if not value.isdigit() or len(value) > 18:
        raise HTTPError(400, f"Content-Length {value!r} is not a byte count", close=True)
    return int(value)


def parse_head(conn: Connection, raw: bytes) -> Request:
    """Frame one request from its header block, refusing anything that could be read two ways."""
    lines = re.split(rb"\r?\n", raw)
    parts = lines[0].split(b" ")
    if len(parts) == 2:
        raise HTTPError(400, "HTTP/0.9 requests are not supported; send HTTP/1.1", close=True)
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1].startswith(b"/"):
        raise HTTPError(400, f"malformed request line {lines[0][:200]!r}", close=True)
    version = _VERSION.match(parts[2])
    if version is None:
        raise HTTPError(400, f"malformed HTTP version {parts[2][:40]!r}", close=True)
    major, minor = int(version.group(1)), int(version.group(2))
    if (major, minor) not in ((1, 0), (1, 1)):
        raise HTTPError(505, f"HTTP/{major}.{minor} is not supported; send HTTP/1.1", close=True)
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            raise HTTPError(400, "obsolete header line folding is not accepted", close=True)
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HTTPError(400, f"malformed header line {line[:200]!r}", close=True)
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = headers[key] + ", " + text if key in headers else text
    method = parts[0].decode("latin-1")
    request = Request(conn, method, parts[1].decode("latin-1"), (major, minor), headers)
    if "transfer-encoding" in headers:
        raise HTTPError(501, "Transfer-Encoding request bodies are not supported; send Content-Length", close=True)
    if method in ("GET", "HEAD", "DELETE", "OPTIONS") and request.length:
        raise HTTPError(400, f"a {method} request must not carry a body (Content-Length {request.length})", close=True)
    return request


class _Pool:
    """Fixed daemon threads taking jobs from a queue (daemon: a model call never blocks exit)."""

    def __init__(self, name: str, size: int) -> None:
        self.jobs: "queue.Queue[Optional[Callable[[], None]]]" = queue.Queue()
        self.threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)


App = Callable[[Request], Response]


class Server:
    """Serve ``app`` on a bound listening socket; ``serve_forever``/``shutdown``/``server_close`` as socketserver's."""

    def __init__(self, listener: socket.socket, app: App, limits: Limits, model_request: Callable[[Request], bool]) -> None:
        self.socket = listener
        self.app = app
        self.limits = limits
        self.model_request = model_request
        self.server_address: Any = listener.getsockname()
        listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._parked: "queue.Queue[Connection]" = queue.Queue()
        self._conns: Dict[int, Connection] = {}
        self._open = 0  # accepted and not yet closed, in the selector or in a worker
        self._count_lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._pools = {True: _Pool("vdbench-model", limits.workers), False: _Pool("vdbench-control", limits.control_workers)}
        self._last_refusal_log = 0.0
        self.refused = 0

    # -- the selector thread ------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        self._selector.register(self.socket, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(self._select_timeout(poll_interval)):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._readable(key.data)
                self._adopt_parked()
                self._expire()
        finally:
            self._selector.unregister(self.socket)
            self._selector.unregister(self._wake_r)
            self._stopped.set()

    def _select_timeout(self, poll_interval: float) -> float:
        if not self._conns:
            return poll_interval
        soonest = min(c.deadline for c in self._conns.values())
        return max(0.0, min(poll_interval, soonest - time.monotonic()))

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the listener stays, the client waits in the backlog
                self._log_refusal(f"accept failed: {exc}")
                return
            peer = addr[0] if isinstance(addr, tuple) else "unix"
            conn = Connection(sock, peer, time.monotonic() + self.limits.header_timeout)
            sock.setblocking(False)
            with self._count_lock:
                full = self._open >= self.limits.max_connections
                flood = self._open >= 2 * self.limits.max_connections
                self._open += 1
            if flood:  # refused ones linger too: past twice the cap, drop without an answer
                self._close(conn)
            elif full:
                self.refused += 1
                self._log_refusal(f"{self.limits.max_connections} connections open: answering 503")
                retry = {"Retry-After": str(self.limits.retry_after)}
                self._refuse(conn, error_response(503, "server busy: too many open connections", retry))
            else:
                self._watch(conn)

    def _log_refusal(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_refusal_log > 1.0:  # once a second: a flood must not fill the logs
            self._last_refusal_log = now
            sys.stderr.write(f"vdbench adapter: {text}\n")

    def _watch(self, conn: Connection) -> None:
        self._conns[conn.fileno()] = conn
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        if conn.buf and not conn.closing:  # a pipelined request may already be complete
            self._try_frame(conn)

    def _unwatch(self, conn: Connection) -> None:
        if self._conns.pop(conn.fileno(), None) is not None:
            self._selector.unregister(conn.sock)

    def _readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._unwatch(conn)
            self._close(conn)
        elif not conn.closing:
            conn.buf += data
            self._try_frame(conn)

    def _try_frame(self, conn: Connection) -> None:
        end = _HEADER_END.search(conn.buf)
        if end is None:
            first = conn.buf.split(b"\n", 1)
            if len(first) == 2 and first[0].rstrip(b"\r").count(b" ") == 1:  # HTTP/0.9: no header block follows
                self._refuse(conn, error_response(400, "HTTP/0.9 requests are not supported; send HTTP/1.1"))
            elif len(conn.buf) > self.limits.max_header_bytes:
                self._refuse(conn, error_response(431, f"request head over {self.limits.max_header_bytes} bytes"))
            return
        head = bytes(conn.buf[: end.start()])
        del conn.buf[: end.end()]
        try:
            request = parse_head(conn, head.lstrip(b"\r\n"))
        except HTTPError as exc:
            self._refuse(conn, error_response(exc.status, str(exc)))
            return
        self._unwatch(conn)
        pool = self._pools[self.model_request(request)]
        pool.jobs.put(lambda: self._serve(request))

    def _refuse(self, conn: Connection, response: Response) -> None:
        """Answer from the selector thread (a small answer fits the socket buffer), then linger-close."""
        try:
            conn.sock.send(response.head(False) + _as_bytes(response.body))
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._unwatch(conn)
            self._close(conn)
            return
        conn.closing = True
        conn.buf = bytearray()
        conn.deadline = time.monotonic() + self.limits.linger
        if conn.fileno() not in self._conns:
            self._watch(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if conn.closing or not conn.buf:  # lingered enough, or an idle keep-alive connection
                self._unwatch(conn)
                self._close(conn)
            else:
                self._refuse(conn, error_response(408, f"request head not received within {self.limits.header_timeout:g}s"))

    def _adopt_parked(self) -> None:
        while True:
            try:
                conn = self._parked.get_nowait()
            except queue.Empty:
                return
            self._watch(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- worker threads -----------------------------------------------------------------------
    def _serve(self, request: Request) -> None:
        conn = request.conn
        conn.sock.setblocking(True)
        started = time.monotonic()
        try:
            try:
                response = self.app(request)
                close = not request.keep_alive or not request.body_read
            except HTTPError as exc:
                response, close = error_response(exc.status, str(exc)), exc.close or not request.body_read
            except Exception as exc:  # the app answers its own errors; this is the last line of defence
                response, close = error_response(500, f"{type(exc).__name__}: {exc}"), True
            conn.sock.settimeout(self.limits.write_timeout)
            body = response.body
            if isinstance(body, bytes):
                conn.sock.sendall(response.head(not close) + body)
            else:
                conn.sock.sendall(response.head(not close))
                for buffer in body:
                    conn.sock.sendall(buffer)
            if request.path not in ("/health/live", "/health/ready"):  # polled many times a second
                took = time.monotonic() - started
                sys.stderr.write(f"vdbench adapter: {request.method} {request.path} {response.status} {took:.3f}s\n")
        except OSError:
            self._close(conn)
            return
        self._park(conn, linger=close)

    def _park(self, conn: Connection, linger: bool) -> None:
        """Give the connection back to the selector: for its next request, or to linger-close it."""
        try:
            conn.sock.setblocking(False)
            if linger:
                conn.sock.shutdown(socket.SHUT_WR)
                conn.closing, conn.buf = True, bytearray()
                conn.deadline = time.monotonic() + self.limits.linger
            else:
                conn.deadline = time.monotonic() + self.limits.header_timeout
        except OSError:
            self._close(conn)
            return
        with self._count_lock:
            closed = self._closed
            if not closed:
                self._parked.put(conn)
        if closed:  # server_close() ran while this request was served
            self._close(conn)
        else:
            self._wake()

    def _close(self, conn: Connection) -> None:
        try:
            conn.sock.close()
        finally:
            with self._count_lock:
                self._open -= 1

    @property
    def open_connections(self) -> int:
        return self._open

    # -- lifecycle ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from another thread) and wait until it returned."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listener and every connection; model calls still running finish unobserved."""
        with self._count_lock:
            self._closed = True
        for conn in list(self._conns.values()):
            self._unwatch(conn)
            self._close(conn)
        while not self._parked.empty():
            self._close(self._parked.get_nowait())
        for pool in self._pools.values():
            pool.close()
        self._selector.close()
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()


def tcp_listener(host: str, port: int, limits: Limits) -> socket.socket:
    """A listening TCP socket whose backlog holds a burst up to the connection cap."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=limits.backlog)


def unix_listener(path: str, limits: Limits) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file from an earlier start is replaced)."""
    if os.path.lexists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # the harness may run as another user than the container's: let it connect
        os.chmod(path, 0o777)
        sock.listen(limits.backlog)
    except BaseException:
        sock.close()
        raise
    return sock
