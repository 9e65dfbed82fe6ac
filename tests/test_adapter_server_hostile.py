"""The adapter server against hostile clients: slow, flooding, malformed and desynchronising requests.

Each test is one finding of issue #17 that the ``http.server`` based server failed: no deadlines,
a thread per connection, 500 on deep JSON or reserved params, a GET body read as a second request,
HTTP/0.9 waiting forever.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from conftest import ADAPTERS
from pytest_vdbench.adapter.server import make_server
from pytest_vdbench.adapter.wire import Limits, Server

FAST = Limits(max_connections=8, workers=4, header_timeout=0.5, body_timeout=0.5, linger=0.5)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Server]]:
    monkeypatch.syspath_prepend(str(ADAPTERS))
    started: list[tuple[Server, threading.Thread]] = []

    def start(entry: str = "toy:ToyVideo", limits: Limits | None = None, **options: object) -> Server:
        server = make_server(entry, "127.0.0.1", 0, options, limits=limits or FAST)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 10
        while server.state.status == "loading":  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "load() never finished"
            time.sleep(0.005)
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(server.server_address[:2], timeout=10)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (each read waits 10 s at most)."""
    chunks = []
    while True:
        piece = sock.recv(65536)
        if not piece:
            return b"".join(chunks)
        chunks.append(piece)


def exchange(server: Server, raw: bytes) -> bytes:
    """Send ``raw`` and read the whole answer."""
    with connect(server) as sock:
        sock.sendall(raw)
        return until_closed(sock)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_a_slow_header_is_cut_at_the_header_deadline(serve: Callable[..., Server]) -> None:
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        answer = until_closed(sock)
    assert status_of(answer) == 408 and b"not received within 0.5s" in answer
    assert time.monotonic() - started < 5


def test_a_slow_body_is_cut_at_the_body_deadline(serve: Callable[..., Server]) -> None:
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/generate HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        answer = until_closed(sock)
    assert status_of(answer) == 408 and b"body not received" in answer


def test_idle_connections_hold_no_thread_and_health_still_answers(serve: Callable[..., Server]) -> None:
    server = serve(limits=Limits(max_connections=100, workers=2, header_timeout=30))
    before = threading.active_count()
    idle = [connect(server) for _ in range(40)]
    try:
        for sock in idle:
            sock.sendall(b"GET /health/live HTTP/1.1\r\n")  # never finished
        answer = exchange(server, get("/health/live"))
        assert status_of(answer) == 200
        assert threading.active_count() <= before  # http.server: one more thread per connection
    finally:
        for sock in idle:
            sock.close()


def test_past_the_connection_cap_a_fast_503_with_retry_after(serve: Callable[..., Server]) -> None:
    server = serve()
    held = [connect(server) for _ in range(FAST.max_connections)]
    try:
        for sock in held:
            sock.sendall(b"G")  # accepted and counted: the server has read from each
        deadline = time.monotonic() + 10
        while server.open_connections < FAST.max_connections:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        answer = exchange(server, get("/health/live"))
        assert status_of(answer) == 503 and b"Retry-After: 1" in answer and b"too many open connections" in answer
    finally:
        for sock in held:
            sock.close()


def test_the_listen_backlog_holds_a_burst_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody accepts yet (serve_forever not called): a burst waits in the kernel's queue, none is dropped."""
    monkeypatch.syspath_prepend(str(ADAPTERS))
    server = make_server("toy:ToyVideo", "127.0.0.1", 0, {}, limits=Limits(max_connections=64))
    socks: list[socket.socket] = []
    try:
        for _ in range(48):  # http.server's backlog of 5 drops the SYN of the 7th: connect() times out
            socks.append(socket.create_connection(server.server_address[:2], timeout=3))
    finally:
        for sock in socks:
            sock.close()
        server.server_close()


def test_deeply_nested_json_is_a_400(serve: Callable[..., Server]) -> None:
    server = serve()
    body = b'{"params": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    answer = exchange(server, post("/v1/generate", body))
    assert status_of(answer) == 400 and b"nested too deeply" in answer


@pytest.mark.parametrize("name", ["seed", "prompt"])
def test_reserved_names_in_params_are_a_400(serve: Callable[..., Server], name: str) -> None:
    server = serve()
    answer = exchange(server, post("/v1/generate", json.dumps({"seed": 1, "params": {name: 2}}).encode()))
    assert status_of(answer) == 400 and f"params must not contain ['{name}']".encode() in answer


def test_a_get_with_a_body_is_refused_not_read_as_a_second_request(serve: Callable[..., Server]) -> None:
    server = serve()
    smuggled = b"GET /v1/metadata HTTP/1.1\r\nHost: x\r\n\r\n"
    head = f"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
    answer = exchange(server, head + smuggled)
    assert answer.count(b"HTTP/1.1 ") == 1 and status_of(answer) == 400 and b"must not carry a body" in answer


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"POST /v1/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, b"Transfer-Encoding"),
        (b"POST /v1/generate HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, b"conflicting Content-Length"),
        (b"POST /v1/generate HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, b"is not a byte count"),
        (b"GET /health/live HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400, b"line folding"),
        (b"GET /health/live HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, b"malformed header line"),
        (b"GET /health/live HTTP/2.0\r\n\r\n", 505, b"HTTP/2.0 is not supported"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, b"malformed request line"),
    ],
    ids=["chunked", "two-lengths", "negative-length", "folding", "space-in-name", "http2", "tls-hello"],
)
def test_ambiguous_framing_is_refused_and_closed(serve: Callable[..., Server], raw: bytes, status: int, message: bytes) -> None:
    answer = exchange(serve(), raw)
    assert status_of(answer) == status and message in answer and b"Connection: close" in answer


def test_http09_is_answered_and_closed_at_once(serve: Callable[..., Server]) -> None:
    server = serve(limits=Limits(header_timeout=60))
    started = time.monotonic()
    answer = exchange(server, b"GET /health/live\r\n")
    assert status_of(answer) == 400 and b"HTTP/0.9" in answer
    assert time.monotonic() - started < 5  # not the 60 s header deadline


def test_keep_alive_and_pipelining_answer_each_request_once(serve: Callable[..., Server]) -> None:
    server = serve()
    two = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" + get("/health/ready")
    answer = exchange(server, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2


def test_generate_runs_one_at_a_time_unless_the_adapter_is_thread_safe(serve: Callable[..., Server]) -> None:
    for entry, expected in (("sleepy:Sleepy", 1), ("sleepy:SleepyThreadSafe", 4)):
        server = serve(entry, limits=Limits(workers=4), delay=0.3)
        answers: list[bytes] = []

        def call(server: Server = server, answers: list[bytes] = answers) -> None:
            answers.append(exchange(server, post("/v1/generate", b"{}")))

        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [status_of(a) for a in answers] == [200] * 4
        adapter = server.state.adapter  # type: ignore[attr-defined]
        assert (adapter.overlap == 1) if expected == 1 else (adapter.overlap > 1), (entry, adapter.overlap)


def test_fit_upload_is_spooled_to_a_file_not_memory(serve: Callable[..., Server]) -> None:
    import safetensors.numpy

    server = serve("toy_tabular:ToyTabular")
    table = np.random.default_rng(0).random((2000, 4))
    body = safetensors.numpy.save({"table": table}, metadata={"columns": "[]", "params": "{}"})
    answer = exchange(server, post("/v1/fit", body, "Content-Type: application/octet-stream\r\n"))
    assert status_of(answer) == 200, answer
    fitted = server.state.adapter.table  # type: ignore[attr-defined]
    assert np.array_equal(fitted, table)
    base = fitted
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    # a map of the spooled upload, not a bytes copy of the body
    assert isinstance(base, memoryview) and type(base.obj).__name__ == "mmap"


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"columns": "[]", "params": '{"table": 1}'}, b"params must not contain ['table']"),
        ({"columns": "{}", "params": "{}"}, b"'columns' must be a JSON list"),
        ({"columns": "[" * 50_000, "params": "{}"}, b"nested too deeply"),
    ],
)
def test_bad_fit_metadata_is_a_400(serve: Callable[..., Server], meta: dict[str, str], message: bytes) -> None:
    import safetensors.numpy

    body = safetensors.numpy.save({"table": np.zeros((2, 2))}, metadata=meta)
    answer = exchange(serve("toy_tabular:ToyTabular"), post("/v1/fit", body))
    assert status_of(answer) == 400 and message in answer
