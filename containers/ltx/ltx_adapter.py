"""LTX-Video (Lightricks, text-to-video) behind the vdbench adapter contract, via diffusers.

Two variants, chosen by the manifest's ``options: {variant: ...}``:

* ``tiny`` (CPU, CI): the real :class:`diffusers.LTXPipeline` assembled from tiny random-weight
  components: a 1-layer ``LTXVideoTransformer3DModel`` (4 heads of 8 dims, patch size 1), an 8-channel
  ``AutoencoderKLLTXVideo`` that compresses 4x in space and time (causal encoder, non-causal decoder),
  ``FlowMatchEulerDiscreteScheduler`` and a 2-layer T5 encoder with ``d_model`` 32. Each component
  is built after ``torch.manual_seed`` with a fixed :data:`WEIGHT_SEED`. The prompt takes the
  pipeline's own text path: a T5 (Unigram) tokenizer built in memory from the word + character
  vocabulary in :func:`build_t5_tokenizer` (nothing is downloaded), the T5 encoder, and the
  attention mask the pipeline derives from the padding. Untrained weights: the frames are structured
  noise, but a different prompt gives a different video and the same prompt and seed the same bytes.
* ``full`` (GPU): ``LTXPipeline.from_pretrained(repo, local_files_only=True)`` from the mounted
  Hugging Face cache, bf16 as the model card uses; 704x480, 161 frames (8k+1), 50 steps, guidance 3,
  decode timestep 0.03 / decode noise scale 0.025 by default (the model card's example).

Output: float32 ``[frames, 3, height, width]`` in [0, 1].
"""

from __future__ import annotations

import os
import string
from typing import Any

import numpy as np
import torch

from pytest_vdbench.adapter import ModelAdapter

WEIGHT_SEED = 20241122
TEXT_TOKENS = 32
FULL_REPO = "Lightricks/LTX-Video"

DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "frames": 9,
        "height": 32,
        "width": 32,
        "steps": 2,
        "guidance_scale": 1.0,
        "negative_prompt": "",
        "frame_rate": 25,
        "decode_timestep": 0.0,
        "decode_noise_scale": 0.0,
    },
    "full": {
        "frames": 161,
        "height": 480,
        "width": 704,
        "steps": 50,
        "guidance_scale": 3.0,
        "negative_prompt": "worst quality, inconsistent motion, blurry, jittery, distorted",
        "frame_rate": 25,
        "decode_timestep": 0.03,
        "decode_noise_scale": 0.025,
    },
}
#: (frames step, spatial multiple): tiny VAE compresses 4x in time and space; LTX-Video 8x / 32x
GRID = {"tiny": (4, 4), "full": (8, 32)}

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
WORDS = _WORD_LIST.split()


def build_t5_tokenizer() -> Any:
    """A T5 tokenizer (Unigram, pad id 0, eos id 1, unk id 2) built in memory: no files, no hub.

    Word pieces ("▁word") score higher than single characters, so known words are one token and
    anything else is spelled out; every id is below the tiny T5 encoder's vocabulary size (1000).
    """
    from transformers import T5Tokenizer

    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0 - 0.001 * i) for i, w in enumerate(WORDS)]
    vocab += [("\u2581" + c, -4.5) for c in chars] + [(c, -5.0) for c in chars]
    # model_max_length only sets the warning threshold; the pipeline truncates to its max_sequence_length
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=4096, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def to_video(frames: Any) -> np.ndarray:
    """Pipeline output ``[1, F, C, H, W]`` (``output_type="pt"``) -> float32 ``[F, C, H, W]`` in [0, 1]."""
    video = frames[0] if frames.ndim == 5 else frames
    video = video.detach().to("cpu", torch.float32) if isinstance(video, torch.Tensor) else torch.as_tensor(video)
    if video.ndim != 4 or video.shape[1] not in (1, 3):
        raise ValueError(f"expected [frames, channels, height, width], got {list(video.shape)}")
    return video.float().clamp(0.0, 1.0).contiguous().numpy()


def parse_params(variant: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Validated ``(seed, params)``: unknown names and sizes off the model's grid are errors."""
    params = dict(params)
    seed = params.pop("seed", None)
    seed = 0 if seed is None else int(seed)
    defaults = DEFAULTS[variant]
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)}; LTX-Video accepts seed, {', '.join(defaults)}")
    p = {**defaults, **params}
    for key in ("frames", "height", "width", "steps", "frame_rate"):
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {p[key]!r}")
    frame_step, multiple = GRID[variant]
    if (p["frames"] - 1) % frame_step:
        raise ValueError(f"frames must be {frame_step}k+1, got {p['frames']}")
    if p["height"] % multiple or p["width"] % multiple:
        raise ValueError(f"height and width must be multiples of {multiple}, got {p['height']}x{p['width']}")
    for key in ("guidance_scale", "decode_timestep", "decode_noise_scale"):
        p[key] = float(p[key])
    return seed, p


class LTXVideo(ModelAdapter):
    """LTX-Video through ``diffusers.LTXPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    libraries = ("torch", "diffusers", "transformers", "numpy")

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, dtype: str = "bfloat16", **options: Any) -> None:
        if variant not in DEFAULTS:
            raise ValueError(f"variant must be one of {sorted(DEFAULTS)}, got {variant!r}")
        if options:
            raise TypeError(f"unknown options {sorted(options)}; LTXVideo takes variant, repo, dtype")
        super().__init__(variant=variant, repo=repo, dtype=dtype)
        self.variant, self.repo, self.dtype = variant, repo, dtype
        self.pipe: Any = None
        self.device = "cpu"
        self.threads = 0

    def load(self) -> None:
        self.threads = int(os.environ.get("VDBENCH_THREADS", "1"))
        torch.set_num_threads(self.threads)
        self.pipe = self._tiny() if self.variant == "tiny" else self._full()
        self.pipe.set_progress_bar_config(disable=True)

    def _tiny(self) -> Any:
        from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
        from transformers import T5Config, T5EncoderModel

        torch.manual_seed(WEIGHT_SEED)
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=32,
        )
        torch.manual_seed(WEIGHT_SEED + 1)
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        vae.use_framewise_encoding = False
        vae.use_framewise_decoding = False
        torch.manual_seed(WEIGHT_SEED + 2)
        text_encoder = T5EncoderModel(
            T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, dropout_rate=0.0)
        )
        return LTXPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(),
            vae=vae.eval(),
            text_encoder=text_encoder.eval(),
            tokenizer=build_t5_tokenizer(),
            transformer=transformer.eval(),
        )

    def _full(self) -> Any:
        from diffusers import LTXPipeline

        if not torch.cuda.is_available():
            raise RuntimeError("the full LTX-Video variant needs a CUDA GPU (torch.cuda.is_available() is False)")
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        pipe = LTXPipeline.from_pretrained(self.repo, torch_dtype=dtype, local_files_only=True)
        self.device = "cuda"
        return pipe.to("cuda")

    def generate(self, prompt: str, **params: Any) -> Any:
        if self.pipe is None:
            raise RuntimeError("generate() called before load()")
        seed, p = parse_params(self.variant, params)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        extra = {"max_sequence_length": TEXT_TOKENS} if self.variant == "tiny" else {}
        with torch.inference_mode():
            out = self.pipe(
                prompt=prompt,
                negative_prompt=p["negative_prompt"] if p["guidance_scale"] > 1.0 else None,
                num_frames=p["frames"],
                height=p["height"],
                width=p["width"],
                frame_rate=p["frame_rate"],
                num_inference_steps=p["steps"],
                guidance_scale=p["guidance_scale"],
                decode_timestep=p["decode_timestep"],
                decode_noise_scale=p["decode_noise_scale"],
                generator=generator,
                output_type="pt",
                **extra,
            )
        return to_video(out.frames)

    def get_requirements(self) -> dict[str, Any]:
        if self.variant == "tiny":
            return {"gpus": 0, "gpu_memory": 0, "memory": 1024**3, "cpus": 1}
        # 2B transformer + T5-XXL encoder in bf16, no offload
        return {"gpus": 1, "gpu_memory": 24 * 1024**3, "memory": 32 * 1024**3, "cpus": 4}

    def health_check(self) -> bool:
        return self.pipe is not None

    def metadata(self) -> dict[str, Any]:
        info: dict[str, Any] = {"variant": self.variant, "pipeline": "diffusers.LTXPipeline", "threads": self.threads}
        if self.variant == "tiny":
            info["weights"] = f"random, torch.manual_seed({WEIGHT_SEED}..{WEIGHT_SEED + 2}); untrained"
            info["tokenizer"] = f"in-memory T5 Unigram tokenizer ({len(WORDS)} words + characters), {TEXT_TOKENS} tokens"
        else:
            info["weights"] = f"{self.repo} ({self.dtype}) from the Hugging Face cache"
        if self.pipe is not None:
            info["parameters"] = {
                name: sum(p.numel() for p in getattr(self.pipe, name).parameters())
                for name in ("transformer", "vae", "text_encoder")
            }
        info["defaults"] = dict(DEFAULTS[self.variant])
        return info
