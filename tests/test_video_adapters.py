"""The diffusers video adapters (containers/{cogvideox,ltx,svd,wan,animatediff}) and the hosted Pika client.

Fast and Docker-free. Most tests need only torch and numpy (the adapters import diffusers and
transformers lazily, in ``load()``): stack layout, manifests, parameter validation, output
conversion, the CLIP byte alphabet, and Pika's request -> poll -> download against a fake queue
API on 127.0.0.1. The end-to-end tests build each tiny pipeline and skip unless diffusers is
importable here (it is not installed by ``.[dev]``: the containers are where it lives).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from pytest_vdbench.adapter import diffusers_kit
from pytest_vdbench.manifest import load_manifest
from pytest_vdbench.runtime.host import HostInfo, unmet_requirements

ROOT = Path(__file__).parent.parent
CONTAINERS = ROOT / "containers"
SUITES = ROOT / "model_suites" / "video"
#: model -> (adapter module, class); the first four share one image stack, AnimateDiff has its own
DIFFUSERS_MODELS = {
    "cogvideox": ("cogvideox_adapter", "CogVideoX"),
    "ltx": ("ltx_adapter", "LTXVideo"),
    "svd": ("svd_adapter", "StableVideoDiffusion"),
    "wan": ("wan_adapter", "Wan"),
    "animatediff": ("animatediff_adapter", "AnimateDiff"),
}
SHARED_STACK = ("cogvideox", "ltx", "svd", "wan")
OFFICIAL_REPOS = {
    "cogvideox": ["THUDM/CogVideoX-2b"],
    "ltx": ["Lightricks/LTX-Video"],
    "svd": ["stabilityai/stable-video-diffusion-img2vid-xt"],
    "wan": ["Wan-AI/Wan2.1-T2V-1.3B-Diffusers"],
    "animatediff": ["guoyww/animatediff-motion-adapter-v1-5-2", "emilianJR/epiCRealism"],
}


def load_module(model: str, module: str) -> ModuleType:
    """Import ``containers/<model>/<module>.py`` under a unique name (the containers' modules are not a package)."""
    name = f"vdbench_test_{model}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CONTAINERS / model / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def adapter_module(model: str) -> ModuleType:
    pytest.importorskip("torch")
    return load_module(model, DIFFUSERS_MODELS[model][0])


def adapter_class(model: str) -> Any:
    return getattr(adapter_module(model), DIFFUSERS_MODELS[model][1])


def requirement_pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pins = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path}: {line!r} is not pinned with =="
        pins[name.lower().replace("_", "-")] = version
    return pins


def dockerfile_lines(model: str) -> list[str]:
    text = (CONTAINERS / model / "Dockerfile").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# -- stacks and images -------------------------------------------------------------------------


def test_the_shared_stack_is_byte_identical_up_to_its_install_layer() -> None:
    """Same base, same requirements bytes, same first instructions: docker builds the stack once."""
    reference = (CONTAINERS / SHARED_STACK[0] / "requirements.txt").read_bytes()
    prefix = dockerfile_lines(SHARED_STACK[0])[:4]
    assert prefix[0] == "ARG BASE=vdbench/torch-cpu:bookworm" and prefix[3].startswith("RUN pip install")
    for model in SHARED_STACK[1:]:
        assert (CONTAINERS / model / "requirements.txt").read_bytes() == reference, model
        assert dockerfile_lines(model)[:4] == prefix, model
        continuation = dockerfile_lines(model)[4]
        assert continuation == dockerfile_lines(SHARED_STACK[0])[4], model


def test_animatediff_pins_an_older_stack_that_conflicts_with_the_shared_one() -> None:
    new = requirement_pins(CONTAINERS / "cogvideox" / "requirements.txt")
    old = requirement_pins(CONTAINERS / "animatediff" / "requirements.txt")
    assert new["diffusers"].startswith("0.42.") and new["transformers"].startswith("5.")
    assert old["diffusers"].startswith("0.30.") and old["transformers"].startswith("4.")
    # transformers 4.44 needs huggingface-hub < 1.0; diffusers 0.42 needs >= 1.32: no common solution
    assert int(old["huggingface-hub"].split(".")[0]) == 0 and int(new["huggingface-hub"].split(".")[0]) >= 1
    assert "cannot share" in (CONTAINERS / "animatediff" / "requirements.txt").read_text()


@pytest.mark.parametrize("model", [*DIFFUSERS_MODELS, "pika"])
def test_images_never_let_pip_resolve_torch(model: str) -> None:
    pins = requirement_pins(CONTAINERS / model / "requirements.txt")
    assert "torch" not in pins and not any(name.startswith("nvidia-") for name in pins)
    lines = dockerfile_lines(model)
    assert lines[0].startswith("ARG BASE") and lines[1] == "FROM ${BASE}"
    assert "COPY .vdbench-sdk/ /opt/vdbench-sdk/" in lines and "COPY *.py /app/" in lines and "USER 10001" in lines
    if model != "pika":
        assert '"torch==2.13.0"' in lines[3], "the install must name torch==2.13.0 so the base's CPU build satisfies it"
        assert any(line.startswith("ENV ") and "HF_HUB_OFFLINE=1" in line and "VDBENCH_THREADS=1" in line for line in lines)


# -- manifests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_manifest_variants(model: str) -> None:
    specs = {s.variant: s for s in load_manifest(SUITES / f"{model}.yaml", ROOT)}
    assert set(specs) == {"tiny", "full"}
    tiny, full = specs["tiny"].manifest, specs["full"].manifest
    module, cls = DIFFUSERS_MODELS[model]
    assert tiny.adapter == f"{module}:{cls}" and tiny.options["variant"] == "tiny"
    assert tiny.resources.gpus == 0 and not tiny.requires.gpu and not tiny.requires.weights
    assert full.options["variant"] == "full"
    assert full.requires.gpu and [w.repo for w in full.requires.weights] == OFFICIAL_REPOS[model]
    assert full.resources.gpus == 1 and full.resources.gpu_memory >= 8 * 1024**3
    for m in (tiny, full):  # each case's expected shape is [frames, 3, height, width] from its params
        for case in m.cases:
            shape = m.case_expect(case).shape
            p = case.params
            assert shape == [p["frames"], 3, p["height"], p["width"]], (m.name, case.id)


@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_full_variant_skips_naming_the_gpu_and_the_weights(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDBENCH_HF_CACHE", str(tmp_path))
    full = next(s for s in load_manifest(SUITES / f"{model}.yaml", ROOT) if s.variant == "full")
    host = HostInfo(cpus=2, memory_total=24 * 1024**3, gpus=(), driver=None, gpu_note="NVML unavailable")
    reason = unmet_requirements(full, host, runtime="docker")
    assert reason is not None and "GPU" in reason and OFFICIAL_REPOS[model][0] in reason


def test_pika_manifest_requires_the_key_and_skips_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIKA_API_KEY", raising=False)
    (spec,) = load_manifest(SUITES / "pika.yaml", ROOT)
    assert spec.manifest.requires.env == ["PIKA_API_KEY"] and spec.manifest.image.base == "bookworm"
    host = HostInfo(cpus=2, memory_total=24 * 1024**3, gpus=(), driver=None, gpu_note="")
    assert unmet_requirements(spec, host, runtime="docker") == "environment variable(s) PIKA_API_KEY not set"


# -- adapter pieces that need no diffusers ---------------------------------------------------


@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_params_are_validated(model: str) -> None:
    mod, cls = adapter_module(model), adapter_class(model)
    seed, p = cls.parse_params("tiny", {"seed": None})
    assert seed == 0 and p == {**mod.DEFAULTS["tiny"], **{k: float(v) for k, v in p.items() if isinstance(v, float)}}
    with pytest.raises(ValueError, match="unknown params"):
        cls.parse_params("tiny", {"fps_typo": 3})
    with pytest.raises(ValueError, match="positive integer"):
        cls.parse_params("tiny", {"frames": 2.5})
    with pytest.raises(ValueError, match="multiples of"):
        cls.parse_params("full", {"height": 100})
    if model in ("cogvideox", "ltx", "wan"):
        with pytest.raises(ValueError, match="k\\+1"):
            cls.parse_params("tiny", {"frames": 8})


@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_constructor_options(model: str) -> None:
    mod = adapter_module(model)
    cls = getattr(mod, DIFFUSERS_MODELS[model][1])
    assert cls().variant == "tiny"
    with pytest.raises(ValueError, match="variant"):
        cls(variant="huge")
    with pytest.raises(TypeError, match="unknown options"):
        cls(variant="tiny", colour="red")
    requirements = cls(variant="full").get_requirements()
    assert requirements["gpus"] == 1 and requirements["gpu_memory"] > 0
    with pytest.raises(RuntimeError, match="before load"):
        cls().generate("a fox", seed=0)


@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_adapter_requirements_fit_each_variants_resources(model: str) -> None:
    """What test_requirements checks in the container, for both variants, without starting one."""
    mod = adapter_module(model)
    for spec in load_manifest(SUITES / f"{model}.yaml", ROOT):
        need = getattr(mod, DIFFUSERS_MODELS[model][1])(**spec.manifest.options).get_requirements()
        r = spec.manifest.resources
        assert need["gpus"] == r.gpus and need["gpu_memory"] <= r.gpu_memory, spec.id
        assert need["memory"] <= r.memory and need["cpus"] <= r.cpus, spec.id


def test_pipeline_output_becomes_canonical_video() -> None:
    """Every diffusers adapter converts its pipeline's frames with the SDK's ``to_video``."""
    torch = pytest.importorskip("torch")  # the [torch] extra; CI installs it

    for model in DIFFUSERS_MODELS:
        assert issubclass(adapter_class(model), diffusers_kit.DiffusersVideoAdapter), model
    frames = torch.linspace(-0.5, 1.5, 5 * 3 * 4 * 6, dtype=torch.float64).reshape(1, 5, 3, 4, 6)
    video = diffusers_kit.to_video(frames)
    assert video.dtype == np.float32 and video.shape == (5, 3, 4, 6)
    assert video.min() == 0.0 and video.max() == 1.0 and video.flags.c_contiguous
    with pytest.raises(ValueError, match="frames, channels"):
        diffusers_kit.to_video(torch.zeros(1, 5, 4, 6, 3))


def test_svd_conditioning_image_is_a_pure_function_of_the_prompt() -> None:
    pytest.importorskip("PIL")
    mod = adapter_module("svd")
    a = np.asarray(mod.conditioning_image("a red fox", 48, 32))
    assert a.shape == (32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, np.asarray(mod.conditioning_image("a red fox", 48, 32)))
    assert np.abs(a.astype(int) - np.asarray(mod.conditioning_image("a blue whale", 48, 32)).astype(int)).mean() > 5


def test_animatediff_byte_alphabet_is_clip_s() -> None:
    mod = adapter_module("animatediff")
    symbols = mod.byte_symbols()
    assert len(set(symbols)) == 256 and all(s.isprintable() and not s.isspace() for s in symbols)
    assert symbols[ord("a")] == "a" and symbols[ord(" ")] == "\u0120" and symbols[ord("\n")] == "\u010a"


def test_t5_vocabularies_match_across_the_shared_stack() -> None:
    """cogvideox, ltx and wan build the same in-memory tokenizer (one vocabulary to reason about)."""
    for model in ("cogvideox", "ltx", "wan"):
        assert adapter_module(model).build_t5_tokenizer is diffusers_kit.build_t5_tokenizer, model
    words = diffusers_kit.T5_WORDS
    assert len(words) == len(set(words)) and len(words) < 900


# -- Pika: request -> poll -> download against a fake queue API on 127.0.0.1 ---------------------


class FakeQueue:
    """A fake fal.ai queue on 127.0.0.1: records every request; the video is served on ``localhost``."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.video = b"FAKE-MP4"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> bytes:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                return body

            def do_POST(self) -> None:
                self._record()
                if self.path != "/fal-ai/pika/v2.2/text-to-video":
                    self._reply(404, b'{"detail": "no such model"}')
                elif self.headers.get("Authorization") != "Key test-key":
                    self._reply(401, b'{"detail": "bad key"}')
                else:
                    self._reply(200, json.dumps({"request_id": "r1"}).encode())

            def do_GET(self) -> None:
                self._record()
                if self.path.endswith("/requests/r1/status"):
                    status = fake.statuses.pop(0) if len(fake.statuses) > 1 else fake.statuses[0]
                    self._reply(200, json.dumps(status).encode())
                elif self.path.endswith("/requests/r1"):
                    url = f"http://localhost:{fake.port}/files/fox.mp4"
                    self._reply(200, json.dumps({"video": {"url": url, "content_type": "video/mp4"}}).encode())
                elif self.path == "/files/fox.mp4":
                    self._reply(200, fake.video, "video/mp4")
                else:
                    self._reply(404, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeQueue:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pika(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    mod = load_module("pika", "pika_adapter")
    monkeypatch.setenv("PIKA_API_KEY", "test-key")
    yield mod


def make_pika(mod: Any, queue: FakeQueue, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    monkeypatch.setenv("PIKA_API_BASE", f"http://127.0.0.1:{queue.port}")
    adapter = mod.Pika(poll_interval=0.0, request_timeout=5.0, **options)
    adapter.decode = lambda data: np.frombuffer(data, dtype=np.uint8).reshape(1, 1, -1, 1).repeat(3, axis=3)
    adapter.sleep = lambda seconds: None
    adapter.load()
    return adapter


def test_pika_request_poll_download(pika: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = [{"status": "IN_QUEUE"}, {"status": "IN_PROGRESS"}, {"status": "COMPLETED"}]
    with FakeQueue(statuses) as queue:
        adapter = make_pika(pika, queue, monkeypatch)
        video = adapter.generate("a red fox", seed=3, duration=5)
    assert video.shape == (1, 1, len(b"FAKE-MP4"), 3) and video.dtype == np.uint8
    methods = [(m, p) for m, p, _, _ in queue.requests]
    assert methods[0] == ("POST", "/fal-ai/pika/v2.2/text-to-video")
    assert [p for m, p in methods].count("/fal-ai/pika/v2.2/text-to-video/requests/r1/status") == 3
    assert methods[-2:] == [("GET", "/fal-ai/pika/v2.2/text-to-video/requests/r1"), ("GET", "/files/fox.mp4")]
    body = json.loads(queue.requests[0][3])
    assert body == {"prompt": "a red fox", "seed": 3, "resolution": "720p", "duration": 5, "aspect_ratio": "16:9"}
    api_headers, cdn_headers = queue.requests[0][2], queue.requests[-1][2]
    assert api_headers["Authorization"] == "Key test-key"
    assert "Authorization" not in cdn_headers, "the key must not leave the API host"
    assert adapter.metadata()["api_key"] == "set" and "test-key" not in json.dumps(adapter.metadata())


def test_pika_failures_name_the_step(pika: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeQueue([{"status": "FAILED", "error": "content policy"}]) as queue:
        adapter = make_pika(pika, queue, monkeypatch)
        with pytest.raises(pika.PikaError, match="failed: content policy"):
            adapter.generate("a red fox", seed=0)
    with FakeQueue([{"status": "IN_QUEUE"}]) as queue:
        adapter = make_pika(pika, queue, monkeypatch, timeout=0.0)
        with pytest.raises(pika.PikaError, match="not done after 0s"):
            adapter.generate("a red fox", seed=0)
    with FakeQueue([{"status": "COMPLETED"}]) as queue:
        monkeypatch.setenv("PIKA_API_KEY", "wrong")
        adapter = make_pika(pika, queue, monkeypatch)
        with pytest.raises(pika.PikaError, match="answered 401"):
            adapter.generate("a red fox", seed=0)
        with pytest.raises(ValueError, match="unknown params"):
            adapter.generate("a red fox", seed=0, fps=30)


def test_pika_without_a_key_fails_readiness_and_sends_nothing(pika: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIKA_API_KEY")
    adapter = pika.Pika()
    with pytest.raises(pika.PikaError, match="PIKA_API_KEY is not set"):
        adapter.load()
    assert not adapter.health_check() and adapter.metadata()["api_key"] == "missing"


def test_pika_decodes_mp4_with_pyav(pika: Any) -> None:
    av = pytest.importorskip("av")
    import io

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    video = pika.decode_video(buffer.getvalue())
    assert video.shape == (5, 16, 32, 3) and video.dtype == np.uint8
    assert video[-1].mean() > video[0].mean() + 100


# -- end to end: the tiny pipelines (only where diffusers is importable) ---------------------------


def _stack_supports(model: str) -> str | None:
    """Why this local diffusers/transformers cannot build ``model``'s tiny pipeline, or None."""
    try:
        import diffusers
        import transformers
    except ImportError:
        return "diffusers/transformers not importable here (they live in the model images)"
    major = int(re.match(r"\d+", transformers.__version__).group())  # type: ignore[union-attr]
    if model in ("cogvideox", "ltx", "wan") and major < 5:
        return f"the in-memory T5 tokenizer needs transformers 5, found {transformers.__version__}"
    if model in ("ltx", "wan") and tuple(int(x) for x in diffusers.__version__.split(".")[:2]) < (0, 33):
        return f"needs a newer diffusers than {diffusers.__version__}"
    return None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", DIFFUSERS_MODELS)
def test_tiny_pipeline_end_to_end(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = _stack_supports(model)
    if reason:
        pytest.skip(reason)
    import torch

    mod = adapter_module(model)
    threads = torch.get_num_threads()
    monkeypatch.setenv("VDBENCH_THREADS", "1")
    try:
        adapter = getattr(mod, DIFFUSERS_MODELS[model][1])(variant="tiny")
        adapter.load()
        a = adapter.generate("a red fox running through snow", seed=0)
        b = adapter.generate("a red fox running through snow", seed=0)
        c = adapter.generate("a city street at night, neon lights", seed=0)
    finally:
        torch.set_num_threads(threads)
    d = mod.DEFAULTS["tiny"]
    assert a.shape == (d["frames"], 3, d["height"], d["width"]) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0 and np.isfinite(a).all()
    assert np.array_equal(a, b), "same prompt and seed must give identical bytes"
    assert np.abs(a - c).mean() > 1e-3, "a different prompt must change the video"
    assert adapter.metadata()["parameters"]
