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

from collections.abc import Mapping
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
#: frames 4k+1 and sizes in multiples of 4 for the tiny VAE (4x in time and space); LTX-Video's 8x / 32x
GRIDS = {"tiny": Grid(multiple=4, frame_step=4), "full": Grid(multiple=32, frame_step=8)}


class LTXVideo(DiffusersVideoAdapter):
    """LTX-Video through ``diffusers.LTXPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    title = "LTX-Video"
    pipeline = "diffusers.LTXPipeline"
    defaults = DEFAULTS
    grids = GRIDS
    integer_params = ("frames", "height", "width", "steps", "frame_rate")
    float_params = ("guidance_scale", "decode_timestep", "decode_noise_scale")
    weight_seed = WEIGHT_SEED
    tokenizer = t5_tokenizer_note(TEXT_TOKENS)
    max_sequence_length = TEXT_TOKENS
    # 2B transformer + T5-XXL encoder in bf16, no offload
    full_requirements = {"gpus": 1, "gpu_memory": 24 * 1024**3, "memory": 32 * 1024**3, "cpus": 4}

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, dtype: str = "bfloat16", **options: Any) -> None:
        super().__init__(variant, options, repo=repo, dtype=dtype)
        self.repo, self.dtype = repo, dtype

    def pipeline_args(self, prompt: str, p: Mapping[str, Any]) -> dict[str, Any]:
        args = super().pipeline_args(prompt, p)
        args.update(frame_rate=p["frame_rate"], decode_timestep=p["decode_timestep"], decode_noise_scale=p["decode_noise_scale"])
        return args

    def tiny_pipeline(self) -> Any:
        from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

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
        text_encoder = build_t5_encoder()
        return LTXPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(),
            vae=vae.eval(),
            text_encoder=text_encoder.eval(),
            tokenizer=build_t5_tokenizer(),
            transformer=transformer.eval(),
        )

    def full_pipeline(self) -> Any:
        from diffusers import LTXPipeline

        return LTXPipeline.from_pretrained(self.repo, torch_dtype=torch_dtype(self.dtype), local_files_only=True)
