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

from typing import Any

import torch

from pytest_vdbench.adapter.diffusers_kit import (
    DiffusersVideoAdapter,
    Grid,
    build_t5_encoder,
    build_t5_tokenizer,
    t5_tokenizer_note,
    torch_dtype,
)

WEIGHT_SEED = 20241104
TEXT_TOKENS = 32  # tiny: tokenizer length == transformer max_text_seq_length
FULL_REPO = "THUDM/CogVideoX-2b"

#: params the adapter accepts besides ``seed``, with each variant's defaults
DEFAULTS = {
    "tiny": {"frames": 9, "height": 32, "width": 32, "steps": 2, "guidance_scale": 1.0, "negative_prompt": ""},
    "full": {"frames": 49, "height": 480, "width": 720, "steps": 50, "guidance_scale": 6.0, "negative_prompt": ""},
}
_GRID = Grid(multiple=16, frame_step=4, frames_note=" (the VAE compresses time 4x)")


class CogVideoX(DiffusersVideoAdapter):
    """CogVideoX through ``diffusers.CogVideoXPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    title = "CogVideoX"
    pipeline = "diffusers.CogVideoXPipeline"
    defaults = DEFAULTS
    grids = {"tiny": _GRID, "full": _GRID}
    weight_seed = WEIGHT_SEED
    tokenizer = t5_tokenizer_note(TEXT_TOKENS)
    max_sequence_length = TEXT_TOKENS
    # CogVideoX-2b model card: ~18 GB in fp16 without CPU offload (VAE tiling on)
    full_requirements = {"gpus": 1, "gpu_memory": 18 * 1024**3, "memory": 24 * 1024**3, "cpus": 4}

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, dtype: str = "float16", **options: Any) -> None:
        super().__init__(variant, options, repo=repo, dtype=dtype)
        self.repo, self.dtype = repo, dtype

    def tiny_pipeline(self) -> Any:
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXPipeline,
            CogVideoXTransformer3DModel,
        )

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
        text_encoder = build_t5_encoder()
        return CogVideoXPipeline(
            tokenizer=build_t5_tokenizer(),
            text_encoder=text_encoder.eval(),
            vae=vae.eval(),
            transformer=transformer.eval(),
            scheduler=CogVideoXDDIMScheduler(),
        )

    def full_pipeline(self) -> Any:
        from diffusers import CogVideoXPipeline

        pipe = CogVideoXPipeline.from_pretrained(self.repo, torch_dtype=torch_dtype(self.dtype), local_files_only=True)
        pipe.vae.enable_tiling()
        return pipe
