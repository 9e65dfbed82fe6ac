"""HTTP client for the adapter REST contract: JSON endpoints, binary safetensors outputs."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation

__all__ = ["AdapterClient", "AdapterError", "Generation"]


class OversizedOutput(Exception):
    """An answer larger than the caller allows."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: how the harness reaches a ``network: none`` container."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection(endpoint: Endpoint, timeout: float) -> http.client.HTTPConnection:
    """A fresh connection to ``endpoint`` (TCP on loopback, or its Unix socket)."""
    if endpoint.unix_socket is not None:
        return UnixHTTPConnection(endpoint.unix_socket, timeout)
    return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)


class AdapterClient:
    """Talks to one adapter server. Thread-compatible: one connection per request."""

    protocol = "native"
    live_path = "/health/live"
    ready_path = "/health/ready"

    def __init__(self, endpoint: Endpoint, *, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        content_type: str = "application/json",
        max_bytes: int | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        conn = connection(self.endpoint, timeout or self.timeout)
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            if max_bytes is not None:
                # refuse an oversized answer before reading it: it could exhaust the harness's memory
                length = resp.getheader("Content-Length")
                if length is not None and length.isdigit() and int(length) > max_bytes:
                    raise OversizedOutput(f"{method} {path} answered {int(length)} bytes, over the limit of {max_bytes}")
                data = resp.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise OversizedOutput(f"{method} {path} answered more than {max_bytes} bytes")
            else:
                data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def get_json(self, path: str, *, timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        """GET ``path``; returns (status, JSON body); raises OSError when nothing answers."""
        status, _, data = self._request("GET", path, timeout=timeout)
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = {"error": f"non-JSON body: {data[:200]!r}"}
        return status, body if isinstance(body, dict) else {"value": body}

    def ready(self) -> tuple[int, dict[str, Any]]:
        return self.get_json("/health/ready", timeout=5.0)

    def live(self) -> tuple[int, dict[str, Any]]:
        return self.get_json("/health/live", timeout=5.0)

    def _ok_json(self, path: str) -> dict[str, Any]:
        status, body = self.get_json(path)
        if status != 200:
            raise AdapterError(f"GET {path} answered {status}: {body.get('error', body)}", status, body.get("traceback"))
        return body

    def metadata(self) -> dict[str, Any]:
        return self._ok_json("/v1/metadata")

    def requirements(self) -> dict[str, Any]:
        return self._ok_json("/v1/requirements")

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None,
        params: Mapping[str, Any],
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Generation:
        """POST /v1/generate and decode the safetensors ``output`` tensor (refusing over ``max_bytes``)."""
        body = json.dumps({"prompt": prompt, "seed": seed, "params": dict(params)}).encode()
        start = time.perf_counter()
        try:
            status, headers, data = self._request("POST", "/v1/generate", body, timeout=timeout, max_bytes=max_bytes)
        except OversizedOutput as exc:
            raise AdapterError(f"generate output refused: {exc} (expect.max_output_bytes)") from None
        except TimeoutError:
            raise AdapterError(f"generate did not answer within {timeout or self.timeout:g}s (timeouts.generate)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise AdapterError(f"generate failed: connection lost ({exc!r}); did the model crash?") from None
        total = time.perf_counter() - start
        if status != 200:
            raise self._error("POST /v1/generate", status, data)
        try:
            tensors = load_safetensors(data)
        except Exception as exc:
            raise AdapterError(f"generate returned a malformed safetensors body ({len(data)} bytes): {exc}") from None
        if "output" not in tensors:
            raise AdapterError(f"generate returned tensors {sorted(tensors)} without 'output'")
        rss = headers.get("x-vdbench-peak-rss")
        return Generation(
            output=tensors["output"],
            server_seconds=float(headers.get("x-vdbench-seconds", total)),
            total_seconds=total,
            peak_rss_bytes=int(rss) if rss and rss.isdigit() else None,
            nbytes=len(data),
        )

    def fit(
        self,
        table: np.ndarray[Any, Any],
        columns: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> float:
        """POST /v1/fit with the table as safetensors; returns the adapter's fit seconds."""
        meta = {"columns": json.dumps(list(columns)), "params": json.dumps(dict(params))}
        body = save_safetensors({"table": np.ascontiguousarray(table)}, metadata=meta)
        try:
            status, _, data = self._request("POST", "/v1/fit", body, timeout=timeout, content_type="application/octet-stream")
        except TimeoutError:
            raise AdapterError(f"fit did not answer within {timeout or self.timeout:g}s (timeouts.fit)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise AdapterError(f"fit failed: connection lost ({exc!r}); did the model crash?") from None
        if status != 200:
            raise self._error("POST /v1/fit", status, data)
        return float(json.loads(data)["fit_seconds"])

    @staticmethod
    def _error(what: str, status: int, data: bytes) -> AdapterError:
        try:
            body = json.loads(data)
        except ValueError:
            return AdapterError(f"{what} answered {status} with a non-JSON body: {data[:300]!r}", status)
        return AdapterError(f"{what} answered {status}: {body.get('error', body)}", status, body.get("traceback"))
