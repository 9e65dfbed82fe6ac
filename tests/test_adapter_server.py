"""The adapter server speaks the REST contract: readiness, binary outputs, 4xx on bad requests."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from pytest_vdbench.adapter import decode_safetensors, encode_safetensors
from pytest_vdbench.adapter.server import make_server
from pytest_vdbench.protocols.native import AdapterClient, AdapterError
from pytest_vdbench.runtime import Endpoint


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from helpers import ADAPTERS

    monkeypatch.syspath_prepend(str(ADAPTERS))
    servers = []

    def start(entry: str = "toy:ToyVideo", **options: object) -> AdapterClient:
        server = make_server(entry, "127.0.0.1", 0, options)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return AdapterClient(Endpoint("127.0.0.1", server.server_address[1]), timeout=10)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def wait_status(client: AdapterClient, status: int) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        code, body = client.ready()
        if code == status:
            return body
        time.sleep(0.01)
    raise AssertionError(f"readiness never answered {status}")


def raw(
    client: AdapterClient, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", client.endpoint.port, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int64", "bool", "float16"])
def test_codec_matches_the_safetensors_library(dtype: str) -> None:
    array = (np.random.default_rng(0).random((3, 4, 5)) * 100).astype(dtype)
    data = b"".join(bytes(b) for b in encode_safetensors({"output": array}, {"k": "v"}))
    assert np.array_equal(safetensors.numpy.load(data)["output"], array)
    decoded, meta = decode_safetensors(safetensors.numpy.save({"output": array}, metadata={"k": "v"}))
    assert np.array_equal(decoded["output"], array) and meta == {"k": "v"}


def test_codec_rejects_unsupported_dtype() -> None:
    with pytest.raises(TypeError, match="dtype complex128 cannot be sent"):
        encode_safetensors({"output": np.zeros(2, dtype=complex)})


def test_ready_live_metadata_and_binary_generation(serve) -> None:  # type: ignore[no-untyped-def]
    client = serve()
    assert client.live()[0] == 200
    body = wait_status(client, 200)
    assert body["status"] == "ready" and isinstance(body["setup_seconds"], float)
    meta = client.metadata()
    assert meta["adapter"] == "toy:ToyVideo" and meta["libraries"]["numpy"] == np.__version__
    gen = client.generate("a fox", seed=1, params={"frames": 3, "height": 8, "width": 8})
    assert gen.output.shape == (3, 3, 8, 8) and gen.output.dtype == np.float32
    assert 3 * 3 * 8 * 8 * 4 < gen.nbytes < 3 * 3 * 8 * 8 * 4 + 256  # raw float32 bytes plus a small header
    assert gen.server_seconds > 0


def test_loading_is_503_and_load_failure_is_500_with_traceback(serve) -> None:  # type: ignore[no-untyped-def]
    slow = serve(fault="never_ready")
    assert slow.live()[0] == 200  # liveness answers while load() still runs
    assert slow.ready()[0] == 503
    with pytest.raises(AdapterError, match="model is not ready"):
        slow.metadata()
    broken = serve(fault="load_crash")
    body = wait_status(broken, 500)
    assert "RuntimeError: weights file is corrupt" in str(body["error"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 400, "body must be a JSON object"),
        (b'{"prompt": 5}', 400, "prompt must be a string"),
        (b'{"seed": "zero"}', 400, "seed must be an integer or null"),
        (b'{"params": []}', 400, "params must be an object"),
        (b'{"prompt": "x", "sedd": 1}', 400, "unknown fields ['sedd']"),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(serve, body: bytes, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    client = serve()
    wait_status(client, 200)
    code, answer = raw(client, "POST", "/v1/generate", body, {"Content-Type": "application/json"})
    assert code == status and message in str(answer["error"])
    assert client.generate("still here", seed=0, params={"frames": 1}).output.shape[0] == 1


def test_oversized_body_unknown_path_and_model_error(serve) -> None:  # type: ignore[no-untyped-def]
    client = serve(fault="generate_crash")
    wait_status(client, 200)
    code, answer = raw(client, "POST", "/v1/generate", b"x", {"Content-Length": str(10**10)})
    assert code == 413 and "exceeds the limit" in str(answer["error"])
    assert raw(client, "GET", "/nope")[0] == 404
    with pytest.raises(AdapterError, match="illegal memory access") as info:
        client.generate("x", seed=0, params={})
    assert info.value.status == 500 and "Traceback" in (info.value.traceback or "")
    assert client.live()[0] == 200


def test_bad_entry_point_fails_readiness(serve) -> None:  # type: ignore[no-untyped-def]
    body = wait_status(serve("toy:Missing"), 500)
    assert "toy has no class 'Missing'" in str(body["error"])


def test_unix_socket_server_speaks_the_same_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The network: none sandbox: the same HTTP over a Unix socket in a shared directory."""
    from helpers import ADAPTERS
    from pytest_vdbench.adapter.server import make_unix_server

    monkeypatch.syspath_prepend(str(ADAPTERS))
    path = tmp_path / "adapter.sock"
    path.write_text("stale")  # a previous start's leftover must not stop the server
    server = make_unix_server("toy:ToyVideo", str(path), {})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o777
        client = AdapterClient(Endpoint("sandbox", 0, unix_socket=str(path)), timeout=10)
        assert client.live()[0] == 200
        wait_status(client, 200)
        a = client.generate("a fox", seed=1, params={"frames": 2, "height": 4, "width": 4})
        b = client.generate("a fox", seed=1, params={"frames": 2, "height": 4, "width": 4})
        assert a.output.shape[0] == 2 and np.array_equal(a.output, b.output)
        with pytest.raises(AdapterError, match="answered 400: seed must be an integer"):
            client.generate("", seed="x", params={})  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(OSError):  # nothing listens any more: the client says so, it does not hang
        AdapterClient(Endpoint("sandbox", 0, unix_socket=str(path)), timeout=2).live()
