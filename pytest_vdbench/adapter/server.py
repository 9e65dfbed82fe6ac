"""The adapter HTTP server: the vdbench REST contract over the standard library only.

Endpoints (documented in the README, "Adapter REST contract"):

* ``GET /health/live``: 200 as soon as the process serves.
* ``GET /health/ready``: 200 after ``load()`` finished; 503 while loading; 500 with the traceback
  when ``load()`` raised. The body always carries ``status`` and ``setup_seconds``.
* ``GET /v1/metadata`` and ``GET /v1/requirements``: JSON.
* ``POST /v1/generate``: JSON ``{"prompt", "seed", "params"}`` -> binary safetensors holding the
  tensor ``output``; headers ``X-Vdbench-Seconds`` (compute time) and ``X-Vdbench-Peak-Rss``.
* ``POST /v1/fit``: safetensors body with the tensor ``table`` and metadata ``columns``/``params``
  (JSON strings) -> JSON ``{"fit_seconds"}``.
* ``POST /v1/score`` (metric adapters): safetensors body with the tensor ``frames`` and metadata
  ``prompt`` (string) and ``settings`` (JSON) -> JSON ``{"scores": {name: {value, range,
  direction[, error]}}, "seconds"}``.

Bad requests get a 4xx JSON ``{"error": ...}`` and the server keeps serving.

The server listens on TCP (``make_server``) or, for a container started with ``network: none``,
on a Unix socket in a mounted directory (``make_unix_server``): the same HTTP, no network at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

from pytest_vdbench.adapter.base import ModelAdapter
from pytest_vdbench.adapter.codec import decode_safetensors, encode_safetensors, encoded_size

MAX_JSON_BODY = 1 << 20
MAX_FIT_BODY = 1 << 30
MAX_SCORE_BODY = 1 << 31


class RequestError(Exception):
    """A client mistake: answered with ``status`` and a JSON message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_adapter_class(entry: str) -> type:
    """Import ``module:Class`` or ``path/to/file.py:Class`` (the Cog convention)."""
    target, sep, attr = entry.partition(":")
    if not sep or not target or not attr:
        raise ValueError(f"adapter entry {entry!r} must look like 'module:Class' or 'file.py:Class'")
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(os.path.basename(target)[:-3], target)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise ImportError(f"{target} has no class {attr!r}")
    return cls


def _peak_rss() -> int:
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kib) * 1024
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0


def _library_versions(names: "tuple[str, ...]") -> Dict[str, str]:
    try:
        from importlib import metadata as md
    except ImportError:  # pragma: no cover - Python < 3.8
        return {}
    found: Dict[str, str] = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = "not installed"
    return found


class AdapterState:
    """The adapter, its load outcome and the lock that serialises model calls."""

    def __init__(self, entry: str, options: Dict[str, Any]) -> None:
        self.entry = entry
        self.options = options
        self.adapter: Optional[ModelAdapter] = None
        self.status = "loading"
        self.error: Optional[str] = None
        self.setup_started = time.time()
        self.setup_seconds: Optional[float] = None
        self.lock = threading.Lock()

    def load(self) -> None:
        start = time.perf_counter()
        try:
            cls = load_adapter_class(self.entry)
            adapter = cls(**self.options)
            adapter.load()
        except BaseException:
            self.error = traceback.format_exc()
            self.status = "failed"
            sys.stderr.write(f"vdbench adapter: load() of {self.entry} failed:\n{self.error}")
        else:
            self.adapter = adapter
            self.status = "ready"
        finally:
            self.setup_seconds = time.perf_counter() - start
            sys.stderr.write(f"vdbench adapter: {self.status} after {self.setup_seconds:.2f}s\n")
            sys.stderr.flush()

    def ready(self) -> Tuple[int, Dict[str, Any]]:
        body: Dict[str, Any] = {"status": self.status, "setup_seconds": self.setup_seconds}
        if self.status == "failed":
            body["error"] = self.error
            return 500, body
        if self.status != "ready":
            return 503, body
        assert self.adapter is not None
        try:
            healthy = bool(self.adapter.health_check())
        except Exception:
            healthy, body["error"] = False, traceback.format_exc()
        if not healthy:
            body["status"] = "unhealthy"
            return 503, body
        return 200, body

    def require_adapter(self) -> ModelAdapter:
        if self.adapter is None:
            raise RequestError(503, f"model is not ready (status: {self.status})")
        return self.adapter


class Handler(BaseHTTPRequestHandler):
    """One request; model errors become 500 with the traceback, client errors 4xx."""

    server_version = "vdbench-adapter"
    protocol_version = "HTTP/1.1"
    state: AdapterState

    def address_string(self) -> str:
        # a Unix-socket peer has no (host, port) address
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        if self.path.startswith("/health/"):
            return  # readiness is polled many times a second during startup: keep the logs readable
        sys.stderr.write("vdbench adapter: %s\n" % (format % args))

    def _send_json(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "Content-Length is required")
        try:
            size = int(length)
        except ValueError:
            raise RequestError(400, f"Content-Length {length!r} is not a number") from None
        if size < 0:
            raise RequestError(400, f"Content-Length {size} is negative")
        if size > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise RequestError(413, f"body of {size} bytes exceeds the limit of {limit} bytes")
        return self.rfile.read(size)

    def _json_body(self) -> Dict[str, Any]:
        try:
            body = json.loads(self._body(MAX_JSON_BODY) or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(400, f"body must be a JSON object, got {type(body).__name__}")
        return body

    def _dispatch(self, routes: Dict[str, Any]) -> None:
        path = self.path.split("?", 1)[0]
        handler = routes.get(path)
        try:
            if handler is None:
                raise RequestError(404, f"no endpoint {self.command} {path}")
            handler()
        except RequestError as exc:
            self._send_json(exc.status, {"error": str(exc)})
        except Exception as exc:
            tb = traceback.format_exc()
            sys.stderr.write(f"vdbench adapter: {self.command} {path} failed:\n{tb}")
            self._send_json(500, {"error": f"{type(exc).__name__}: {exc}", "traceback": tb})

    def do_GET(self) -> None:
        self._dispatch(
            {
                "/health/live": lambda: self._send_json(200, {"status": "alive"}),
                "/health/ready": lambda: self._send_json(*self.state.ready()),
                "/v1/metadata": self._metadata,
                "/v1/requirements": lambda: self._send_json(200, self.state.require_adapter().get_requirements()),
            }
        )

    def do_POST(self) -> None:
        self._dispatch({"/v1/generate": self._generate, "/v1/fit": self._fit, "/v1/score": self._score})

    def _metadata(self) -> None:
        adapter = self.state.require_adapter()
        from pytest_vdbench.adapter import SDK_VERSION

        body = {
            "adapter": self.state.entry,
            "sdk_version": SDK_VERSION,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "libraries": _library_versions(tuple(adapter.libraries)),
            "setup_seconds": self.state.setup_seconds,
            "model": dict(adapter.metadata()),
        }
        self._send_json(200, body)

    def _generate(self) -> None:
        request = self._json_body()
        unknown = set(request) - {"prompt", "seed", "params"}
        if unknown:
            raise RequestError(400, f"unknown fields {sorted(unknown)}; expected prompt, seed, params")
        prompt = request.get("prompt", "")
        seed = request.get("seed")
        params = request.get("params")
        params = {} if params is None else params
        if not isinstance(prompt, str):
            raise RequestError(400, f"prompt must be a string, got {type(prompt).__name__}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise RequestError(400, f"seed must be an integer or null, got {seed!r}")
        if not isinstance(params, dict):
            raise RequestError(400, f"params must be an object, got {type(params).__name__}")
        adapter = self.state.require_adapter()
        with self.state.lock:
            start = time.perf_counter()
            output = adapter.generate(prompt, seed=seed, **params)
            seconds = time.perf_counter() - start
        buffers = encode_safetensors({"output": output}, {"seconds": repr(seconds)})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(encoded_size(buffers)))
        self.send_header("X-Vdbench-Seconds", repr(seconds))
        self.send_header("X-Vdbench-Peak-Rss", str(_peak_rss()))
        self.end_headers()
        for buffer in buffers:
            self.wfile.write(buffer)

    def _fit(self) -> None:
        raw = self._body(MAX_FIT_BODY)
        try:
            tensors, meta = decode_safetensors(raw)
            table = tensors["table"]
            columns = json.loads(meta.get("columns", "[]"))
            params = json.loads(meta.get("params", "{}"))
        except (ValueError, KeyError) as exc:
            raise RequestError(400, f"fit body must be safetensors with a 'table' tensor: {exc}") from None
        adapter = self.state.require_adapter()
        with self.state.lock:
            start = time.perf_counter()
            adapter.fit(table, columns, **params)
            seconds = time.perf_counter() - start
        self._send_json(200, {"fit_seconds": seconds}, {"X-Vdbench-Peak-Rss": str(_peak_rss())})

    def _score(self) -> None:
        from pytest_vdbench.adapter.metric import check_scores

        raw = self._body(MAX_SCORE_BODY)
        try:
            tensors, meta = decode_safetensors(raw)
            frames = tensors["frames"]
            prompt = meta.get("prompt", "")
            settings = json.loads(meta.get("settings", "{}"))
        except (ValueError, KeyError) as exc:
            raise RequestError(400, f"score body must be safetensors with a 'frames' tensor: {exc}") from None
        if not isinstance(settings, dict):
            raise RequestError(400, f"settings must be a JSON object, got {type(settings).__name__}")
        adapter = self.state.require_adapter()
        scorer = getattr(adapter, "score", None)
        if not callable(scorer):
            raise RequestError(404, f"{self.state.entry} is not a metric adapter: it has no score()")
        with self.state.lock:
            start = time.perf_counter()
            scores = check_scores(scorer(frames, prompt, **settings))
            seconds = time.perf_counter() - start
        self._send_json(200, {"scores": scores, "seconds": seconds}, {"X-Vdbench-Peak-Rss": str(_peak_rss())})


def make_server(entry: str, host: str, port: int, options: Optional[Dict[str, Any]] = None) -> ThreadingHTTPServer:
    """Bind the server and start ``load()`` in the background; call ``serve_forever()`` next."""
    state = AdapterState(entry, dict(options or {}))
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=state.load, name="vdbench-load", daemon=True).start()
    return server


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """HTTP over a Unix socket (the ``network: none`` sandbox): one thread per request."""

    daemon_threads = True

    def server_bind(self) -> None:
        path = str(self.server_address)
        if os.path.exists(path):  # a stale socket from a previous start of the same container
            os.unlink(path)
        socketserver.UnixStreamServer.server_bind(self)
        # the harness may run as another user than the container's: let it connect
        os.chmod(path, 0o777)


def make_unix_server(entry: str, path: str, options: Optional[Dict[str, Any]] = None) -> UnixHTTPServer:
    """Like :func:`make_server`, listening on the Unix socket ``path`` instead of TCP."""
    state = AdapterState(entry, dict(options or {}))
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = UnixHTTPServer(path, handler)
    threading.Thread(target=state.load, name="vdbench-load", daemon=True).start()
    return server
