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

Bad requests get a 4xx JSON ``{"error": ...}`` and the server keeps serving. The HTTP layer
(:mod:`pytest_vdbench.adapter.wire`) bounds connections, threads, time and bytes; ``generate()`` and
``fit()`` run one at a time unless the adapter sets ``thread_safe = True``.

The server listens on TCP (``make_server``) or, for a container started with ``network: none``,
on a Unix socket in a mounted directory (``make_unix_server``): the same HTTP, no network at all.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib
import importlib.util
import json
import mmap
import os
import platform
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional, Tuple, Union

from pytest_vdbench.adapter.base import ModelAdapter
from pytest_vdbench.adapter.codec import decode_safetensors, encode_safetensors
from pytest_vdbench.adapter.wire import HTTPError, Limits, Request, Response, Server, tcp_listener, unix_listener

MAX_JSON_BODY = 1 << 20
MAX_FIT_BODY = 1 << 30
MAX_SCORE_BODY = 1 << 31


class RequestError(Exception):
    """A client mistake: answered with ``status`` and a JSON message; the connection stays usable."""

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


class App:
    """The REST endpoints over :class:`AdapterState`; model errors are 500 with the traceback, client errors 4xx."""

    def __init__(self, state: AdapterState, limits: Limits) -> None:
        self.state = state
        self.limits = limits
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vdbench-adapter")
        self.get_routes: Dict[str, Callable[[Request], Response]] = {
            "/health/live": lambda r: json_response(200, {"status": "alive"}),
            "/health/ready": lambda r: json_response(*self.state.ready()),
            "/v1/metadata": self._metadata,
            "/v1/requirements": lambda r: json_response(200, self.state.require_adapter().get_requirements()),
        }
        self.post_routes: Dict[str, Callable[[Request], Response]] = {
            "/v1/generate": self._generate,
            "/v1/fit": self._fit,
            "/v1/score": self._score,
        }

    def is_model_request(self, request: Request) -> bool:
        """POSTs wait for the model; everything else is answered by the control workers at once."""
        return request.method == "POST"

    def __call__(self, request: Request) -> Response:
        routes = {"GET": self.get_routes, "POST": self.post_routes}.get(request.method)
        try:
            if routes is None:
                raise RequestError(501, f"method {request.method} is not supported; use GET or POST")
            handler = routes.get(request.path)
            if handler is None:
                other = self.post_routes if request.method == "GET" else self.get_routes
                if request.path in other:
                    raise RequestError(405, f"{request.path} answers {'POST' if request.method == 'GET' else 'GET'} only")
                raise RequestError(404, f"no endpoint {request.method} {request.path}")
            return handler(request)
        except RequestError as exc:
            return json_response(exc.status, {"error": str(exc)})
        except HTTPError:
            raise
        except Exception as exc:
            tb = traceback.format_exc()
            sys.stderr.write(f"vdbench adapter: {request.method} {request.path} failed:\n{tb}")
            return json_response(500, {"error": f"{type(exc).__name__}: {exc}", "traceback": tb})

    def _json_body(self, request: Request) -> Dict[str, Any]:
        body = parse_json(request.read_body(MAX_JSON_BODY, self.limits) or b"{}", "body")
        if not isinstance(body, dict):
            raise RequestError(400, f"body must be a JSON object, got {type(body).__name__}")
        return body

    def _run_model(self, adapter: ModelAdapter, call: Callable[[], Any]) -> Any:
        """``call()`` one at a time, on one thread, unless the adapter declares itself thread-safe.

        One thread, not just one at a time: a framework's per-thread state (torch, glibc's malloc
        arenas) would otherwise grow with every pool thread that happens to serve a call, and the
        harness would see it as a leak.
        """
        if getattr(adapter, "thread_safe", False) is True:
            return call()
        with self.state.lock:
            return self._model_thread.submit(call).result()

    def _metadata(self, request: Request) -> Response:
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
            "thread_safe": getattr(adapter, "thread_safe", False) is True,
        }
        return json_response(200, body)

    def _generate(self, request: Request) -> Response:
        body = self._json_body(request)
        unknown = set(body) - {"prompt", "seed", "params"}
        if unknown:
            raise RequestError(400, f"unknown fields {sorted(unknown)}; expected prompt, seed, params")
        prompt = body.get("prompt", "")
        seed = body.get("seed")
        params = body.get("params")
        params = {} if params is None else params
        if not isinstance(prompt, str):
            raise RequestError(400, f"prompt must be a string, got {type(prompt).__name__}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise RequestError(400, f"seed must be an integer or null, got {seed!r}")
        if not isinstance(params, dict):
            raise RequestError(400, f"params must be an object, got {type(params).__name__}")
        _check_reserved(params, ("prompt", "seed"), "the top-level field")
        adapter = self.state.require_adapter()

        def call() -> Any:
            start = time.perf_counter()
            return adapter.generate(prompt, seed=seed, **params), time.perf_counter() - start

        output, seconds = self._run_model(adapter, call)
        buffers = encode_safetensors({"output": output}, {"seconds": repr(seconds)})
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Vdbench-Seconds": repr(seconds),
            "X-Vdbench-Peak-Rss": str(_peak_rss()),
        }
        return Response(200, buffers, headers)

    def _fit(self, request: Request) -> Response:
        with request.spool_body(MAX_FIT_BODY, self.limits) as spool:
            table, columns, params, mapped = _decode_fit_body(spool)
            try:
                adapter = self.state.require_adapter()
                # a temporary partial: the table's view is released as soon as the call returns
                seconds = self._run_model(adapter, functools.partial(_timed_fit, adapter, table, columns, params))
            finally:
                del table
                _close_quietly(mapped)
        return json_response(200, {"fit_seconds": seconds}, {"X-Vdbench-Peak-Rss": str(_peak_rss())})

    def _score(self, request: Request) -> Response:
        from pytest_vdbench.adapter.metric import check_scores

        raw = request.read_body(MAX_SCORE_BODY, self.limits)
        try:
            tensors, meta = decode_safetensors(raw)
            frames = tensors["frames"]
            prompt = meta.get("prompt", "")
            settings = parse_json(meta.get("settings", "{}"), "score metadata 'settings'")
        except RecursionError:
            raise RequestError(400, "score body's safetensors header is nested too deeply") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise RequestError(400, f"score body must be safetensors with a 'frames' tensor: {exc}") from None
        if not isinstance(settings, dict):
            raise RequestError(400, f"settings must be a JSON object, got {type(settings).__name__}")
        adapter = self.state.require_adapter()
        scorer = getattr(adapter, "score", None)
        if not callable(scorer):
            raise RequestError(404, f"{self.state.entry} is not a metric adapter: it has no score()")

        def call() -> Any:
            start = time.perf_counter()
            return check_scores(scorer(frames, prompt, **settings)), time.perf_counter() - start

        scores, seconds = self._run_model(adapter, call)
        return json_response(200, {"scores": scores, "seconds": seconds}, {"X-Vdbench-Peak-Rss": str(_peak_rss())})


def _timed_fit(adapter: ModelAdapter, table: Any, columns: Any, params: Dict[str, Any]) -> float:
    start = time.perf_counter()
    adapter.fit(table, columns, **params)
    return time.perf_counter() - start


def json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


def parse_json(raw: Union[bytes, str], what: str) -> Any:
    """JSON from a client, any failure (nesting past the recursion limit included) a 400 naming ``what``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestError(400, f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"{what} is not valid JSON: {exc}") from None


def _check_reserved(params: Dict[str, Any], reserved: "tuple[str, ...]", where: str) -> None:
    clash = sorted(set(params) & set(reserved))
    if clash:
        raise RequestError(400, f"params must not contain {clash}: {', '.join(clash)} go in {where}")


def _decode_fit_body(spool: Any) -> "tuple[Any, Any, Dict[str, Any], Any]":
    """Map the spooled upload (copy-on-write) and decode it without reading it into memory."""
    size = os.fstat(spool.fileno()).st_size
    mapped: Any = mmap.mmap(spool.fileno(), size, access=mmap.ACCESS_COPY) if size else b""
    try:
        try:
            tensors, meta = decode_safetensors(mapped)
            table = tensors["table"]
        except RecursionError:
            raise RequestError(400, "fit body's safetensors header is nested too deeply") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise RequestError(400, f"fit body must be safetensors with a 'table' tensor: {type(exc).__name__}: {exc}") from None
        columns = parse_json(meta.get("columns", "[]"), "fit metadata 'columns'")
        params = parse_json(meta.get("params", "{}"), "fit metadata 'params'")
        if not isinstance(columns, list):
            raise RequestError(400, f"fit metadata 'columns' must be a JSON list, got {type(columns).__name__}")
        if not isinstance(params, dict):
            raise RequestError(400, f"fit metadata 'params' must be a JSON object, got {type(params).__name__}")
        _check_reserved(params, ("table", "columns"), "the body's tensor and metadata")
    except BaseException:
        tensors, table = {}, None  # release the views before the map closes
        _close_quietly(mapped)
        raise
    del tensors
    return table, columns, params, mapped


def _close_quietly(mapped: Any) -> None:
    close = getattr(mapped, "close", None)
    if close is not None:
        with contextlib.suppress(BufferError):  # the adapter kept a view of the table: the map lives on
            close()


AdapterServer = Server


def _bind(state: AdapterState, listener: Any, limits: Optional[Limits]) -> Server:
    limits = limits or Limits.from_env()
    app = App(state, limits)
    server = Server(listener, app, limits, app.is_model_request)
    server.state = state  # type: ignore[attr-defined]
    threading.Thread(target=state.load, name="vdbench-load", daemon=True).start()
    return server


def make_server(
    entry: str, host: str, port: int, options: Optional[Dict[str, Any]] = None, limits: Optional[Limits] = None
) -> Server:
    """Bind the server and start ``load()`` in the background; call ``serve_forever()`` next."""
    limits = limits or Limits.from_env()
    return _bind(AdapterState(entry, dict(options or {})), tcp_listener(host, port, limits), limits)


def make_unix_server(entry: str, path: str, options: Optional[Dict[str, Any]] = None, limits: Optional[Limits] = None) -> Server:
    """Like :func:`make_server`, listening on the Unix socket ``path`` instead of TCP."""
    limits = limits or Limits.from_env()
    return _bind(AdapterState(entry, dict(options or {})), unix_listener(path, limits), limits)
