"""Wan 2.x (Wan-AI, text-to-video, ``WanPipeline``) behind the vdbench adapter contract, via diffusers.

Two variants, chosen by the manifest's ``options: {variant: ...}``:

* ``tiny`` (CPU, CI): the real :class:`diffusers.WanPipeline` assembled from tiny random-weight
  components: a 2-layer ``WanTransformer3DModel`` (2 heads of 12 dims, patch (1, 2, 2), RMS q/k norm,
  cross-attention to the text), a ``AutoencoderKLWan`` with a 16-channel latent (8x space, 4x time),
  ``FlowMatchEulerDiscreteScheduler`` (shift 3, as for Wan's 480p) and a 2-layer T5 encoder with
  ``d_model`` 32 standing in for umT5; ``transformer_2`` is None (the Wan 2.1 layout; Wan 2.2 A14B
  adds a low-noise expert there). Each component is built after ``torch.manual_seed`` with a fixed
  :data:`WEIGHT_SEED`. The prompt takes the pipeline's own text path: a T5 (Unigram) tokenizer
  built in memory from the word + character vocabulary in :func:`build_t5_tokenizer` (nothing is
  downloaded), then the encoder. Untrained weights: the frames are structured noise, but a different
  prompt gives a different video and the same prompt and seed the same bytes.
* ``full`` (GPU): ``WanPipeline.from_pretrained(repo, local_files_only=True)`` for
  ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` from the mounted Hugging Face cache: VAE in float32, the rest
  in bf16 (the model card's diffusers example); 832x480, 81 frames, 50 steps, guidance 5 by default.

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

WEIGHT_SEED = 20250226
TEXT_TOKENS = 32
FULL_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"frames": 9, "height": 32, "width": 32, "steps": 2, "guidance_scale": 1.0, "negative_prompt": ""},
    "full": {
        "frames": 81,
        "height": 480,
        "width": 832,
        "steps": 50,
        "guidance_scale": 5.0,
        "negative_prompt": "bright colors, overexposed, static, blurred details, subtitles, worst quality, low quality",
    },
}
#: frames 4k+1 and sizes in multiples of 16: Wan's VAE compresses 4x in time, 8x in space, then 2x2 patches
_GRID = Grid(multiple=16, frame_step=4)


class Wan(DiffusersVideoAdapter):
    """Wan 2.x through ``diffusers.WanPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    title = "Wan"
    pipeline = "diffusers.WanPipeline"
    defaults = DEFAULTS
    grids = {"tiny": _GRID, "full": _GRID}
    weight_seed = WEIGHT_SEED
    tokenizer = t5_tokenizer_note(TEXT_TOKENS)
    max_sequence_length = TEXT_TOKENS
    # 1.3B transformer + umT5-XXL encoder (bf16) + float32 VAE on the GPU, no offload; the model
    # card's 8.19 GB needs model offload and the T5 on the CPU
    full_requirements = {"gpus": 1, "gpu_memory": 24 * 1024**3, "memory": 32 * 1024**3, "cpus": 4}

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, dtype: str = "bfloat16", **options: Any) -> None:
        super().__init__(variant, options, repo=repo, dtype=dtype)
        self.repo, self.dtype = repo, dtype

    def tiny_pipeline(self) -> Any:
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

        torch.manual_seed(WEIGHT_SEED)
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )
        torch.manual_seed(WEIGHT_SEED + 1)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )
        torch.manual_seed(WEIGHT_SEED + 2)
        text_encoder = build_t5_encoder()
        return WanPipeline(
            tokenizer=build_t5_tokenizer(),
            text_encoder=text_encoder.eval(),
            transformer=transformer.eval(),
            vae=vae.eval(),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            transformer_2=None,
        )

    def full_pipeline(self) -> Any:
        from diffusers import AutoencoderKLWan, WanPipeline

        dtype = torch_dtype(self.dtype)
        vae = AutoencoderKLWan.from_pretrained(self.repo, subfolder="vae", torch_dtype=torch.float32, local_files_only=True)
        return WanPipeline.from_pretrained(self.repo, vae=vae, torch_dtype=dtype, local_files_only=True)
