"""AnimateDiff (Guo et al. 2023, text-to-video) behind the vdbench adapter contract, via diffusers.

This image runs an older stack than the other diffusers models (diffusers 0.30 + transformers
4.44, see requirements.txt): AnimateDiff is the model that many fine-tuned Stable Diffusion 1.5
checkpoints and motion LoRAs were published against, and it still runs there. The code sticks to
APIs that 0.30 has (``AnimateDiffPipeline``, ``MotionAdapter``, ``UNet2DConditionModel``).

Two variants, chosen by the manifest's ``options: {variant: ...}``:

* ``tiny`` (CPU, CI): the real :class:`diffusers.AnimateDiffPipeline` assembled from tiny
  random-weight components: a ``UNet2DConditionModel`` (32/64 channels, cross-attention to the text)
  that the pipeline turns into a ``UNetMotionModel`` with a ``MotionAdapter`` (temporal attention
  after every block, 4 heads), an ``AutoencoderKL`` (2x spatial compression), a 2-layer CLIP text
  encoder with width 32 and SD 1.5's ``DDIMScheduler`` settings. Each component is built after
  ``torch.manual_seed`` with a fixed :data:`WEIGHT_SEED`. The prompt takes the pipeline's own text
  path: a byte-level ``CLIPTokenizer`` built from a vocabulary written locally by
  :func:`build_clip_tokenizer` (256 byte symbols and their end-of-word forms, no merges: every
  character is one token; 77 tokens as in SD), then the CLIP encoder. Nothing is downloaded.
  Untrained weights: the frames are structured noise, but a different prompt gives a different
  video and the same prompt and seed the same bytes.
* ``full`` (GPU): ``MotionAdapter.from_pretrained(motion_repo)`` + ``AnimateDiffPipeline.from_pretrained
  (base_repo, motion_adapter=...)``, both ``local_files_only=True`` from the mounted Hugging Face
  cache, fp16, with the DDIM settings of diffusers' AnimateDiff guide (linear betas, no sample
  clipping, linspace spacing, steps offset 1); 512x512, 16 frames, 25 steps, guidance 7.5.

Output: float32 ``[frames, 3, height, width]`` in [0, 1].
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import torch

from pytest_vdbench.adapter import ModelAdapter

WEIGHT_SEED = 20230710
MOTION_REPO = "guoyww/animatediff-motion-adapter-v1-5-2"
BASE_REPO = "emilianJR/epiCRealism"

DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"frames": 8, "height": 32, "width": 32, "steps": 2, "guidance_scale": 1.0, "negative_prompt": ""},
    "full": {
        "frames": 16,
        "height": 512,
        "width": 512,
        "steps": 25,
        "guidance_scale": 7.5,
        "negative_prompt": "bad quality, worse quality",
    },
}
#: spatial multiple: the tiny VAE downsamples 2x, SD 1.5's VAE 8x (and its UNet 8x more)
MULTIPLE = {"tiny": 4, "full": 64}
#: the motion modules' positional encoding covers this many frames (MotionAdapter's max_seq_length)
MAX_FRAMES = 32


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character map, as a list indexed by byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def build_clip_tokenizer(directory: str) -> Any:
    """A byte-level ``CLIPTokenizer`` from a locally written ``vocab.json`` and a header-only ``merges.txt``.

    Ids: 0-255 the byte symbols, 256-511 the same symbols ending a word (``</w>``),
    512 ``<|startoftext|>``, 513 ``<|endoftext|>`` (also padding). ``model_max_length`` 77 as in
    Stable Diffusion (without it the pipeline pads to transformers' "very large" default).
    """
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    vocab_path, merges_path = os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    return CLIPTokenizer(vocab_path, merges_path, model_max_length=77, clean_up_tokenization_spaces=False)


def to_video(frames: Any) -> np.ndarray:
    """Pipeline output ``[1, F, C, H, W]`` (``output_type="pt"``) -> float32 ``[F, C, H, W]`` in [0, 1]."""
    video = frames[0] if frames.ndim == 5 else frames
    video = video.detach().to("cpu", torch.float32) if isinstance(video, torch.Tensor) else torch.as_tensor(video)
    if video.ndim != 4 or video.shape[1] not in (1, 3):
        raise ValueError(f"expected [frames, channels, height, width], got {list(video.shape)}")
    return video.float().clamp(0.0, 1.0).contiguous().numpy()


def parse_params(variant: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Validated ``(seed, params)``: unknown names and sizes off the grid are errors; seed None means 0."""
    params = dict(params)
    seed = params.pop("seed", None)
    seed = 0 if seed is None else int(seed)
    defaults = DEFAULTS[variant]
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)}; AnimateDiff accepts seed, {', '.join(defaults)}")
    p = {**defaults, **params}
    for key in ("frames", "height", "width", "steps"):
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {p[key]!r}")
    if p["frames"] > MAX_FRAMES:
        raise ValueError(f"frames must be at most {MAX_FRAMES} (the motion modules' positional encoding), got {p['frames']}")
    multiple = MULTIPLE[variant]
    if p["height"] % multiple or p["width"] % multiple:
        raise ValueError(f"height and width must be multiples of {multiple}, got {p['height']}x{p['width']}")
    p["guidance_scale"] = float(p["guidance_scale"])
    return seed, p


class AnimateDiff(ModelAdapter):
    """AnimateDiff through ``diffusers.AnimateDiffPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    libraries = ("torch", "diffusers", "transformers", "numpy")

    def __init__(self, variant: str = "tiny", motion_repo: str = MOTION_REPO, base_repo: str = BASE_REPO, **options: Any) -> None:
        if variant not in DEFAULTS:
            raise ValueError(f"variant must be one of {sorted(DEFAULTS)}, got {variant!r}")
        if options:
            raise TypeError(f"unknown options {sorted(options)}; AnimateDiff takes variant, motion_repo, base_repo")
        super().__init__(variant=variant, motion_repo=motion_repo, base_repo=base_repo)
        self.variant, self.motion_repo, self.base_repo = variant, motion_repo, base_repo
        self.pipe: Any = None
        self.device = "cpu"
        self.threads = 0

    def load(self) -> None:
        self.threads = int(os.environ.get("VDBENCH_THREADS", "1"))
        torch.set_num_threads(self.threads)
        self.pipe = self._tiny() if self.variant == "tiny" else self._full()
        self.pipe.set_progress_bar_config(disable=True)

    def _tiny(self) -> Any:
        from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        torch.manual_seed(WEIGHT_SEED)
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=2,
        )
        torch.manual_seed(WEIGHT_SEED + 1)
        motion_adapter = MotionAdapter(
            block_out_channels=(32, 64),
            motion_layers_per_block=1,
            motion_num_attention_heads=4,
            motion_norm_num_groups=2,
            motion_max_seq_length=MAX_FRAMES,
        )
        torch.manual_seed(WEIGHT_SEED + 2)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
        )
        torch.manual_seed(WEIGHT_SEED + 3)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=1000,
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
            )
        )
        with tempfile.TemporaryDirectory() as directory:
            tokenizer = build_clip_tokenizer(directory)
        scheduler = DDIMScheduler(  # Stable Diffusion 1.5's betas, as AnimateDiff uses them
            beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False, steps_offset=1
        )
        pipe = AnimateDiffPipeline(
            vae=vae.eval(),
            text_encoder=text_encoder.eval(),
            tokenizer=tokenizer,
            unet=unet.eval(),
            motion_adapter=motion_adapter.eval(),
            scheduler=scheduler,
        )
        pipe.unet.eval()  # the UNetMotionModel the pipeline assembled
        return pipe

    def _full(self) -> Any:
        from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

        if not torch.cuda.is_available():
            raise RuntimeError("the full AnimateDiff variant needs a CUDA GPU (torch.cuda.is_available() is False)")
        adapter = MotionAdapter.from_pretrained(self.motion_repo, torch_dtype=torch.float16, local_files_only=True)
        pipe = AnimateDiffPipeline.from_pretrained(
            self.base_repo, motion_adapter=adapter, torch_dtype=torch.float16, local_files_only=True
        )
        pipe.scheduler = DDIMScheduler.from_pretrained(
            self.base_repo,
            subfolder="scheduler",
            clip_sample=False,
            timestep_spacing="linspace",
            beta_schedule="linear",
            steps_offset=1,
            local_files_only=True,
        )
        pipe.enable_vae_slicing()
        self.device = "cuda"
        return pipe.to("cuda")

    def generate(self, prompt: str, **params: Any) -> Any:
        if self.pipe is None:
            raise RuntimeError("generate() called before load()")
        seed, p = parse_params(self.variant, params)
        generator = torch.Generator(device=self.device).manual_seed(seed)
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
            )
        return to_video(out.frames)

    def get_requirements(self) -> dict[str, Any]:
        if self.variant == "tiny":
            return {"gpus": 0, "gpu_memory": 0, "memory": 1024**3, "cpus": 1}
        # SD 1.5 UNet + motion modules in fp16, 16 frames at 512x512 with CFG, VAE slicing
        return {"gpus": 1, "gpu_memory": 16 * 1024**3, "memory": 16 * 1024**3, "cpus": 4}

    def health_check(self) -> bool:
        return self.pipe is not None

    def metadata(self) -> dict[str, Any]:
        info: dict[str, Any] = {"variant": self.variant, "pipeline": "diffusers.AnimateDiffPipeline", "threads": self.threads}
        if self.variant == "tiny":
            info["weights"] = f"random, torch.manual_seed({WEIGHT_SEED}..{WEIGHT_SEED + 3}); untrained"
            info["tokenizer"] = "byte-level CLIPTokenizer from a locally written vocabulary (no merges), 77 tokens"
        else:
            info["weights"] = f"{self.motion_repo} + {self.base_repo} (fp16) from the Hugging Face cache"
        if self.pipe is not None:
            info["parameters"] = {
                name: sum(p.numel() for p in getattr(self.pipe, name).parameters()) for name in ("unet", "vae", "text_encoder")
            }
        info["defaults"] = dict(DEFAULTS[self.variant])
        return info
