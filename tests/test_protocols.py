"""Cog and OIP v2 protocols without Docker: decoding, input mapping, readiness, clients against fake servers."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save as save_safetensors

from pytest_vdbench.manifest import CogOptions, DeclaredRequirements, Manifest, ManifestError, OipOptions, load_manifest
from pytest_vdbench.protocols import NotSupported, client_for
from pytest_vdbench.protocols.cog import CogClient, cog_inputs, cog_readiness, decode_cog_output, setup_seconds
from pytest_vdbench.protocols.decode import (
    DecodeError,
    canonical_frames,
    decode_data_url,
    decode_file,
    decode_json_value,
    decode_oip_output,
    encode_oip_inputs,
)
from pytest_vdbench.protocols.native import AdapterClient, AdapterError
from pytest_vdbench.protocols.oip import OipClient
from pytest_vdbench.runtime import Endpoint, StartupError, wait_ready

VIDEO = np.random.default_rng(0).random((4, 3, 6, 5), dtype=np.float32)


def data_url(data: bytes, mime: str = "application/octet-stream") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def image_file(frames: np.ndarray[Any, Any], fmt: str) -> bytes:
    """uint8 [F, H, W, 3] frames as a GIF (animated) or PNG (one frame)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format=fmt, save_all=len(images) > 1, append_images=images[1:])
    return buf.getvalue()


# -- files and data URLs ----------------------------------------------------------------------


def test_data_url_base64_and_percent_encoded() -> None:
    assert decode_data_url(data_url(b"\x00\x01abc", "image/gif")) == (b"\x00\x01abc", "image/gif")
    assert decode_data_url("data:,a%20b") == (b"a b", "text/plain")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x/y.npy", "not a data URL"),
        ("data:application/x;base64", "without a ','"),
        ("data:;base64,@@@", "invalid base64"),
    ],
)
def test_data_url_errors(url: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_data_url(url)


def test_npy_comes_back_exactly() -> None:
    out = decode_file(npy(VIDEO))
    assert out.dtype == np.float32 and out.shape == VIDEO.shape
    assert np.array_equal(out, VIDEO)


def test_safetensors_output_tensor() -> None:
    assert np.array_equal(decode_file(save_safetensors({"output": VIDEO})), VIDEO)
    with pytest.raises(DecodeError, match="name the video 'output'"):
        decode_file(save_safetensors({"a": VIDEO, "b": VIDEO}))


def test_gif_frames_become_the_canonical_float_layout() -> None:
    # black/white frames survive GIF's palette exactly
    frames = np.zeros((3, 4, 5, 3), dtype=np.uint8)
    frames[1, :2] = 255
    frames[2, :, :3] = 255
    out = decode_file(image_file(frames, "GIF"))
    assert out.dtype == np.float32 and out.shape == (3, 3, 4, 5)  # [F, C, H, W]
    assert np.array_equal(out, frames.transpose(0, 3, 1, 2).astype(np.float32) / 255)


def test_png_is_one_frame() -> None:
    frame = np.full((1, 4, 6, 3), 255, dtype=np.uint8)
    out = decode_file(image_file(frame, "PNG"))
    assert out.shape == (1, 3, 4, 6) and float(out.min()) == 1.0


def test_canonical_frames_rejects_non_uint8() -> None:
    with pytest.raises(DecodeError, match="uint8"):
        canonical_frames(np.zeros((2, 4, 4, 3), dtype=np.float32))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x93NUMPY\x01\x00garbage", "malformed .npy"),
        (b"GIF89a not really", "malformed image"),
        (b"\x00\x01\x02 random bytes here", "cannot decode an output file"),
        (b"[1, 2,", "malformed JSON"),
    ],
)
def test_undecodable_files_say_what_they_were(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_file(data)


def test_mp4_without_a_decoder_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_video_libs(name: str, package: str | None = None) -> Any:
        if name in ("imageio.v3", "av"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_video_libs)
    with pytest.raises(DecodeError, match=r"imageio.*PyAV"):
        decode_file(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32)


def test_json_values() -> None:
    assert decode_json_value([[1, 2], [3, 4]]).shape == (2, 2)
    assert decode_json_value([[0.5]], "float32").dtype == np.float32
    with pytest.raises(DecodeError, match="rectangular"):
        decode_json_value([[1, 2], [3]])
    with pytest.raises(DecodeError, match="not a number array"):
        decode_json_value(["a", "b"])


# -- Cog --------------------------------------------------------------------------------------


def test_cog_output_shapes() -> None:
    assert np.array_equal(decode_cog_output(data_url(npy(VIDEO))), VIDEO)
    white = np.full((1, 2, 2, 3), 255, dtype=np.uint8)
    frames = decode_cog_output([data_url(image_file(white, "PNG")), data_url(image_file(white, "PNG"))])
    assert frames.shape == (2, 3, 2, 2)
    assert decode_cog_output({"video": data_url(npy(VIDEO))}, CogOptions(output="video")).shape == VIDEO.shape
    assert decode_cog_output(VIDEO.tolist(), CogOptions(dtype="float32")).dtype == np.float32


@pytest.mark.parametrize(
    ("output", "options", "message"),
    [
        ({"video": "x", "fps": 8}, None, r"object with keys \['fps', 'video'\]: set cog.output"),
        ({"fps": 8}, CogOptions(output="video"), r"cog.output is 'video' but the output has \['fps'\]"),
        ("https://bucket/out.mp4", None, "--upload-url"),
        ("just text", None, "a string, not a file"),
        (["data:,a", "plain"], None, "not all data-URL files"),
        (None, None, "without an output"),
    ],
)
def test_cog_output_errors(output: Any, options: CogOptions | None, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_cog_output(output, options)


def test_cog_inputs_map_prompt_seed_and_params() -> None:
    assert cog_inputs("a fox", 3, {"frames": 8}) == {"frames": 8, "prompt": "a fox", "seed": 3}
    assert cog_inputs("a fox", None, {}) == {"prompt": "a fox"}
    renamed = CogOptions(prompt_input="text", seed_input=None)
    assert cog_inputs("a fox", 3, {"steps": 2}, renamed) == {"steps": 2, "text": "a fox"}
    with pytest.raises(AdapterError, match="case params set 'seed'"):
        cog_inputs("a fox", 3, {"seed": 4})


SETUP = {"started_at": "2026-11-23T10:05:19.984903068+00:00", "completed_at": "2026-11-23T10:05:20.218809825+00:00"}


def test_setup_seconds_from_nanosecond_timestamps() -> None:
    assert setup_seconds(SETUP) == pytest.approx(0.233906, abs=2e-6)  # truncated to microseconds
    assert setup_seconds({"started_at": "soon"}) is None


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"status": "READY", "setup": {**SETUP, "status": "succeeded"}}, 200, "ready"),
        ({"status": "BUSY"}, 200, "ready"),
        ({"status": "STARTING"}, 503, "starting"),
        ({"status": "UNHEALTHY"}, 503, "healthcheck"),
        ({"status": "SOMETHING_NEW"}, 503, "unknown Cog status 'SOMETHING_NEW'"),
        ({"status": "SETUP_FAILED", "setup": {"logs": "FileNotFoundError: /weights"}}, 500, "FileNotFoundError: /weights"),
        ({"status": "DEFUNCT", "setup": {}}, 500, "worker died"),
    ],
)
def test_cog_readiness(body: dict[str, Any], status: int, text: str) -> None:
    got, answer = cog_readiness(body)
    assert got == status
    assert text in json.dumps(answer)


def test_cog_ready_reports_setup_seconds() -> None:
    _, answer = cog_readiness({"status": "READY", "setup": SETUP})
    assert answer["setup_seconds"] == pytest.approx(0.2339, abs=1e-4)


# -- OIP v2 -----------------------------------------------------------------------------------


def test_oip_inputs() -> None:
    inputs = encode_oip_inputs("a fox", 7, {"frames": 8, "guidance": 3.5, "flip": True, "pair": [[1, 2], [3, 4]], "style": "ink"})
    by_name = {i["name"]: i for i in inputs}
    assert by_name["prompt"] == {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a fox"]}
    assert by_name["seed"] == {"name": "seed", "datatype": "INT64", "shape": [1], "data": [7]}
    assert by_name["frames"]["datatype"] == "INT64"
    assert by_name["guidance"]["datatype"] == "FP64"
    assert by_name["flip"]["datatype"] == "BOOL"
    assert by_name["pair"]["shape"] == [2, 2] and by_name["pair"]["data"] == [1, 2, 3, 4]
    assert by_name["style"]["datatype"] == "BYTES"
    assert [i["name"] for i in encode_oip_inputs("x", None, {}, prompt_input="text")] == ["text"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"seed": 1}, "shadow"), ({"x": None}, "cannot travel"), ({"x": {"a": 1}}, "cannot travel"), ({"x": [1, "a"]}, "one kind")],
)
def test_oip_inputs_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        encode_oip_inputs("x", 1, params)


def oip_tensor(array: np.ndarray[Any, Any], name: str = "video", datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.reshape(-1).tolist()}


def test_oip_output_is_rebuilt_with_datatype_and_shape() -> None:
    out = decode_oip_output([oip_tensor(VIDEO)])
    assert out.dtype == np.float32 and out.shape == VIDEO.shape and np.array_equal(out, VIDEO)
    two = [oip_tensor(VIDEO, "mask", "UINT8") | {"data": [0] * VIDEO.size}, oip_tensor(VIDEO)]
    assert decode_oip_output(two, "video").dtype == np.float32
    assert decode_oip_output(two, "mask").dtype == np.uint8


@pytest.mark.parametrize(
    ("outputs", "name", "message"),
    [
        ([], None, "no outputs"),
        ([{"name": "a"}, {"name": "b"}], None, r"outputs \['a', 'b'\], none named 'output'"),
        ([oip_tensor(VIDEO)], "frames", "none named 'frames'"),
        ([oip_tensor(VIDEO) | {"datatype": "BYTES"}], None, "not a number tensor"),
        ([oip_tensor(VIDEO) | {"shape": [2, "x"]}], None, "malformed shape"),
        ([oip_tensor(VIDEO) | {"shape": [7]}], None, "do not fill shape"),
        ([oip_tensor(VIDEO) | {"parameters": {"binary_data_size": 12}}], None, "binary data extension"),
        ([oip_tensor(VIDEO) | {"data": None}], None, "no data list"),
    ],
)
def test_oip_output_errors(outputs: list[dict[str, Any]], name: str | None, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_oip_output(outputs, name)


# -- clients against fake servers -------------------------------------------------------------

Route = Callable[[str, str, Any], tuple[int, Any]]


@pytest.fixture
def fake_server() -> Iterator[Callable[[Route], Endpoint]]:
    """Start a 127.0.0.1 HTTP server answering with ``route(method, path, json_body) -> (status, body)``."""
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> Endpoint:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = route(method, self.path, body)
                data = answer if isinstance(answer, bytes) else (b"" if answer is None else json.dumps(answer).encode())
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return Endpoint("127.0.0.1", server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def prediction(output: Any, **extra: Any) -> dict[str, Any]:
    # a claim shorter than any round trip: believed (a longer one than the round trip would not be)
    return {"status": "succeeded", "output": output, "metrics": {"predict_time": 0.0005}, **extra}


def test_cog_generate_decodes_and_retries_when_busy(fake_server: Callable[[Route], Endpoint]) -> None:
    seen: list[Any] = []

    def route(method: str, path: str, body: Any) -> tuple[int, Any]:
        seen.append(body)
        if len(seen) == 1:  # Cog answers 409 while its slot is still being freed
            return 409, {"detail": "At capacity - all prediction slots busy"}
        return 200, prediction(data_url(npy(VIDEO)))

    client = CogClient(fake_server(route), timeout=5)
    gen = client.generate("a fox", seed=3, params={"frames": 4})
    assert np.array_equal(gen.output, VIDEO)
    assert gen.server_seconds == 0.0005 and gen.timing_note is None and gen.nbytes > VIDEO.nbytes
    assert seen[-1] == {"input": {"frames": 4, "prompt": "a fox", "seed": 3}}


def test_cog_generate_failures(fake_server: Callable[[Route], Endpoint]) -> None:
    answers: dict[str, tuple[int, Any]] = {
        "failed": (200, {"status": "failed", "error": "ValueError: frames must be positive", "logs": "printed by predict"}),
        "busy": (409, {"detail": "At capacity"}),
        "undecodable": (200, prediction("hello")),
        "big": (200, prediction(data_url(npy(VIDEO)))),
    }
    which = {"now": "failed"}
    client = CogClient(fake_server(lambda m, p, b: answers[which["now"]]), timeout=0.3)
    with pytest.raises(AdapterError, match=r"prediction failed: ValueError: frames must be positive[\s\S]*printed by predict"):
        client.generate("x", seed=0, params={})
    which["now"] = "busy"
    with pytest.raises(AdapterError, match="answered 409"):
        client.generate("x", seed=0, params={})
    which["now"] = "undecodable"
    with pytest.raises(AdapterError, match=r"cannot be decoded.*a string, not a file"):
        client.generate("x", seed=0, params={})
    which["now"] = "big"
    with pytest.raises(AdapterError, match="output refused"):
        client.generate("x", seed=0, params={}, max_bytes=VIDEO.nbytes // 100)
    with pytest.raises(AdapterError, match="decoded output is 1440 bytes, over the limit of 400"):
        client.generate("x", seed=0, params={}, max_bytes=400)  # the data URL fits 8x, the tensor does not


def test_cog_setup_failure_stops_the_wait_with_cogs_logs(fake_server: Callable[[Route], Endpoint]) -> None:
    calls = {"n": 0}

    def route(method: str, path: str, body: Any) -> tuple[int, Any]:
        calls["n"] += 1
        if calls["n"] < 3:
            return 200, {"status": "STARTING", "setup": {}}
        return 200, {"status": "SETUP_FAILED", "setup": {"status": "failed", "logs": "Setup failed: FileNotFoundError: /w"}}

    client = CogClient(fake_server(route))
    with pytest.raises(StartupError) as info:
        wait_ready(client.ready, timeout=30, alive=lambda: None, logs=lambda: "", what="container of cog-x")
    assert "container of cog-x failed in Cog's setup()" in str(info.value)
    assert "Cog reports SETUP_FAILED" in str(info.value) and "FileNotFoundError: /w" in str(info.value)


def oip_route(ready: dict[str, int], seen: list[Any]) -> Route:
    def route(method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/v2/health/live":
            return 200, None
        if path == "/v2/health/ready":
            return ready["server"], None
        if path == "/v2/models/toy/ready":
            return ready["model"], None
        if path == "/v2":
            return 200, {"name": "fake", "version": "0", "extensions": []}
        if path == "/v2/models/toy":
            declared = (("prompt", "BYTES"), ("seed", "INT32"), ("frames", "INT64"))
            inputs = [{"name": n, "datatype": d, "shape": [1]} for n, d in declared]
            return 200, {"name": "toy", "inputs": inputs, "outputs": [{"name": "video", "datatype": "FP32", "shape": [-1]}]}
        if path == "/v2/models/toy/infer":
            seen.append(body)
            if body["inputs"][0]["data"] == ["crash"]:
                return 500, b"Traceback (most recent call last):\nValueError: boom"
            return 200, {"model_name": "toy", "outputs": [oip_tensor(VIDEO)]}
        return 404, {"error": f"no route {path}"}

    return route


def test_oip_client(fake_server: Callable[[Route], Endpoint]) -> None:
    ready = {"server": 200, "model": 400}
    seen: list[Any] = []
    client = OipClient(fake_server(oip_route(ready, seen)), model="toy")
    assert client.live()[0] == 200
    status, body = client.ready()
    assert status == 503 and "/v2/models/toy/ready answered 400" in body["status"]
    ready["model"] = 200
    assert client.ready()[0] == 200
    meta = client.metadata()
    assert meta["protocol"] == "oip-v2" and meta["model"]["name"] == "toy"
    gen = client.generate("a fox", seed=3, params={"frames": 4})
    assert np.array_equal(gen.output, VIDEO)
    seed = next(i for i in seen[-1]["inputs"] if i["name"] == "seed")
    assert seed["datatype"] == "INT32"  # the model's metadata declares INT32: sent as such
    with pytest.raises(AdapterError, match=r"declares no input\(s\) \['steps'\].*its inputs: \['frames', 'prompt', 'seed'\]"):
        client.generate("a fox", seed=3, params={"steps": 2})
    with pytest.raises(AdapterError, match=r"answered 500: [\s\S]*ValueError: boom"):
        client.generate("crash", seed=3, params={})


def test_requirements_are_declared_or_not_checked(tmp_path: Path) -> None:
    endpoint = Endpoint("127.0.0.1", 9)
    with pytest.raises(NotSupported, match="not checked: the cog protocol has no requirements endpoint"):
        CogClient(endpoint).requirements()
    declared = CogClient(endpoint, options=CogOptions(requirements=DeclaredRequirements(memory="1g"))).requirements()
    assert declared["memory"] == 2**30 and "cog.requirements" in declared["source"]
    with pytest.raises(NotSupported, match=r"oip\.requirements"):
        OipClient(endpoint, model="m").requirements()
    with pytest.raises(NotSupported, match="no fit"):
        OipClient(endpoint, model="m").fit(np.zeros((1, 1)), [], {})


def base_manifest(**extra: Any) -> Manifest:
    doc: dict[str, Any] = {"name": "m", "modality": "video", "image": {"context": "x"}, "cases": [{"id": "a"}], **extra}
    return Manifest.model_validate(doc)


def test_client_for_dispatches_on_the_protocol() -> None:
    endpoint = Endpoint("127.0.0.1", 9)
    assert isinstance(client_for(base_manifest(adapter="m:A"), endpoint), AdapterClient)
    assert isinstance(client_for(base_manifest(protocol="cog"), endpoint), CogClient)
    oip = client_for(base_manifest(protocol="oip-v2"), endpoint)
    assert isinstance(oip, OipClient) and oip.model == "m"  # the manifest's name by default
    named = client_for(base_manifest(protocol="oip-v2", oip=OipOptions(model="toy", version="2")), endpoint)
    assert isinstance(named, OipClient) and named.model_path == "/v2/models/toy/versions/2"


# -- manifest validation ----------------------------------------------------------------------

GOOD_COG = """\
name: c
modality: video
protocol: cog
adapter: predict.py:Predictor
image: {context: x}
cases: [{id: a}]
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(path, tmp_path)
    return info.value.problems


def test_protocol_defaults_and_ports(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD_COG)
    (spec,) = load_manifest(path, tmp_path)
    assert spec.manifest.protocol == "cog" and spec.manifest.container_port() == 5000
    path.write_text(GOOD_COG.replace("protocol: cog\nadapter: predict.py:Predictor\n", "protocol: oip-v2\nport: 9000\n"))
    (spec,) = load_manifest(path, tmp_path)
    assert spec.manifest.container_port() == 9000 and spec.manifest.adapter is None
    assert base_manifest(adapter="m:A").container_port() == 8080


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("protocol: cog\n", "protocol: grpc\n", "m.yaml:3: protocol: Input should be 'native', 'cog' or 'oip-v2'"),
        ("protocol: cog\nadapter: predict.py:Predictor\n", "", "m.yaml:1: adapter: required for protocol: native"),
        ("protocol: cog\n", "protocol: oip-v2\n", "m.yaml:4: adapter: protocol oip-v2 takes no adapter"),
        ("modality: video\n", "modality: tabular\n", "m.yaml:3: protocol: tabular models need protocol: native"),
        ("cases:", "oip: {model: toy}\ncases:", "m.yaml:6: oip: options for protocol: oip-v2, but this manifest's protocol is"),
        ("cases:", "options: {fault: x}\ncases:", "m.yaml:6: options: options are the native adapter's constructor kwargs"),
        ("cases:", "cog: {prompt: text}\ncases:", "m.yaml:6: cog.prompt: unknown key 'prompt'; did you mean 'prompt_input'?"),
        ("cases:", "cog: {requirements: {memory: lots}}\ncases:", "m.yaml:6: cog.requirements.memory: expected a size"),
        ("cases:", "port: 70000\ncases:", "m.yaml:6: port: Input should be less than or equal to 65535"),
        ("cases: [{id: a}]", "cases: [{id: a, params: {seed: 3}}]", "m.yaml:6: cases: case 'a': params.seed is the cog input"),
        ("cases:", "cog: {prompt_input: text}\ncases:", None),
        ("cases: [{id: a}]", "cog: {prompt_input: text}\ncases: [{id: a, params: {text: x}}]", "params.text is the cog input"),
    ],
)
def test_protocol_errors_name_file_line_and_key(tmp_path: Path, replace: str, by: str, expected: str | None) -> None:
    assert replace in GOOD_COG
    text = GOOD_COG.replace(replace, by, 1)
    if expected is None:  # the control: this one is valid
        (tmp_path / "ok.yaml").write_text(text)
        load_manifest(tmp_path / "ok.yaml", tmp_path)
        return
    problems = problems_of(tmp_path, text)
    assert any(expected in p for p in problems), problems


# -- runtimes that cannot run a protocol say so -----------------------------------------------


def test_process_runtime_skips_cog_and_oip_models(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = {
        "name": "pcog",
        "modality": "video",
        "protocol": "cog",
        "adapter": "predict.py:Predictor",
        "image": {"context": str(Path(__file__).parent.parent / "containers" / "cog-example")},
        "cases": [{"id": "a", "prompt": "x"}],
    }
    suite = write_suite(doc)
    result = pytester.runpytest("--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=process", "-rs")
    result.assert_outcomes(skipped=7)
    result.stdout.fnmatch_lines(["*pcog: protocol cog: the process runtime runs vdbench adapters only*--vdbench-runtime docker*"])


def test_sandboxed_docker_runtime_refuses_tcp_only_servers(tmp_path: Path) -> None:
    from pytest_vdbench.protocols import builtin_protocols
    from pytest_vdbench.runtime import RuntimeUnavailable
    from pytest_vdbench.runtime.docker import DockerRuntime

    path = tmp_path / "c.yaml"
    path.write_text(GOOD_COG)
    (spec,) = load_manifest(path, tmp_path)
    runtime = object.__new__(DockerRuntime)  # no engine needed: the refusal comes before any build
    runtime.sandbox = True
    runtime.protocols = builtin_protocols()
    with pytest.raises(RuntimeUnavailable, match="a cog server listens on TCP only"):
        runtime.start(spec)


def test_container_command_and_env_per_protocol() -> None:
    from pytest_vdbench.protocols import PROTOCOLS

    def server_command(m: Manifest, listen: list[str]) -> list[str] | None:
        return PROTOCOLS.get(m.protocol).command(m, listen)

    def server_env(m: Manifest, port: int) -> dict[str, str]:
        return PROTOCOLS.get(m.protocol).server_env(m, port)

    listen = ["--host", "0.0.0.0", "--port", "8080"]
    native = base_manifest(adapter="m:A")
    assert server_command(native, listen) == ["python", "-m", "pytest_vdbench.adapter", "serve", "m:A", *listen]
    assert server_env(native, 8080) == {}
    cog = base_manifest(protocol="cog", adapter="predict.py:Predictor")
    assert server_command(cog, listen) == ["python", "-m", "cog.server.http", "--host", "0.0.0.0"]
    assert server_env(cog, 5000) == {"PORT": "5000", "COG_PREDICT_TYPE_STUB": "predict.py:Predictor"}
    assert server_env(base_manifest(protocol="cog"), 5000) == {"PORT": "5000"}  # the image's own stub
    assert server_command(base_manifest(protocol="oip-v2"), listen) is None  # the image's CMD
    assert server_command(base_manifest(protocol="oip-v2", command=["mlserver", "start", "/m"]), listen) == [
        "mlserver",
        "start",
        "/m",
    ]
