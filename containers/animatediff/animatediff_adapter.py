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

import torch

from pytest_vdbench.adapter.diffusers_kit import DiffusersVideoAdapter, Grid

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
#: the motion modules' positional encoding covers this many frames (MotionAdapter's max_seq_length)
MAX_FRAMES = 32
_NOTE = " (the motion modules' positional encoding)"
#: spatial multiple: the tiny VAE downsamples 2x, SD 1.5's VAE 8x (and its UNet 8x more)
GRIDS = {
    "tiny": Grid(multiple=4, max_frames=MAX_FRAMES, frames_note=_NOTE),
    "full": Grid(multiple=64, max_frames=MAX_FRAMES, frames_note=_NOTE),
}


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


class AnimateDiff(DiffusersVideoAdapter):
    """AnimateDiff through ``diffusers.AnimateDiffPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    title = "AnimateDiff"
    pipeline = "diffusers.AnimateDiffPipeline"
    defaults = DEFAULTS
    grids = GRIDS
    weight_seed = WEIGHT_SEED
    seeded_components = 4
    tokenizer = "byte-level CLIPTokenizer from a locally written vocabulary (no merges), 77 tokens"
    full_weights = "{motion_repo} + {base_repo} (fp16) from the Hugging Face cache"
    components = ("unet", "vae", "text_encoder")
    # SD 1.5 UNet + motion modules in fp16, 16 frames at 512x512 with CFG, VAE slicing
    full_requirements = {"gpus": 1, "gpu_memory": 16 * 1024**3, "memory": 16 * 1024**3, "cpus": 4}

    def __init__(self, variant: str = "tiny", motion_repo: str = MOTION_REPO, base_repo: str = BASE_REPO, **options: Any) -> None:
        super().__init__(variant, options, motion_repo=motion_repo, base_repo=base_repo)
        self.motion_repo, self.base_repo = motion_repo, base_repo

    def tiny_pipeline(self) -> Any:
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

    def full_pipeline(self) -> Any:
        from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

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
        return pipe
