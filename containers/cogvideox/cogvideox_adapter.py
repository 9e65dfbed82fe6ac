"""CogVideoX (text-to-video, Yang et al. 2024) behind the vdbench adapter contract, via diffusers.

Two variants, chosen by the manifest's ``options: {variant: ...}``:

* ``tiny`` (CPU, CI): the real :class:`diffusers.CogVideoXPipeline` assembled from tiny
  random-weight components (a 1-layer ``CogVideoXTransformer3DModel`` with 4 heads of 8 dims, an
  8-channel ``AutoencoderKLCogVideoX`` with 4x temporal / 8x spatial compression, a 2-layer T5
  encoder with ``d_model`` 32, ``CogVideoXDDIMScheduler``). Every component is built after
  ``torch.manual_seed`` with a fixed :data:`WEIGHT_SEED`, so every build and run has the same model.
  The prompt goes through the pipeline's own text path: a T5 (Unigram) tokenizer built in memory
  from the word + character vocabulary in :func:`build_t5_tokenizer` (nothing is downloaded), then
  the T5 encoder. Untrained weights: the videos are structured noise, but a different prompt gives a
  different video and the same prompt and seed give the same bytes (fixed thread count, ``eval()``,
  a ``torch.Generator`` seeded from ``seed``).
* ``full`` (GPU): ``CogVideoXPipeline.from_pretrained(repo, local_files_only=True)`` from the mounted
  Hugging Face cache (``HF_HUB_CACHE``), fp16 for CogVideoX-2b as its model card recommends (bf16 for
  the 5b checkpoints), VAE tiling on; 720x480, 49 frames, 50 steps, guidance 6 by default.

Output: float32 ``[frames, 3, height, width]`` in [0, 1].
"""

from __future__ import annotations

import os
import string
from typing import Any

import numpy as np
import torch

from pytest_vdbench.adapter import ModelAdapter

WEIGHT_SEED = 20241104
TEXT_TOKENS = 32  # tiny: tokenizer length == transformer max_text_seq_length
FULL_REPO = "THUDM/CogVideoX-2b"

#: params the adapter accepts besides ``seed``, with each variant's defaults
DEFAULTS = {
    "tiny": {"frames": 9, "height": 32, "width": 32, "steps": 2, "guidance_scale": 1.0, "negative_prompt": ""},
    "full": {"frames": 49, "height": 480, "width": 720, "steps": 50, "guidance_scale": 6.0, "negative_prompt": ""},
}

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
WORDS = _WORD_LIST.split()


def build_t5_tokenizer() -> Any:
    """A T5 tokenizer (Unigram, pad id 0, eos id 1, unk id 2) built in memory: no files, no hub.

    transformers 5 builds a ``T5Tokenizer`` from a ``(piece, log-probability)`` list. Word pieces
    score higher than characters, so known words are single tokens and anything else spells out.
    Every id is below the tiny T5 encoder's vocabulary size (1000).
    """
    from transformers import T5Tokenizer

    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0 - 0.001 * i) for i, w in enumerate(WORDS)]
    vocab += [("\u2581" + c, -4.5) for c in chars] + [(c, -5.0) for c in chars]
    # model_max_length only sets the warning threshold; the pipeline truncates to max_length itself
    tokenizer = T5Tokenizer(
        vocab=vocab, extra_ids=0, model_max_length=4096, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    return tokenizer


def to_video(frames: Any) -> np.ndarray:
    """Pipeline output ``[1, F, C, H, W]`` (``output_type="pt"``) -> float32 ``[F, C, H, W]`` in [0, 1]."""
    video = frames[0] if frames.ndim == 5 else frames
    video = video.detach().to("cpu", torch.float32) if isinstance(video, torch.Tensor) else torch.as_tensor(video)
    if video.ndim != 4 or video.shape[1] not in (1, 3):
        raise ValueError(f"expected [frames, channels, height, width], got {list(video.shape)}")
    return video.float().clamp(0.0, 1.0).contiguous().numpy()


def parse_params(variant: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Validated ``(seed, params)``: unknown names and non-integer sizes are errors; seed None means 0."""
    params = dict(params)
    seed = params.pop("seed", None)
    seed = 0 if seed is None else int(seed)
    defaults = DEFAULTS[variant]
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)}; CogVideoX accepts seed, {', '.join(defaults)}")
    p = {**defaults, **params}
    for key in ("frames", "height", "width", "steps"):
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {p[key]!r}")
    if (p["frames"] - 1) % 4:
        raise ValueError(f"frames must be 4k+1 (the VAE compresses time 4x), got {p['frames']}")
    if p["height"] % 16 or p["width"] % 16:
        raise ValueError(f"height and width must be multiples of 16, got {p['height']}x{p['width']}")
    p["guidance_scale"] = float(p["guidance_scale"])
    return seed, p


class CogVideoX(ModelAdapter):
    """CogVideoX through ``diffusers.CogVideoXPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    libraries = ("torch", "diffusers", "transformers", "numpy")

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, dtype: str = "float16", **options: Any) -> None:
        if variant not in DEFAULTS:
            raise ValueError(f"variant must be one of {sorted(DEFAULTS)}, got {variant!r}")
        if options:
            raise TypeError(f"unknown options {sorted(options)}; CogVideoX takes variant, repo, dtype")
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
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXPipeline,
            CogVideoXTransformer3DModel,
        )
        from transformers import T5Config, T5EncoderModel

        torch.manual_seed(WEIGHT_SEED)
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=4,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            time_embed_dim=2,
            text_embed_dim=32,
            num_layers=1,
            sample_width=4,  # latent size of the 32x32 default (8x spatial compression)
            sample_height=4,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=TEXT_TOKENS,
        )
        torch.manual_seed(WEIGHT_SEED + 1)
        vae = AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        )
        torch.manual_seed(WEIGHT_SEED + 2)
        text_encoder = T5EncoderModel(
            T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, dropout_rate=0.0)
        )
        pipe = CogVideoXPipeline(
            tokenizer=build_t5_tokenizer(),
            text_encoder=text_encoder.eval(),
            vae=vae.eval(),
            transformer=transformer.eval(),
            scheduler=CogVideoXDDIMScheduler(),
        )
        return pipe

    def _full(self) -> Any:
        from diffusers import CogVideoXPipeline

        if not torch.cuda.is_available():
            raise RuntimeError("the full CogVideoX variant needs a CUDA GPU (torch.cuda.is_available() is False)")
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        pipe = CogVideoXPipeline.from_pretrained(self.repo, torch_dtype=dtype, local_files_only=True)
        pipe.vae.enable_tiling()
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
                num_inference_steps=p["steps"],
                guidance_scale=p["guidance_scale"],
                generator=generator,
                output_type="pt",
                **extra,
            )
        return to_video(out.frames)

    def get_requirements(self) -> dict[str, Any]:
        if self.variant == "tiny":
            # measured peak container memory ~420 MiB (imports dominate); 1 GiB leaves headroom
            return {"gpus": 0, "gpu_memory": 0, "memory": 1024**3, "cpus": 1}
        # CogVideoX-2b model card: ~18 GB in fp16 without CPU offload (VAE tiling on)
        return {"gpus": 1, "gpu_memory": 18 * 1024**3, "memory": 24 * 1024**3, "cpus": 4}

    def health_check(self) -> bool:
        return self.pipe is not None

    def metadata(self) -> dict[str, Any]:
        info: dict[str, Any] = {"variant": self.variant, "pipeline": "diffusers.CogVideoXPipeline", "threads": self.threads}
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
