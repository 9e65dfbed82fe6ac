"""One HTTP request to 127.0.0.1 with the harness's error wording (shared by the JSON protocols)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any

from pytest_vdbench.endpoint import AdapterError, Endpoint

#: a JSON protocol sends numbers as text and files as base64: its answer may be this many times the
#: tensor's size before it is decoded (the decoded tensor is then held to the limit itself)
WIRE_FACTOR = 8
WIRE_SLACK = 1 << 16


class Http:
    """JSON over one connection per request, like the native client."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send ``body`` as JSON; raises OSError/TimeoutError/HTTPException as http.client does."""
        conn = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=timeout or self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            if max_bytes is None:
                data = resp.read()
            else:
                length = resp.getheader("Content-Length")
                if length is not None and length.isdigit() and int(length) > max_bytes:
                    raise AdapterError(
                        f"generate output refused: {method} {path} answered {int(length)} bytes, over the limit of "
                        f"{max_bytes} (expect.max_output_bytes x {WIRE_FACTOR} for a JSON protocol)"
                    )
                data = resp.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise AdapterError(
                        f"generate output refused: {method} {path} answered more than {max_bytes} bytes "
                        f"(expect.max_output_bytes x {WIRE_FACTOR} for a JSON protocol)"
                    )
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def call(
        self, what: str, method: str, path: str, body: Any = None, *, timeout: float | None = None, max_bytes: int | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """``request`` with lost connections and timeouts worded as the native client words them."""
        try:
            return self.request(method, path, body, timeout=timeout, max_bytes=max_bytes)
        except TimeoutError:
            limit = "timeouts.generate" if what == "generate" else "the client timeout"
            raise AdapterError(f"{what} did not answer within {timeout or self.timeout:g}s ({limit})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise AdapterError(f"{what} failed: connection lost ({exc!r}); did the model crash?") from None

    def get_json(self, path: str, *, timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        """GET ``path``; (status, JSON object, or {} for an empty body); OSError when nothing answers."""
        status, _, data = self.request("GET", path, timeout=timeout)
        return status, parse_object(data)


def parse_object(data: bytes) -> dict[str, Any]:
    """A JSON object from ``data`` ({} when empty; the text under 'error' when it is not JSON)."""
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except ValueError:
        return {"error": data.decode(errors="replace")}
    return body if isinstance(body, dict) else {"value": body}
