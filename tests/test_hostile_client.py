"""The harness client against a hostile fake adapter (stdlib, 127.0.0.1 or a Unix socket).

Each mode is one finding of issue #17 the old client failed: no byte limit (an endless chunked
readiness answer, a declared 100 GB body), timeouts per read instead of deadlines (a drip-fed
answer), tracebacks on a garbage status line, bad headers or malformed JSON, and believing an
impossible X-Vdbench-Seconds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from pytest_vdbench.protocols.native import AdapterClient, AdapterError, decode_output
from pytest_vdbench.runtime import Endpoint, StartupError, wait_ready

Reply = Callable[[socket.socket, threading.Event], None]


class Hostile:
    """A server that reads each request's head and body, then runs ``reply`` on the socket."""

    def __init__(self, reply: Reply, unix_path: Path | None = None) -> None:
        self.reply = reply
        self.stop = threading.Event()
        if unix_path is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.endpoint = Endpoint("127.0.0.1", self.listener.getsockname()[1])
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(unix_path))
            self.listener.listen(16)
            self.endpoint = Endpoint("sandbox", 0, unix_socket=str(unix_path))
        self.listener.settimeout(0.1)
        self.threads: list[threading.Thread] = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                length = int(lengths[0]) if lengths else 0
                while len(rest) < length:
                    rest += sock.recv(65536)
                self.reply(sock, self.stop)
            except OSError:
                pass  # the client gave up first: that is the point of most modes

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.listener.close()


@pytest.fixture(params=["tcp", "unix"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Reply], Endpoint]]:
    servers: list[Hostile] = []

    def start(reply: Reply) -> Endpoint:
        server = Hostile(reply, tmp_path / "a.sock" if request.param == "unix" else None)
        servers.append(server)
        return server.endpoint

    yield start
    for server in servers:
        server.close()


def send(head: bytes, body: bytes = b"") -> Reply:
    def reply(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head + body)

    return reply


def ok_json(body: object, extra: bytes = b"") -> Reply:
    raw = json.dumps(body).encode()
    return send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (len(raw), extra), raw)


def endless_chunks(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    for _ in range(1 << 16):  # 4 GiB at most; the client stops reading long before
        if stop.is_set():
            return
        sock.sendall(chunk)


def drip(sock: socket.socket, stop: threading.Event) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
        sock.sendall(bytes([byte]))
        if stop.wait(2.0):
            return


def output_answer(seconds: bytes, rss: bytes = b"1000", delay: float = 0.0) -> Reply:
    body = safetensors.numpy.save({"output": np.zeros((2, 3, 4, 4), dtype=np.float32)})

    def reply(sock: socket.socket, stop: threading.Event) -> None:
        if stop.wait(delay):
            return
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Vdbench-Seconds: %s\r\nX-Vdbench-Peak-Rss: %s\r\n\r\n"
        sock.sendall(head % (len(body), seconds, rss) + body)

    return reply


def test_an_endless_chunked_readiness_answer_is_cut_at_the_json_limit(hostile: Callable[[Reply], Endpoint]) -> None:
    client = AdapterClient(hostile(endless_chunks), timeout=30)
    started = time.monotonic()
    status, body = client.ready()
    assert status == 502 and "over the limit of 1048576 bytes" in body["error"]
    assert time.monotonic() - started < 10


def test_an_endless_chunked_output_is_refused_at_the_output_limit(hostile: Callable[[Reply], Endpoint]) -> None:
    client = AdapterClient(hostile(endless_chunks), timeout=30)
    with pytest.raises(AdapterError, match=r"generate output refused: .*passed 4194304 bytes"):
        client.generate("x", seed=0, params={}, max_bytes=4 << 20)


def test_a_huge_content_length_is_refused_before_reading(hostile: Callable[[Reply], Endpoint]) -> None:
    client = AdapterClient(hostile(send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")), timeout=30)
    with pytest.raises(AdapterError, match="100000000000 bytes, over the limit of 1048576"):
        client.metadata()
    with pytest.raises(AdapterError, match=r"generate output refused: .*100000000000 bytes, over the limit of 65536"):
        client.generate("x", seed=0, params={}, max_bytes=65536)


def test_a_drip_fed_answer_is_cut_at_the_total_deadline(hostile: Callable[[Reply], Endpoint]) -> None:
    client = AdapterClient(hostile(drip), timeout=5)
    started = time.monotonic()
    with pytest.raises(AdapterError, match=r"did not answer within 5s"):
        client.generate("x", seed=0, params={})
    assert time.monotonic() - started < 8  # per-read timeouts: 40 s (a byte every 2 s never trips a 5 s read)


def test_wait_ready_returns_within_its_timeout_against_a_drip(hostile: Callable[[Reply], Endpoint]) -> None:
    client = AdapterClient(hostile(drip), timeout=300)
    started = time.monotonic()
    with pytest.raises(StartupError, match="not ready within the startup timeout of 3s"):
        wait_ready(client.ready, timeout=3, alive=lambda: None, logs=lambda: "", what="model drip")
    assert time.monotonic() - started < 4.5  # it was 36 s


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed status line b'SSH-2.0-OpenSSH_9.2'"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line b'HTTP/1.1 2000 OK'"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line b'no colon here'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "invalid Content-Length 'ten'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "invalid Content-Length '2, 3'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size line b'zz'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "closed the connection after 2 of 10 body bytes"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, "head exceeds 65536 bytes"),
    ],
    ids=["not-http", "bad-status", "no-colon", "bad-length", "two-lengths", "bad-chunk", "short-body", "huge-head"],
)
def test_malformed_answers_fail_with_what_the_server_sent(hostile: Callable[[Reply], Endpoint], raw: bytes, quoted: str) -> None:
    client = AdapterClient(hostile(send(raw)), timeout=10)
    with pytest.raises(AdapterError) as info:
        client.generate("x", seed=0, params={})
    assert quoted in str(info.value) and "Traceback" not in str(info.value)
    status, body = client.ready()  # readiness polling reports it instead of raising
    assert status == 502 and quoted in body["error"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_json_metadata_fails_with_a_quote(hostile: Callable[[Reply], Endpoint], raw: bytes, message: str) -> None:
    reply = send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(raw), raw)
    with pytest.raises(AdapterError, match=message):
        AdapterClient(hostile(reply), timeout=10).metadata()


def test_an_impossibly_short_claimed_time_is_replaced_by_the_round_trip(hostile: Callable[[Reply], Endpoint]) -> None:
    gen = AdapterClient(hostile(output_answer(b"0.000001", delay=2.0)), timeout=30).generate("x", seed=0, params={})
    assert gen.server_seconds == gen.total_seconds >= 2.0
    assert gen.timing_note is not None and "implausibly short" in gen.timing_note


@pytest.mark.parametrize("claim", [b"nan", b"-1", b"inf", b"1e999", b"soon", b"99"])
def test_a_claimed_time_that_is_no_duration_or_too_long_is_ignored(hostile: Callable[[Reply], Endpoint], claim: bytes) -> None:
    gen = AdapterClient(hostile(output_answer(claim, rss=b"lots")), timeout=30).generate("x", seed=0, params={})
    assert gen.server_seconds == gen.total_seconds and gen.timing_note is not None
    assert gen.peak_rss_bytes is None


def test_a_plausible_claimed_time_is_believed(hostile: Callable[[Reply], Endpoint]) -> None:
    gen = AdapterClient(hostile(output_answer(b"0.0001")), timeout=30).generate("x", seed=0, params={})
    assert gen.server_seconds == 0.0001 and gen.timing_note is None and gen.peak_rss_bytes == 1000


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h["output"].update(data_offsets=[0, 10**12]), "do not hold"),
        (lambda h: h["output"].update(dtype="C64"), "no known dtype"),
        (lambda h: h["output"].update(shape=[-1]), "not a list of sizes"),
        (lambda h: h.update(output="x"), "no known dtype"),
    ],
)
def test_a_lying_safetensors_header_is_a_clear_error(mutate: Callable[[dict[str, object]], None], message: str) -> None:
    data = safetensors.numpy.save({"output": np.zeros(4, dtype=np.float32)})
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    mutate(header)
    raw = json.dumps(header).encode()
    with pytest.raises(ValueError, match=message):
        decode_output(bytearray(len(raw).to_bytes(8, "little") + raw + data[8 + size :]))


def test_the_unix_socket_must_be_a_socket_of_the_container_user(tmp_path: Path) -> None:
    server = Hostile(ok_json({"status": "ready"}), tmp_path / "real.sock")
    try:
        link = tmp_path / "adapter.sock"
        link.symlink_to(tmp_path / "real.sock")  # an adapter that swapped its socket for a link to a host socket
        linked = AdapterClient(Endpoint("sandbox", 0, unix_socket=str(link)), timeout=5)
        with pytest.raises(AdapterError, match="is a symlink, not the adapter's socket: refusing to connect"):
            linked.generate("x", seed=0, params={})
        status, body = linked.ready()  # readiness says so too, it does not connect
        assert status == 502 and "is a symlink" in body["error"]
        mine = Endpoint("sandbox", 0, unix_socket=str(tmp_path / "real.sock"), socket_owner=os.getuid())
        assert AdapterClient(mine, timeout=5).live()[0] == 200
        other = Endpoint("sandbox", 0, unix_socket=str(tmp_path / "real.sock"), socket_owner=os.getuid() + 1)
        with pytest.raises(AdapterError, match=f"owned by uid {os.getuid()}, not the container user {os.getuid() + 1}"):
            AdapterClient(other, timeout=5).metadata()
    finally:
        server.close()
