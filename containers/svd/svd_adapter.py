"""Stable Video Diffusion (Stability AI, image-to-video) behind the vdbench adapter contract, via diffusers.

SVD animates one conditioning image and takes no text. So that a benchmark case's prompt still
selects the input, the adapter renders the conditioning image from the prompt, deterministically and
offline (:func:`conditioning_image`): a smooth two-colour gradient plus a few soft discs whose
colours, positions and sizes come from a SHA-256 of the prompt. Nothing is downloaded; the same
prompt always gives the same image, and a different prompt a different one.

Two variants, chosen by the manifest's ``options: {variant: ...}``:

* ``tiny`` (CPU, CI): the real :class:`diffusers.StableVideoDiffusionPipeline` assembled from tiny
  random-weight components: a ``UNetSpatioTemporalConditionModel`` (32/64 channels, one spatio-temporal
  cross-attention block), an ``AutoencoderKLTemporalDecoder`` (2x spatial compression), a 2-layer
  ``CLIPVisionModelWithProjection`` that sees the 224x224 image as 7x7 patches of 32 pixels (the
  pipeline resizes a PIL image to 224x224 for CLIP), and SVD's ``EulerDiscreteScheduler`` settings
  (v-prediction, Karras sigmas, continuous timesteps). Each component is built after
  ``torch.manual_seed`` with a fixed :data:`WEIGHT_SEED`. Untrained weights: the frames are
  structured noise around the conditioning image, but the same prompt and seed give the same bytes.
* ``full`` (GPU): ``StableVideoDiffusionPipeline.from_pretrained(repo, variant="fp16",
  local_files_only=True)`` for ``stabilityai/stable-video-diffusion-img2vid-xt`` from the mounted
  Hugging Face cache, fp16 as in the model card; 1024x576, 25 frames, 25 steps, fps 7, motion bucket
  127, decode chunk 8 by default.

Output: float32 ``[frames, 3, height, width]`` in [0, 1].
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pytest_vdbench.adapter.diffusers_kit import DiffusersVideoAdapter, Grid

WEIGHT_SEED = 20231121
FULL_REPO = "stabilityai/stable-video-diffusion-img2vid-xt"

DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "frames": 4,
        "height": 32,
        "width": 32,
        "steps": 2,
        "min_guidance_scale": 1.0,
        "max_guidance_scale": 2.5,
        "fps": 7,
        "motion_bucket_id": 127,
        "noise_aug_strength": 0.02,
        "decode_chunk_size": 4,
    },
    "full": {
        "frames": 25,
        "height": 576,
        "width": 1024,
        "steps": 25,
        "min_guidance_scale": 1.0,
        "max_guidance_scale": 3.0,
        "fps": 7,
        "motion_bucket_id": 127,
        "noise_aug_strength": 0.02,
        "decode_chunk_size": 8,
    },
}
#: spatial multiple: the tiny VAE downsamples 2x, SVD's VAE 8x
GRIDS = {"tiny": Grid(multiple=2), "full": Grid(multiple=8)}


def conditioning_image(prompt: str, width: int, height: int) -> Any:
    """The prompt's conditioning image: a PIL RGB ``width x height`` image, a pure function of ``prompt``.

    A vertical blend of two colours plus three soft-edged discs (Gaussian falloff), all drawn from a
    NumPy generator seeded with the first 8 bytes of ``sha256(prompt)``: smooth content the VAE and
    the motion model can move, and nothing random across runs.
    """
    from PIL import Image

    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "little"))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    top, bottom = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    t = (y / max(height - 1, 1))[..., None]
    img = top * (1 - t) + bottom * t
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        radius = rng.uniform(0.12, 0.3) * min(height, width)
        weight = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))[..., None]
        img = img * (1 - weight) + rng.uniform(0.0, 1.0, 3) * weight
    return Image.fromarray((np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8), mode="RGB")


class StableVideoDiffusion(DiffusersVideoAdapter):
    """SVD through ``diffusers.StableVideoDiffusionPipeline``; ``variant`` is ``tiny`` (CPU) or ``full`` (GPU)."""

    libraries = ("torch", "diffusers", "transformers", "numpy", "PIL")
    title = "SVD"
    pipeline = "diffusers.StableVideoDiffusionPipeline"
    facts = {"conditioning": "image rendered from sha256(prompt): gradient + 3 soft discs (conditioning_image)"}
    defaults = DEFAULTS
    grids = GRIDS
    integer_params = ("frames", "height", "width", "steps", "fps", "motion_bucket_id", "decode_chunk_size")
    float_params = ("min_guidance_scale", "max_guidance_scale", "noise_aug_strength")
    weight_seed = WEIGHT_SEED
    full_weights = "{repo} (fp16 variant) from the Hugging Face cache"
    components = ("unet", "vae", "image_encoder")
    # fp16 UNet (1.5B) + CLIP ViT-H image encoder + VAE, 25 frames at 1024x576, decode chunk 8
    full_requirements = {"gpus": 1, "gpu_memory": 24 * 1024**3, "memory": 32 * 1024**3, "cpus": 4}

    def __init__(self, variant: str = "tiny", repo: str = FULL_REPO, **options: Any) -> None:
        super().__init__(variant, options, repo=repo)
        self.repo = repo

    def pipeline_args(self, prompt: str, p: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "image": conditioning_image(prompt, p["width"], p["height"]),
            "height": p["height"],
            "width": p["width"],
            "num_frames": p["frames"],
            "num_inference_steps": p["steps"],
            "min_guidance_scale": p["min_guidance_scale"],
            "max_guidance_scale": p["max_guidance_scale"],
            "fps": p["fps"],
            "motion_bucket_id": p["motion_bucket_id"],
            "noise_aug_strength": p["noise_aug_strength"],
            "decode_chunk_size": p["decode_chunk_size"],
        }

    def tiny_pipeline(self) -> Any:
        from diffusers import (
            AutoencoderKLTemporalDecoder,
            EulerDiscreteScheduler,
            StableVideoDiffusionPipeline,
            UNetSpatioTemporalConditionModel,
        )
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        try:  # transformers 5: the PIL backend by name (the default one wants torchvision)
            from transformers import CLIPImageProcessorPil as CLIPImageProcessor
        except ImportError:  # pragma: no cover - transformers 4
            from transformers import CLIPImageProcessor

        torch.manual_seed(WEIGHT_SEED)
        unet = UNetSpatioTemporalConditionModel(
            sample_size=16,
            in_channels=8,  # noisy latent + the conditioning image's latent
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            num_attention_heads=4,
            addition_time_embed_dim=16,
            projection_class_embeddings_input_dim=48,  # 3 added time ids (fps, motion, noise aug) x 16
        )
        torch.manual_seed(WEIGHT_SEED + 1)
        vae = AutoencoderKLTemporalDecoder(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            latent_channels=4,
        )
        torch.manual_seed(WEIGHT_SEED + 2)
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                projection_dim=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=224,
                patch_size=32,
            )
        )
        scheduler = EulerDiscreteScheduler(  # the settings of SVD's published scheduler config
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            interpolation_type="linear",
            num_train_timesteps=1000,
            prediction_type="v_prediction",
            sigma_max=700.0,
            sigma_min=0.002,
            steps_offset=1,
            timestep_spacing="leading",
            timestep_type="continuous",
            use_karras_sigmas=True,
        )
        return StableVideoDiffusionPipeline(
            vae=vae.eval(),
            image_encoder=image_encoder.eval(),
            unet=unet.eval(),
            scheduler=scheduler,
            feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        )

    def full_pipeline(self) -> Any:
        from diffusers import StableVideoDiffusionPipeline

        return StableVideoDiffusionPipeline.from_pretrained(
            self.repo, torch_dtype=torch.float16, variant="fp16", local_files_only=True
        )
