"""What the diffusers video adapters share: a ``ModelAdapter`` skeleton, parameter checks, the tiny T5 text path.

The model images (``containers/{cogvideox,ltx,wan,svd,animatediff}``) each build their own pipeline;
the rest is here because the SDK is the one code every image has (a model's build context is its own
folder). Like the rest of the SDK this module imports numpy only: torch and transformers are imported
inside the functions that need them, so it still imports in an image without them, on Python 3.8+.

A subclass of :class:`DiffusersVideoAdapter` declares its variants' defaults and size grids, its
requirements and metadata facts as class attributes, and implements :meth:`~DiffusersVideoAdapter.tiny_pipeline`
and :meth:`~DiffusersVideoAdapter.full_pipeline`; :meth:`~DiffusersVideoAdapter.pipeline_args` maps the
checked params to the pipeline's call when they are not the text-to-video ones.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from pytest_vdbench.adapter.base import ModelAdapter

__all__ = [
    "T5_WORDS",
    "DiffusersVideoAdapter",
    "Grid",
    "build_t5_encoder",
    "build_t5_tokenizer",
    "parse_params",
    "t5_tokenizer_note",
    "to_video",
    "torch_dtype",
]

# A small English word list (as whole "▁word" pieces) plus single characters as fallback pieces,
# so any ASCII prompt tokenizes without <unk> and different prompts give different ids.
_WORD_LIST = (
    "a an the of in on at to and with by from for is are it its this that red orange yellow green blue "
    "purple pink white black gray grey brown gold silver fox dog cat bird fish horse cow bear lion tiger "
    "person man woman child people car boat train plane city street road house tree trees flower flowers "
    "grass field forest mountain mountains hill river lake sea ocean beach wave waves sky cloud clouds sun "
    "moon star stars rain snow fire water light lights neon night day morning evening sunset sunrise "
    "running walking flying swimming dancing jumping driving falling slow fast slowly quickly camera "
    "shot close up wide view aerial over under through across into around big small tall little old "
    "new beautiful dark bright warm cold"
)
#: the whole-word pieces of :func:`build_t5_tokenizer`, in id order (ids 4, 5, ...)
T5_WORDS = _WORD_LIST.split()


def build_t5_tokenizer() -> Any:
    """A T5 tokenizer (Unigram, pad id 0, eos id 1, unk id 2) built in memory: no files, no hub.

    transformers 5 builds a ``T5Tokenizer`` from a ``(piece, log-probability)`` list. Word pieces
    ("▁word") score higher than single characters, so known words are one token and anything else is
    spelled out; every id is below the vocabulary size of :func:`build_t5_encoder` (1000).
    """
    from transformers import T5Tokenizer  # type: ignore[import-not-found,unused-ignore]

    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0 - 0.001 * i) for i, w in enumerate(T5_WORDS)]
    vocab += [("\u2581" + c, -4.5) for c in chars] + [(c, -5.0) for c in chars]
    # model_max_length only sets the warning threshold; the pipeline truncates to its max_sequence_length
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=4096, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def build_t5_encoder() -> Any:
    """The tiny T5 text encoder that goes with :func:`build_t5_tokenizer`: 2 layers, ``d_model`` 32, 1000 ids.

    Random weights from torch's global generator: seed it first (``torch.manual_seed``).
    """
    from transformers import T5Config, T5EncoderModel  # type: ignore[import-not-found,unused-ignore]

    return T5EncoderModel(T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, dropout_rate=0.0))


def t5_tokenizer_note(tokens: int) -> str:
    """How :func:`build_t5_tokenizer` is described in an adapter's metadata."""
    return f"in-memory T5 Unigram tokenizer ({len(T5_WORDS)} words + characters), {tokens} tokens"


def to_video(frames: Any) -> np.ndarray:
    """Pipeline output ``[1, F, C, H, W]`` (``output_type="pt"``) -> float32 ``[F, C, H, W]`` in [0, 1]."""
    import torch

    video = frames[0] if frames.ndim == 5 else frames
    video = video.detach().to("cpu", torch.float32) if isinstance(video, torch.Tensor) else torch.as_tensor(video)
    if video.ndim != 4 or video.shape[1] not in (1, 3):
        raise ValueError(f"expected [frames, channels, height, width], got {list(video.shape)}")
    return video.float().clamp(0.0, 1.0).contiguous().numpy()


def torch_dtype(name: str) -> Any:
    """``"float16"`` or ``"bfloat16"`` as the torch dtype (a manifest's ``dtype`` option)."""
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[name]


@dataclass(frozen=True)
class Grid:
    """The sizes a pipeline variant accepts (its VAE's and patching's compression).

    ``height`` and ``width`` must be multiples of ``multiple``; with ``frame_step``, ``frames`` must be
    ``frame_step * k + 1``; with ``max_frames``, at most that. ``frames_note`` (e.g. ``" (the VAE
    compresses time 4x)"``) ends the frames error message.
    """

    #: height and width must be multiples of this
    multiple: int
    #: frames must be ``frame_step * k + 1`` (None: any count)
    frame_step: Optional[int] = None
    #: at most this many frames (None: no cap)
    max_frames: Optional[int] = None
    #: ends the frames error message, e.g. " (the VAE compresses time 4x)"
    frames_note: str = ""


def parse_params(
    model: str,
    defaults: Mapping[str, Any],
    grid: Grid,
    params: Mapping[str, Any],
    integers: Sequence[str] = ("frames", "height", "width", "steps"),
    floats: Sequence[str] = ("guidance_scale",),
) -> Tuple[int, Dict[str, Any]]:
    """Validated ``(seed, params)``: ``params`` over ``defaults``; seed None means 0.

    Names outside ``defaults`` are errors (the message names ``model`` and what it accepts), so are
    ``integers`` that are not positive integers and sizes off ``grid``; ``floats`` become floats.
    """
    params = dict(params)
    seed = params.pop("seed", None)
    seed = 0 if seed is None else int(seed)
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)}; {model} accepts seed, {', '.join(defaults)}")
    p = {**defaults, **params}
    for key in integers:
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {p[key]!r}")
    if grid.frame_step is not None and (p["frames"] - 1) % grid.frame_step:
        raise ValueError(f"frames must be {grid.frame_step}k+1{grid.frames_note}, got {p['frames']}")
    if grid.max_frames is not None and p["frames"] > grid.max_frames:
        raise ValueError(f"frames must be at most {grid.max_frames}{grid.frames_note}, got {p['frames']}")
    if p["height"] % grid.multiple or p["width"] % grid.multiple:
        raise ValueError(f"height and width must be multiples of {grid.multiple}, got {p['height']}x{p['width']}")
    for key in floats:
        p[key] = float(p[key])
    return seed, p


class DiffusersVideoAdapter(ModelAdapter):
    """A diffusers video pipeline in two variants: ``tiny`` (random weights, CPU) and ``full`` (GPU).

    Subclasses set the class attributes below and build the pipelines; this class checks the
    constructor's options and the params, seeds the generator, runs the pipeline under
    ``torch.inference_mode`` and converts its frames with :func:`to_video`.
    """

    libraries: "tuple[str, ...]" = ("torch", "diffusers", "transformers", "numpy")

    #: the model's name in error messages ("the full <title> variant needs a CUDA GPU")
    title: ClassVar[str]
    #: the pipeline class, as metadata reports it: ``"diffusers.CogVideoXPipeline"``
    pipeline: ClassVar[str]
    #: params the adapter accepts besides ``seed``, with each variant's defaults
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]]
    #: each variant's size grid
    grids: ClassVar[Mapping[str, Grid]]
    #: params that must be positive integers
    integer_params: ClassVar[Sequence[str]] = ("frames", "height", "width", "steps")
    #: params converted to float
    float_params: ClassVar[Sequence[str]] = ("guidance_scale",)
    #: tiny: ``torch.manual_seed(weight_seed + i)`` before building the i-th of ``seeded_components``
    weight_seed: ClassVar[int]
    #: how many components tiny_pipeline() builds under consecutive seeds
    seeded_components: ClassVar[int] = 3
    #: tiny: the tokenizer as metadata describes it ("" for none)
    tokenizer: ClassVar[str] = ""
    #: tiny: ``max_sequence_length`` for the pipeline call (None: the pipeline's own)
    max_sequence_length: ClassVar[Optional[int]] = None
    #: full: where the weights come from, formatted with the constructor's options
    full_weights: ClassVar[str] = "{repo} ({dtype}) from the Hugging Face cache"
    #: pipeline attributes whose parameters metadata counts
    components: ClassVar[Sequence[str]] = ("transformer", "vae", "text_encoder")
    #: metadata facts reported after ``pipeline``
    facts: ClassVar[Mapping[str, str]] = {}
    #: the tiny pipelines peak at 310-460 MiB in the container (imports dominate): 1 GiB leaves headroom
    tiny_requirements: ClassVar[Mapping[str, int]] = {"gpus": 0, "gpu_memory": 0, "memory": 1024**3, "cpus": 1}
    #: full: what get_requirements() declares (gpus, gpu_memory, memory, cpus), checked against the manifest
    full_requirements: ClassVar[Mapping[str, int]]

    def __init__(self, variant: str, unknown: Mapping[str, Any], **options: Any) -> None:
        """``options`` are the subclass's named options (reported in this order), ``unknown`` the rest."""
        if variant not in self.defaults:
            raise ValueError(f"variant must be one of {sorted(self.defaults)}, got {variant!r}")
        if unknown:
            names = ", ".join(["variant", *options])
            raise TypeError(f"unknown options {sorted(unknown)}; {type(self).__name__} takes {names}")
        super().__init__(variant=variant, **options)
        self.variant = variant
        self.pipe: Any = None
        self.device = "cpu"
        self.threads = 0

    @classmethod
    def parse_params(cls, variant: str, params: Mapping[str, Any]) -> Tuple[int, Dict[str, Any]]:
        """Validated ``(seed, params)`` for ``variant`` (see :func:`parse_params`)."""
        return parse_params(cls.title, cls.defaults[variant], cls.grids[variant], params, cls.integer_params, cls.float_params)

    def tiny_pipeline(self) -> Any:
        """The pipeline from tiny seeded random-weight components (CPU)."""
        raise NotImplementedError

    def full_pipeline(self) -> Any:
        """The published pipeline from the Hugging Face cache, before it moves to the GPU."""
        raise NotImplementedError

    def pipeline_args(self, prompt: str, p: Mapping[str, Any]) -> Dict[str, Any]:
        """The pipeline's call arguments for ``prompt`` and checked params (text-to-video by default)."""
        args = {
            "prompt": prompt,
            "negative_prompt": p["negative_prompt"] if p["guidance_scale"] > 1.0 else None,
            "num_frames": p["frames"],
            "height": p["height"],
            "width": p["width"],
            "num_inference_steps": p["steps"],
            "guidance_scale": p["guidance_scale"],
        }
        if self.variant == "tiny" and self.max_sequence_length is not None:
            args["max_sequence_length"] = self.max_sequence_length
        return args

    def load(self) -> None:
        import torch

        self.threads = int(os.environ.get("VDBENCH_THREADS", "1"))
        torch.set_num_threads(self.threads)
        if self.variant == "tiny":
            self.pipe = self.tiny_pipeline()
        else:
            if not torch.cuda.is_available():
                raise RuntimeError(f"the full {self.title} variant needs a CUDA GPU (torch.cuda.is_available() is False)")
            pipe = self.full_pipeline()
            self.device = "cuda"
            self.pipe = pipe.to("cuda")
        self.pipe.set_progress_bar_config(disable=True)

    def generate(self, prompt: str, **params: Any) -> Any:
        import torch

        if self.pipe is None:
            raise RuntimeError("generate() called before load()")
        seed, p = self.parse_params(self.variant, params)
        args = self.pipeline_args(prompt, p)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.inference_mode():
            out = self.pipe(**args, generator=generator, output_type="pt")
        return to_video(out.frames)

    def get_requirements(self) -> Dict[str, Any]:
        return dict(self.tiny_requirements if self.variant == "tiny" else self.full_requirements)

    def health_check(self) -> bool:
        return self.pipe is not None

    def metadata(self) -> Dict[str, Any]:
        info: Dict[str, Any] = {"variant": self.variant, "pipeline": self.pipeline, **self.facts, "threads": self.threads}
        if self.variant == "tiny":
            last = self.weight_seed + self.seeded_components - 1
            info["weights"] = f"random, torch.manual_seed({self.weight_seed}..{last}); untrained"
            if self.tokenizer:
                info["tokenizer"] = self.tokenizer
        else:
            info["weights"] = self.full_weights.format(**self.options)
        if self.pipe is not None:
            info["parameters"] = {name: sum(p.numel() for p in getattr(self.pipe, name).parameters()) for name in self.components}
        info["defaults"] = dict(self.defaults[self.variant])
        return info
