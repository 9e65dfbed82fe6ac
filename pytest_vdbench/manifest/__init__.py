"""Model manifests: YAML -> frozen, typed, variant-resolved ``ModelSpec`` objects (no Docker here)."""

from __future__ import annotations

import collections
import copy
import fnmatch
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_vdbench.manifest.yamlsafe import YamlRefused, load_checked, non_json

try:  # libyaml keeps collection of hundreds of manifests fast
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = [
    "DEFAULT_PORTS",
    "RENAMED_METRICS",
    "CacheMount",
    "Case",
    "CogOptions",
    "DeclaredRequirements",
    "Load",
    "Manifest",
    "ManifestError",
    "ModelSpec",
    "OipOptions",
    "Timing",
    "discover_manifests",
    "load_manifest",
    "matches",
    "parse_bytes",
    "parse_seconds",
]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SECONDS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_bytes(value: Any) -> int:
    """Parse ``512m``, ``2g``, ``1.5GiB``, ``4096`` (docker's units, powers of 1024) to bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512m or 2g, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value) if isinstance(value, float) else value
    else:
        match = _BYTES_RE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 512m, 2g or 1.5GiB, got {value!r}")
        number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"size must be a finite number, got {value!r}")
    if number < 0:
        raise ValueError(f"size must not be negative, got {value!r}")
    return int(number)


def parse_seconds(value: Any) -> float:
    """Parse ``90``, ``90s``, ``5m``, ``250ms`` to seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s or 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _SECONDS_RE.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 30s, 5m or 250ms, got {value!r}")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
DAY = 86400.0


def format_size(value: float) -> str:
    """``16t``, ``6m``, ``1``: the largest docker unit that divides ``value``."""
    for unit, scale in (("t", TiB), ("g", GiB), ("m", MiB), ("k", KiB)):
        if value and value % scale == 0:
            return f"{int(value // scale)}{unit}"
    return f"{int(value)}"


def format_duration(value: float) -> str:
    for unit, scale in (("d", DAY), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if value >= scale and value % scale == 0:
            return f"{value / scale:g}{unit}"
    return f"{value:g}s"


@dataclass(frozen=True)
class Bounded:
    """A size or duration parser with its documented range (the manifest reference shows it)."""

    kind: Literal["size", "duration"]
    low: float
    high: float

    def __call__(self, value: Any) -> Any:
        parsed: float = parse_bytes(value) if self.kind == "size" else parse_seconds(value)
        if not self.low <= parsed <= self.high:
            raise ValueError(f"must be within {self.describe()}, got {value!r}")
        return parsed

    def describe(self) -> str:
        fmt = format_size if self.kind == "size" else format_duration
        low = "just above 0" if self.kind == "duration" and self.low == 0 else fmt(self.low)
        return f"{low} to {fmt(self.high)}"


# the documented ranges of every size and duration (also in the manifest reference)
Bytes = Annotated[int, BeforeValidator(Bounded("size", 0, 16 * TiB))]
Memory = Annotated[int, BeforeValidator(Bounded("size", 6 * MiB, 16 * TiB))]  # docker's minimum; above any host
Shm = Annotated[int, BeforeValidator(Bounded("size", MiB, TiB))]
GpuMemory = Annotated[int, BeforeValidator(Bounded("size", 0, TiB))]
OutputBytes = Annotated[int, BeforeValidator(Bounded("size", 1, 256 * GiB))]
Seconds = Annotated[float, BeforeValidator(Bounded("duration", 0.0, 7 * DAY))]
#: the seed range every framework takes (numpy's RandomState: below 2**32)
MAX_SEED = 2**32 - 1
MAX_CASES = 10_000
#: a manifest file's size: YAML parses at a few MB/s, and collection must stay fast
MAX_MANIFEST_BYTES = MiB
MAX_DIM = 2**31 - 1
_NAME = r"^[a-z0-9][a-z0-9_.-]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class ImageSpec(_Frozen):
    """Where the model's image comes from: a build context with a Dockerfile, or a Cog model's cog.yaml."""

    context: str | None = Field(
        None, description="build context: relative to the project root, or to the manifest if it starts with '.'"
    )
    cog: str | None = Field(
        None,
        description="a Cog model's cog.yaml (same path rule as context): its folder is the context and the image is "
        "built from cog.yaml as `cog build` would (CPU); the base follows build.python_version (protocol: cog)",
    )
    dockerfile: str = Field("Dockerfile", description="Dockerfile inside the context")
    base: str = Field("bookworm", description="vdbench base (bookworm, bullseye, torch-cpu) or any image reference")
    args: dict[str, str] = Field(default_factory=dict, description="extra docker build args")

    @field_validator("dockerfile")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = Path(value).parts
        if not value or Path(value).is_absolute() or ".." in parts or "\0" in value:
            raise ValueError(f"must be a relative path inside image.context (no leading / and no ..), got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ImageSpec:
        if self.cog is None and self.context is None:
            raise ValueError("give context (a folder with a Dockerfile) or cog (a Cog model's cog.yaml)")
        if self.cog is not None:
            clash = sorted(k for k in ("context", "dockerfile", "base", "args") if k in self.model_fields_set)
            if clash:
                raise ValueError(
                    f"image.cog builds from cog.yaml alone (its folder, its build.python_version); drop {', '.join(clash)}"
                )
        return self


class Resources(_Frozen):
    """Limits the container runs under (and what the host must offer)."""

    cpus: float = Field(1.0, gt=0, le=512, description="CPU limit (docker nano_cpus)")
    memory: Memory = Field(2 * 1024**3, description="memory limit, e.g. 2g")
    shm: Shm = Field(64 * 1024**2, description="/dev/shm size")
    gpus: int = Field(0, ge=0, le=64, description="number of GPUs")
    gpu_memory: GpuMemory = Field(0, description="GPU memory per GPU the model needs")
    pids: int = Field(1024, ge=16, le=4_194_304, description="pids limit")


class Timeouts(_Frozen):
    """How long the harness waits."""

    startup: Seconds = Field(120.0, description="container start to ready")
    generate: Seconds = Field(300.0, description="one generate request")
    fit: Seconds = Field(900.0, description="one fit request (tabular)")
    build: Seconds = Field(1800.0, description="one image build (docker runtime); a build past it fails test_build")
    score: Seconds = Field(300.0, description="one score request (kind: metric)")
    queue: Seconds = Field(600.0, description="slurm runtime: longest a job may stay PENDING before test_health fails")


class Budgets(_Frozen):
    """Limits a healthy model stays within; exceeding one fails test_budget."""

    generate_seconds: Seconds | None = Field(None, description="median generation latency")
    startup_seconds: Seconds | None = Field(None, description="container start to ready")
    fit_seconds: Seconds | None = Field(None, description="tabular fit time")
    peak_memory: Memory | None = Field(None, description="peak container memory")
    throughput_min: float | None = Field(
        None, gt=0, description="test_throughput: outputs per second at the best concurrency level must reach this"
    )
    memory_growth: Bytes = Field(
        64 * 1024**2, description="fail when the adapter's peak RSS rises on every timed call by more than this in total"
    )
    log_bytes: Bytes | None = Field(
        1024**2,
        description="most the model may write to stdout/stderr per generate/fit call on average (startup included); "
        "null: unlimited",
    )


class Timing(_Frozen):
    """Adaptive timed rounds; unset keys take the --vdbench-* options (or their ini/defaults)."""

    min_rounds: int | None = Field(None, ge=1, le=10000, description="a VALID timing needs at least this many timed rounds")
    min_duration: Seconds | None = Field(None, description="... and timed rounds lasting this long in total")
    max_duration: Seconds | None = Field(None, description="stop timing a case after this many seconds of timed rounds")
    max_rounds: int | None = Field(None, ge=1, le=10000, description="stop timing a case after this many timed rounds")
    precision: float | None = Field(
        None, gt=0, lt=1, description="stop once the median's 95 % interval lies within ± this fraction (0.05 = ±5 %)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Timing:
        if self.min_rounds is not None and self.max_rounds is not None and self.min_rounds > self.max_rounds:
            raise ValueError(f"min_rounds {self.min_rounds} is greater than max_rounds {self.max_rounds}")
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            raise ValueError(f"min_duration {self.min_duration:g}s is greater than max_duration {self.max_duration:g}s")
        return self


class Load(_Frozen):
    """The opt-in throughput scenario: test_throughput[case] at each concurrency level."""

    concurrency: list[int] = Field([1, 2, 4], min_length=1, description="concurrent clients, one level after another")
    requests: int = Field(20, ge=1, le=100000, description="requests per level (all clients together)")
    duration: Seconds = Field(30.0, description="stop a level after this long even if requests remain")

    @field_validator("concurrency")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        bad = [c for c in value if c < 1 or c > 256]
        if bad:
            raise ValueError(f"concurrency levels must lie in 1..256, got {bad}")
        return value


class Bound(_Frozen):
    """A threshold on a quality metric."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


#: Built-in video metrics renamed so that none carries a VBench dimension's name without VBench's
#: computation (README, "VBench scores"). Old keys in ``expect.quality`` still bound the new metric
#: (``vdbench validate`` and collection warn, naming the new key); VBench's own values are
#: ``vbench.<dimension>`` from the vbench metric container.
RENAMED_METRICS: dict[str, str] = {"temporal_flicker": "flicker", "motion_smoothness": "smoothness", "dynamic_degree": "motion"}


def renamed_metric_message(old: str) -> str:
    """The deprecation text for an old built-in metric key in ``expect.quality``."""
    new = RENAMED_METRICS[old]
    vbench = "temporal_flickering" if old == "temporal_flicker" else old
    return (
        f"{old!r} was renamed to {new!r}: rename the key to expect.quality.{new} (the bound still applies, to {new}, "
        f"until the old name is removed); VBench's own {vbench} is vbench.{vbench} with --vdbench-metrics=vbench"
    )


Dtype = Literal["float16", "float32", "float64", "uint8", "int32", "int64", "bool"]
_ITEMSIZE = {"float16": 2, "float32": 4, "float64": 8, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}


class Expect(_Frozen):
    """What a correct output looks like."""

    shape: list[Annotated[int, Field(le=MAX_DIM)] | None] | None = Field(
        None, max_length=32, description="exact shape; null entries match any size"
    )
    dtype: Dtype | None = None
    range: tuple[float, float] | None = Field(None, description="[low, high] every value lies in")
    finite: bool = True
    deterministic: bool = Field(True, description="same seed twice gives identical output")
    determinism_atol: float = Field(0.0, ge=0, le=1e6)
    golden: Literal["off", "strict"] = Field(
        "off",
        description="strict: test_determinism also fails when the output differs from the newest stored run's "
        "(results store; off: such drift is reported only)",
    )
    budgets: Budgets = Field(default_factory=Budgets)
    max_output_bytes: OutputBytes | None = Field(
        None, description="refuse larger outputs (default: 4x the expected shape's size, else 4 GiB)"
    )
    quality: dict[str, Bound] = Field(default_factory=dict, description="metric name -> {min, max}")

    def output_limit(self) -> int:
        """Largest output the harness reads before refusing it (an oversized answer is a failure)."""
        if self.max_output_bytes is not None:
            return self.max_output_bytes
        if self.shape is not None and self.dtype is not None and all(d is not None for d in self.shape):
            size = 1
            for dim in self.shape:
                size *= int(dim or 1)
            return 4 * size * _ITEMSIZE[self.dtype] + (1 << 16)
        return 4 << 30

    @field_validator("quality", mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = dict(value)
        for old, new in RENAMED_METRICS.items():
            if old in out:
                if new in out:
                    raise ValueError(f"{old!r} and {new!r} both given: {old!r} is the old name of {new!r}; keep {new!r}")
                out[new] = out.pop(old)
        return out

    @field_validator("shape")
    @classmethod
    def _dims(cls, value: list[int | None] | None) -> list[int | None] | None:
        if value is not None:
            if not value:
                raise ValueError("shape must have at least one dimension")
            bad = [d for d in value if d is not None and d <= 0]
            if bad:
                raise ValueError(f"dimensions must be positive, got {bad}")
        return value

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"range low {value[0]} is greater than high {value[1]}")
        return value


class Case(_Frozen):
    """One generation request (video: prompt; tabular: fit on a dataset, then sample rows)."""

    id: str = Field(pattern=_NAME)
    prompt: str = ""
    seed: int | None = Field(0, ge=0, le=MAX_SEED, description="the generation seed (null: the adapter's choice)")
    params: dict[str, Any] = Field(default_factory=dict, description="passed to generate(**params)")
    dataset: str | None = Field(None, description="tabular: CSV relative to the manifest")
    discrete: list[str] = Field(default_factory=list, description="tabular: numeric columns to treat as discrete")
    target: str | None = Field(None, description="tabular: column predicted for train-synthetic-test-real")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="tabular: share of rows held out for scoring")
    fit: dict[str, Any] = Field(default_factory=dict, description="tabular: fit hyper-parameters")
    expect: dict[str, Any] = Field(default_factory=dict, description="overrides of the model's expect")


class Weights(_Frozen):
    """A checkpoint the model needs from the Hugging Face cache."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    revision: str | None = None


class Requires(_Frozen):
    """What the host must provide; missing pieces skip the model with a reason."""

    gpu: bool = False
    weights: list[Weights] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list, description="environment variables (e.g. API keys)")


class Sandbox(_Frozen):
    """Isolation beyond the default hardening, for untrusted adapters (docker runtime)."""

    network: Literal["bridge", "none"] = Field(
        "bridge",
        description="none: the container gets no network at all; the harness talks to the adapter over a "
        "Unix socket on a mounted directory instead of TCP (native protocol only)",
    )
    build_network: Literal["default", "none"] = Field(
        "default",
        description="network for the image build's RUN steps: default (the engine's bridge, so pip can install) or "
        "none (no network while building: dependencies must come from the context or the base image)",
    )


class CacheMount(_Frozen):
    """A host cache (weights) mounted read-only into the container when it exists on the host."""

    host: str = Field(description="host directory; ~ and $VARS are expanded")
    target: str = Field(pattern=r"^/", description="absolute path inside the container")
    env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="host environment variable that overrides host (e.g. VBENCH_CACHE_DIR)"
    )

    def host_path(self) -> Path:
        """The host directory to mount (the ``env`` variable wins when it is set)."""
        import os

        raw = (os.environ.get(self.env) if self.env else None) or self.host
        return Path(os.path.expandvars(os.path.expanduser(raw)))


ProtocolName = Literal["native", "cog", "oip-v2"]
#: the container port each protocol's server listens on unless the manifest's ``port`` says otherwise
DEFAULT_PORTS: dict[str, int] = {"native": 8080, "cog": 5000, "oip-v2": 8080}


class DeclaredRequirements(_Frozen):
    """What a model needs, declared in the manifest for protocols without a requirements endpoint."""

    gpus: int = Field(0, ge=0, le=64)
    gpu_memory: GpuMemory = 0
    memory: Bytes = 0
    cpus: float = Field(0.0, ge=0, le=512)


class CogOptions(_Frozen):
    """How a case maps onto a Cog predictor's inputs and its output back to a tensor (protocol: cog)."""

    prompt_input: str = Field("prompt", pattern=r"^\w+$", description="the predictor input that gets the case's prompt")
    seed_input: str | None = Field("seed", pattern=r"^\w+$", description="the input that gets the seed (null: none)")
    output: str | None = Field(None, description="key of an object output that holds the video (default: the output itself)")
    dtype: Dtype | None = Field(None, description="dtype for JSON-array outputs (JSON carries none; default: as parsed)")
    requirements: DeclaredRequirements | None = Field(
        None, description="what the model needs (Cog has no requirements endpoint); checked against resources"
    )


class OipOptions(_Frozen):
    """Which model and output tensor of an Open Inference Protocol v2 server (protocol: oip-v2)."""

    model: str | None = Field(None, pattern=r"^[\w.-]+$", description="model name on the server (default: the manifest's name)")
    version: str | None = Field(None, pattern=r"^[\w.-]+$", description="model version (default: the server's choice)")
    prompt_input: str = Field("prompt", description="the input tensor (BYTES) that gets the case's prompt")
    seed_input: str | None = Field("seed", description="the input tensor (INT64) that gets the seed (null: none)")
    output: str | None = Field(None, description="output tensor to read (default: the only one, else 'output')")
    requirements: DeclaredRequirements | None = Field(
        None, description="what the model needs (OIP v2 has no requirements endpoint); checked against resources"
    )


class Manifest(_Frozen):
    """One model (variant) after variant overrides are merged."""

    name: str = Field(pattern=_NAME)
    kind: Literal["model", "metric"] = Field(
        "model", description="metric: a scorer container serving POST /v1/score (README, Metric containers); it has no cases"
    )
    modality: Literal["video", "tabular"] = Field(description="what the model generates (kind: metric: what it scores)")
    description: str = ""
    protocol: ProtocolName = Field("native", description="the API the image serves: native (vdbench adapter), cog, oip-v2")
    adapter: str | None = Field(
        None,
        pattern=r"^[\w./-]+(\.py)?:[A-Za-z_]\w*$",
        validate_default=True,
        description="module:Class (required for native; cog: the predictor, set as COG_PREDICT_TYPE_STUB)",
    )
    port: int | None = Field(None, ge=1, le=65535, description="container port (default 8080 native/oip-v2, 5000 cog)")
    command: list[str] | None = Field(
        None, min_length=1, description="container command (default: the adapter server for native, else the image's CMD)"
    )
    cog: CogOptions | None = Field(None, description="protocol: cog options")
    oip: OipOptions | None = Field(None, description="protocol: oip-v2 options")
    options: dict[str, Any] = Field(default_factory=dict, description="adapter constructor kwargs")
    env: dict[str, str] = Field(default_factory=dict, description="container environment")
    image: ImageSpec
    resources: Resources = Field(default_factory=Resources)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    requires: Requires = Field(default_factory=Requires)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    expect: Expect = Field(default_factory=Expect)
    caches: list[CacheMount] = Field(default_factory=list, description="host caches mounted read-only when present")
    metrics: list[str] = Field(
        default_factory=list, description="metric containers (kind: metric manifests, by name) that score this model's outputs"
    )
    cases: list[Case] = Field(
        default_factory=list, max_length=MAX_CASES, description="generation requests (at least one; none for kind: metric)"
    )
    rounds: int = Field(3, ge=1, le=1000, description="at least this many timed generation rounds (then timing decides)")
    timing: Timing = Field(default_factory=Timing, description="adaptive timed rounds (defaults: --vdbench-* options)")
    load: Load | None = Field(None, description="opt-in throughput scenario (test_throughput[case])")
    warmup_rounds: int = Field(1, ge=0, le=100)
    variants: dict[str, Any] = Field(default_factory=dict, description="name -> overrides")

    @field_validator("image")
    @classmethod
    def _cog_image(cls, value: ImageSpec, info: ValidationInfo) -> ImageSpec:
        protocol = info.data.get("protocol")
        if value.cog is not None and protocol not in (None, "cog"):
            raise ValueError(f"image.cog builds a Cog model's image: set protocol: cog (got {protocol})")
        return value

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str, info: ValidationInfo) -> str:
        if value != "native" and info.data.get("modality") == "tabular":
            raise ValueError(f"tabular models need protocol: native (fit exists only in the native adapter API), got {value}")
        return value

    @field_validator("sandbox")
    @classmethod
    def _sandbox(cls, value: Sandbox, info: ValidationInfo) -> Sandbox:
        protocol = info.data.get("protocol", "native")
        if value.network == "none" and protocol != "native":
            raise ValueError(
                f"network: none needs protocol: native (the harness reaches the adapter over a Unix socket); "
                f"a {protocol} server listens on TCP only"
            )
        return value

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("protocol")  # absent: the protocol itself was invalid (reported there)
        if value is None and protocol == "native":
            raise ValueError("required for protocol: native (module:Class of the adapter)")
        if value is not None and protocol == "oip-v2":
            raise ValueError("protocol oip-v2 takes no adapter: the server names its model (set oip.model)")
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        protocol = info.data.get("protocol")
        if value and protocol not in (None, "native"):
            raise ValueError(
                f"options are the native adapter's constructor kwargs; protocol {protocol} has no adapter to pass them to "
                "(configure the image with env, the requests with the cases' params)"
            )
        return value

    @field_validator("cog", "oip")
    @classmethod
    def _options_match(cls, value: BaseModel | None, info: ValidationInfo) -> BaseModel | None:
        wanted = {"cog": "cog", "oip": "oip-v2"}[str(info.field_name)]
        protocol = info.data.get("protocol")
        if value is not None and protocol is not None and protocol != wanted:
            raise ValueError(f"options for protocol: {wanted}, but this manifest's protocol is {protocol}")
        return value

    @field_validator("cases")
    @classmethod
    def _reserved_inputs(cls, value: list[Case], info: ValidationInfo) -> list[Case]:
        protocol = info.data.get("protocol")
        key = {"cog": "cog", "oip-v2": "oip"}.get(str(protocol))
        if key is None:
            return value
        options = info.data.get(key) or (CogOptions() if key == "cog" else OipOptions())
        reserved = {options.prompt_input: "prompt", options.seed_input: "seed"}
        for case in value:
            for name in case.params:
                if name in reserved:
                    raise ValueError(
                        f"case {case.id!r}: params.{name} is the {protocol} input vdbench fills from the case's "
                        f"{reserved[name]} ({key}.{reserved[name]}_input); set the case's {reserved[name]} instead"
                    )
        return value

    def container_port(self) -> int:
        """The port the model's server listens on inside the container."""
        return self.port or DEFAULT_PORTS[self.protocol]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.kind == "model" and not self.cases:
            raise ValueError("cases: a model needs at least one case")
        if self.kind == "metric" and (self.cases or self.metrics):
            raise ValueError("a kind: metric manifest scores other models' outputs: it takes no cases and no metrics")
        if self.kind == "metric" and self.protocol != "native":
            raise ValueError(
                f"kind: metric needs protocol: native (POST /v1/score of the vdbench adapter SDK), got {self.protocol}"
            )
        counts = collections.Counter(c.id for c in self.cases)  # linear: a suite may have thousands of cases
        dupes = sorted(i for i, n in counts.items() if n > 1)
        if dupes:
            raise ValueError(f"case ids must be unique, repeated: {dupes}")
        if self.resources.gpus and not self.requires.gpu:
            raise ValueError("resources.gpus > 0 needs requires.gpu: true")
        if self.modality == "tabular":
            missing = [c.id for c in self.cases if c.dataset is None]
            if missing:
                raise ValueError(f"tabular cases need a dataset: {missing}")
        for case in self.cases:
            try:
                Expect.model_validate({**self.expect.model_dump(exclude_unset=True), **case.expect})
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"case {case.id!r}: expect.{loc}: {err['msg']}") from None
        return self

    def case_expect(self, case: Case) -> Expect:
        """The model's expectations with the case's overrides applied."""
        if not case.expect:
            return self.expect
        merged = _deep_merge(self.expect.model_dump(exclude_unset=True), case.expect)
        return Expect.model_validate(merged)


class ManifestError(Exception):
    """A manifest problem, already worded as ``file:line: key: message`` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class ModelSpec:
    """A validated (model, variant) pair: what one container runs."""

    path: Path
    variant: str
    manifest: Manifest
    manifest_sha256: str
    root: Path
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    #: folders outside the project that paths may resolve into (--vdbench-allow-path)
    allow: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def id(self) -> str:
        """Test id part, e.g. ``cogvideox-tiny`` (just the name when there are no variants)."""
        return self.manifest.name if self.variant == "default" else f"{self.manifest.name}-{self.variant}"

    def _project_path(self, ref: str, *, folder: bool) -> Path:
        """``ref`` relative to the manifest if it starts with '.', else to the project root, i.e. the
        nearest folder above the manifest that holds it (then the run's root)."""
        if ref.startswith("."):
            return real_path(self.path.parent / ref)
        for ancestor in self.path.parents:
            candidate = ancestor / ref
            if candidate.is_dir() if folder else candidate.is_file():
                return real_path(candidate)
        return real_path(self.root / ref)

    @property
    def context_dir(self) -> Path:
        """``image.context`` (or the folder of ``image.cog``), by the rule of ``_project_path``."""
        cog = self.cog_file
        if cog is not None:
            return cog.parent
        return self._project_path(self.manifest.image.context or ".", folder=True)

    @property
    def cog_file(self) -> Path | None:
        """The cog.yaml the image is built from (``image.cog``), else None."""
        ref = self.manifest.image.cog
        return self._project_path(ref, folder=False) if ref is not None else None

    def resolve(self, relative: str) -> Path:
        """A path from the manifest (datasets, ...) relative to the manifest's folder."""
        return real_path(self.path.parent / relative)

    @property
    def home(self) -> Path:
        """Where the manifest's paths must resolve: the project root, or the manifest's own folder
        for a suite outside the project."""
        root, folder = real_path(self.root), real_path(self.path.parent)
        return root if folder.is_relative_to(root) else folder

    def outside(self, target: Path, key: str) -> str | None:
        """Why ``target`` (symlinks resolved) may not be used, or None when it lies inside
        :attr:`home` or an allowed folder."""
        real = real_path(target)
        roots = [self.home, *(real_path(a) for a in self.allow)]
        if any(real == r or real.is_relative_to(r) for r in roots):
            return None
        return (
            f"{real} is outside the project {self.home}; {key} must resolve inside it (symlinks followed), "
            f"or pass --vdbench-allow-path={real if real.is_dir() else real.parent} to allow that folder"
        )


def real_path(path: Path) -> Path:
    """``path`` with symlinks resolved; a symlink loop comes back unresolved (it is then no file or folder)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def allowed_from_env() -> tuple[Path, ...]:
    """Folders in ``VDBENCH_ALLOW_PATH`` (``os.pathsep``-separated), the flag's environment form."""
    import os

    return tuple(Path(p) for p in os.environ.get("VDBENCH_ALLOW_PATH", "").split(os.pathsep) if p)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line of ``path`` in the YAML ``text`` (the deepest part that exists)."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return node_line(node, path, 1)


def node_line(node: yaml.Node | None, path: Sequence[str | int], line: int) -> int:
    """The 1-based line of ``path`` below the composed YAML ``node`` (``line`` where none of it exists)."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _describe(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = [str(p) for p in err["loc"]]
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        import difflib

        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {loc[-1]!r}{hint} (valid keys: {', '.join(allowed)})"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "int_parsing_size":  # pydantic's words speak of strings even for 1e+30
        return f"number far too large (got {err.get('input')!r}); the manifest reference gives each key's range"
    if "input" in err and "got" not in msg and not isinstance(err["input"], (dict, list)):
        return f"{msg} (got {err['input']!r})"
    return msg


def _fields_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """Field names of the nested model at ``loc`` (for 'valid keys' hints)."""
    current: Any = model
    for part in loc:
        if part.isdigit():
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        annotation = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
        else:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _problem(path: Path, text: str, loc: Sequence[str | int], message: str) -> str:
    line = _line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    key = ".".join(str(p) for p in loc) or "(top level)"
    return f"{where}: {key}: {message}"


def load_manifest(path: Path, root: Path, allow: Sequence[Path] = ()) -> list[ModelSpec]:
    """Parse and validate one manifest into one ``ModelSpec`` per variant (sorted by variant).

    ``allow``: folders outside the project its paths may point into (besides ``VDBENCH_ALLOW_PATH``).

    Raises :class:`ManifestError` with every problem as ``file:line: key: message``.
    """
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                [f"{path}:1: (top level): larger than {format_size(MAX_MANIFEST_BYTES)}; split the model's cases"]
            )
        raw_bytes = path.read_bytes()
        text = raw_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([f"{path}:1: (file): cannot read manifest: {_os_reason(exc)}"]) from None
    try:
        data, _ = load_checked(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ManifestError([f"{where}: invalid YAML: {problem}"]) from None
    except YamlRefused as exc:
        key = ".".join(str(p) for p in exc.loc) or "(top level)"
        raise ManifestError([f"{path}:{exc.line}: {key}: {exc.message}"]) from None
    except RecursionError:  # pragma: no cover - the walk bounds nesting before construction
        raise ManifestError([f"{path}: (top level): nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ManifestError([f"{path}:1: (top level): a manifest must be a mapping, got {type(data).__name__}"])
    variants = data.get("variants", {}) or {}
    if not isinstance(variants, dict) or not all(isinstance(v, dict) or v is None for v in variants.values()):
        raise ManifestError([_problem(path, text, ["variants"], "must map variant names to override mappings")])
    bad_names = [n for n in variants if not re.match(_NAME, str(n))]
    if bad_names:
        raise ManifestError([_problem(path, text, ["variants", str(bad_names[0])], f"variant name must match {_NAME}")])
    digest = hashlib.sha256(raw_bytes).hexdigest()
    base = {k: v for k, v in data.items() if k != "variants"}
    specs: list[ModelSpec] = []
    problems: list[str] = []
    for variant in sorted(variants) or ["default"]:
        override = variants.get(variant) or {}
        if "variants" in override or "name" in override:
            key = "variants" if "variants" in override else "name"
            problems.append(_problem(path, text, ["variants", variant, key], "cannot be overridden in a variant"))
            continue
        merged = _deep_merge(base, override)
        merged["variants"] = {k: None for k in variants}
        found: list[tuple[list[str | int], str]] = list(_json_problems(merged))
        try:
            manifest = Manifest.model_validate(merged)
        except ValidationError as exc:
            said = [[str(p) for p in loc] for loc, _ in found]  # a non-JSON value said once, not in pydantic's words too
            for err in exc.errors():
                loc = list(err["loc"])
                if not any([str(p) for p in loc[: len(prefix)]] == prefix for prefix in said):
                    found.append((loc, _describe(err, Manifest)))
        for loc, message in found:
            full_loc: list[str | int] = (["variants", variant] if _has_path(override, loc) else []) + loc
            problems.append(_problem(path, text, full_loc, message))
        if found:
            continue
        specs.append(
            ModelSpec(
                path=path,
                variant=variant,
                manifest=manifest,
                manifest_sha256=digest,
                root=root,
                raw=merged,
                allow=(*allow, *allowed_from_env()),
            )
        )
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    return specs


def _os_reason(exc: Exception) -> str:
    """One line for an unreadable manifest: a symlink loop says so instead of errno 40."""
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "it is a symlink loop (a link that points back at itself through other links)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).splitlines()[0]


def _json_problems(merged: Mapping[str, Any]) -> Iterator[tuple[list[str | int], str]]:
    """Values that go to the adapter as JSON (options, the cases' params and fit) must be JSON."""
    yield from non_json(merged.get("options"), ["options"])
    cases = merged.get("cases")
    for i, case in enumerate(cases if isinstance(cases, list) else []):
        if isinstance(case, dict):
            for key in ("params", "fit"):
                yield from non_json(case.get(key), ["cases", i, key])


def _has_path(data: Any, loc: Sequence[str | int]) -> bool:
    if not loc:
        return False
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[int(part)]
        else:
            return False
    return True


def discover_manifests(paths: Iterable[Path]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under ``paths`` (files are taken as they are), sorted, unique."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file() or path.is_symlink():
            found.add(_resolved(path))
            continue
        for pattern in ("*.yaml", "*.yml"):
            for candidate in path.rglob(pattern):
                rel = candidate.relative_to(path).parts
                if not any(part.startswith((".", "_")) for part in rel):
                    found.add(_resolved(candidate))
    return sorted(found)


def _resolved(path: Path) -> Path:
    """The real file (a symlinked duplicate is the same manifest, read once); a loop stays as it is:
    reading it then fails with one line saying it is a symlink loop."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return path.absolute()


def matches(spec: ModelSpec, patterns: Iterable[str]) -> bool:
    """Whether a glob of ``patterns`` matches the model's name or id (``--vdbench-model``, ``vdbench_models``, the CLI)."""
    return any(fnmatch.fnmatchcase(spec.name, p) or fnmatch.fnmatchcase(spec.id, p) for p in patterns)
