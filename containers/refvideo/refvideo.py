"""RefVideo: the project's reference model, a tiny text-to-video latent diffusion model in plain PyTorch.

Every CI run exercises it, so it is small (97,476 parameters; 8x32x32 with 10 steps takes about 20 ms
on one CPU thread) but it is a real diffusion pipeline, not a procedural fake:

* **prompt path**: a byte-level tokenizer (UTF-8 bytes + 1, 0 = padding, 32 tokens) and a 2-layer
  pre-LN transformer text encoder whose summary token is the prompt embedding;
* **denoiser**: a factorized space-time network on a ``[frames, 4, H/4, W/4]`` latent: per-frame 2-D
  convolutions, then a 1-D convolution across frames, in every block; conditioned on the sinusoidal
  timestep embedding plus the projected prompt embedding through FiLM (per-channel scale and shift);
  x0-prediction with EDM preconditioning (c_skip, c_out, c_in), converted to epsilon for the sampler;
* **sampler**: DDIM (eta = 0) over a cosine beta schedule with 1000 training steps, ``steps``
  inference steps with "trailing" timestep spacing (so ``steps=1`` still starts at pure noise),
  optional classifier-free guidance against the empty-prompt embedding;
* **initial noise**: seeded Gaussian noise with a progressive (AR(1)) correlation across frames, the
  video noise prior of PYoCo (Ge et al., 2023), so frames share structure yet move;
* **decoder**: a fixed smooth projection: a Gaussian low-pass on the latent, bilinear upsampling to
  ``H x W`` and a constant 4 -> 3 colour matrix (no learned VAE).

The weights are random but fixed: every parameter is drawn from ``torch.Generator`` seeded with
:data:`WEIGHT_SEED` (the global torch RNG is never touched), so every build and run of the image has
the same model, and with a fixed thread count the same prompt and seed give the same bytes.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytest_vdbench.adapter import ModelAdapter

WEIGHT_SEED = 20240917
MAX_TOKENS = 32
VOCAB = 257  # 0 = padding, 1..256 = UTF-8 byte value + 1
TEXT_DIM = 32
TEXT_HEADS = 4
TEXT_LAYERS = 2
LATENT_CHANNELS = 4
LATENT_FACTOR = 4  # latent is H/4 x W/4
CHANNELS = 32
EMB_DIM = 64
BLOCKS = 2
TRAIN_STEPS = 1000
SIGMA_DATA = 0.5
NOISE_CORRELATION = 3.0  # AR(1) noise prior: adjacent-frame correlation a/sqrt(1+a^2) = 0.95

# A fixed latent -> RGB matrix: each latent channel tints the frame a different way (like the
# linear "latent preview" factors of Stable Diffusion), plus a mid-grey offset in the decoder.
LATENT_TO_RGB = (
    (0.35, 0.22, 0.30),
    (0.30, 0.45, 0.20),
    (-0.25, 0.18, 0.30),
    (-0.20, -0.25, -0.45),
)
DECODER_BLUR = 1.0  # latent pixels
DECODER_GAIN = 2.0
PARAM_DEFAULTS: dict[str, Any] = {"frames": 8, "height": 32, "width": 32, "steps": 10, "guidance_scale": 1.0}


def tokenize(prompt: str) -> torch.Tensor:
    """UTF-8 bytes -> ids (byte + 1), truncated or zero-padded to :data:`MAX_TOKENS`; int64 ``[32]``."""
    ids = [b + 1 for b in prompt.encode("utf-8")[:MAX_TOKENS]]
    ids += [0] * (MAX_TOKENS - len(ids))
    return torch.tensor(ids, dtype=torch.long)


def cosine_alphas_cumprod(steps: int = TRAIN_STEPS, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule (betas capped at 0.999), as float64 ``alpha_bar[t]``."""
    t = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1.0 - betas)


def trailing_timesteps(steps: int, train_steps: int = TRAIN_STEPS) -> list[int]:
    """``steps`` timesteps from ``train_steps - 1`` down, evenly spaced ("trailing" spacing)."""
    ratio = train_steps / steps
    return [round(train_steps - i * ratio) - 1 for i in range(steps)]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """DDPM sinusoidal embedding of integer timesteps ``t`` (``[B]``) -> ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TextBlock(nn.Module):
    """Pre-LN transformer layer: multi-head self-attention with a padding mask, then an MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        # A large query/key gain gives sharp attention: with near-uniform attention a random encoder
        # only sees the bag of bytes, and unrelated prompts get nearly the same embedding.
        self.qkv.init_gain = 3.0  # type: ignore[assignment]
        self.proj.init_gain = 0.5  # type: ignore[assignment]

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        attn = scores.softmax(dim=-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        out: torch.Tensor = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return out


class TextEncoder(nn.Module):
    """Byte embeddings + learned positions, a summary token, :data:`TEXT_LAYERS` transformer layers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, TEXT_DIM)
        self.pos = nn.Parameter(torch.empty(MAX_TOKENS + 1, TEXT_DIM))
        self.summary = nn.Parameter(torch.empty(TEXT_DIM))
        self.layers = nn.ModuleList(TextBlock(TEXT_DIM, TEXT_HEADS) for _ in range(TEXT_LAYERS))
        self.norm = nn.LayerNorm(TEXT_DIM)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` int64 ``[B, 32]`` -> prompt embeddings ``[B, TEXT_DIM]`` (the summary token)."""
        b = ids.shape[0]
        x = torch.cat([self.summary.expand(b, 1, TEXT_DIM), self.embed(ids)], dim=1) + self.pos
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool), ids != 0], dim=1)
        for layer in self.layers:
            x = layer(x, keep)
        out: torch.Tensor = self.norm(x[:, 0])
        return out


class SpaceTimeBlock(nn.Module):
    """Residual per-frame 2-D conv block with FiLM, then a residual 1-D conv across frames."""

    def __init__(self, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.tnorm = nn.GroupNorm(8, channels)
        self.tconv = nn.Conv1d(channels, channels, 3)
        self.film.init_gain = 0.5  # type: ignore[assignment]
        self.conv2.init_gain = 0.7  # type: ignore[assignment]
        self.tconv.init_gain = 0.7  # type: ignore[assignment]

    def forward(self, h: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """``h`` ``[B*frames, C, y, x]``, ``emb`` ``[B, E]``."""
        r = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.film(F.silu(emb)).repeat_interleave(frames, dim=0)[..., None, None].chunk(2, dim=1)
        r = self.conv2(F.silu(self.norm2(r) * (1 + scale) + shift))
        h = h + r
        n, c, y, x = h.shape
        b = n // frames
        t = self.tnorm(h).view(b, frames, c, y, x).permute(0, 3, 4, 2, 1).reshape(b * y * x, c, frames)
        t = self.tconv(F.pad(F.silu(t), (1, 1), mode="replicate"))
        out: torch.Tensor = h + t.view(b, y, x, c, frames).permute(0, 4, 3, 1, 2).reshape(n, c, y, x)
        return out


class Denoiser(nn.Module):
    """The raw network F of the EDM-preconditioned x0 predictor."""

    def __init__(self) -> None:
        super().__init__()
        self.time_fc1 = nn.Linear(CHANNELS, EMB_DIM)
        self.time_fc2 = nn.Linear(EMB_DIM, EMB_DIM)
        self.text_proj = nn.Linear(TEXT_DIM, EMB_DIM)
        self.conv_in = nn.Conv2d(LATENT_CHANNELS, CHANNELS, 3, padding=1)
        self.blocks = nn.ModuleList(SpaceTimeBlock(CHANNELS, EMB_DIM) for _ in range(BLOCKS))
        self.norm_out = nn.GroupNorm(8, CHANNELS)
        self.conv_out = nn.Conv2d(CHANNELS, LATENT_CHANNELS, 3, padding=1)
        self.text_proj.init_gain = 2.0  # type: ignore[assignment]

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, frames, 4, y, x]``, ``t`` int ``[B]``, ``text`` ``[B, TEXT_DIM]`` -> like ``x``."""
        b, frames, c, y, w = x.shape
        emb = self.time_fc2(F.silu(self.time_fc1(timestep_embedding(t, CHANNELS)))) + self.text_proj(text)
        h = self.conv_in(x.reshape(b * frames, c, y, w))
        for block in self.blocks:
            h = block(h, emb, frames)
        out: torch.Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out.view(b, frames, c, y, w)


class RefVideoNet(nn.Module):
    """Text encoder + denoiser: the whole trainable model (what the parameter count counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = TextEncoder()
        self.denoiser = Denoiser()


def init_weights(model: nn.Module, seed: int) -> None:
    """Fill every parameter from one ``torch.Generator(seed)`` in registration order (LeCun normal)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                gain = float(getattr(module, "init_gain", 1.0))
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (gain / math.sqrt(fan_in)))
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.02)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.copy_(torch.randn(module.weight.shape, generator=g))
            elif isinstance(module, TextEncoder):
                module.pos.copy_(torch.randn(module.pos.shape, generator=g))
                module.summary.copy_(torch.randn(module.summary.shape, generator=g))


def frame_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seeded ``[frames, ...]`` Gaussian noise, unit variance, AR(1)-correlated across frames."""
    g = torch.Generator().manual_seed(seed)
    innovations = torch.randn(shape, generator=g)
    a = NOISE_CORRELATION
    keep, fresh = a / math.sqrt(1 + a * a), 1 / math.sqrt(1 + a * a)
    out = torch.empty_like(innovations)
    out[0] = innovations[0]
    for f in range(1, shape[0]):
        out[f] = keep * out[f - 1] + fresh * innovations[f]
    return out


def decode(latent: torch.Tensor, height: int, width: int, latent_to_rgb: torch.Tensor) -> torch.Tensor:
    """The fixed decoder: Gaussian low-pass, bilinear upsampling, colour map, tanh -> ``[F, 3, H, W]``.

    The low-pass (sigma = 1 latent pixel, contrast restored by :data:`DECODER_GAIN`) keeps an
    untrained model's pixel-level latent noise out of the frames: they come out as smooth colour fields.
    """
    radius = 2
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * DECODER_BLUR**2))
    k = k / k.sum()
    c = latent.shape[1]
    x = F.pad(latent, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c) * DECODER_GAIN
    up = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    rgb = torch.einsum("fchw,cr->frhw", up, latent_to_rgb)
    # 0.5 + rgb near grey, rolled off smoothly instead of clipped (no flat saturated patches).
    return (0.5 + 0.5 * torch.tanh(2.0 * rgb)).clamp(0.0, 1.0).contiguous()


class RefVideo(ModelAdapter):
    """The reference text-to-video model behind the vdbench adapter contract."""

    libraries = ("torch", "numpy")

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"RefVideo takes no options, got {sorted(options)}")
        super().__init__()
        self.model: RefVideoNet | None = None
        self.alphas_cumprod = cosine_alphas_cumprod()
        self.latent_to_rgb = torch.tensor(LATENT_TO_RGB, dtype=torch.float32)
        self.threads = 0

    def load(self) -> None:
        self.threads = int(os.environ.get("VDBENCH_THREADS", "1"))
        torch.set_num_threads(self.threads)
        with torch.device("meta"):  # build without touching the global RNG, then fill from our generator
            model = RefVideoNet()
        model = model.to_empty(device="cpu")
        init_weights(model, WEIGHT_SEED)
        model.eval().requires_grad_(False)
        self.model = model

    def get_requirements(self) -> dict[str, Any]:
        # Measured peak RSS of a serving process (torch import, model, 8x32x32 generations) is about
        # 320 MiB, and 16x128x128 adds little; 512 MiB leaves headroom for larger requests.
        return {"gpus": 0, "gpu_memory": 0, "memory": 512 * 1024**2, "cpus": 1}

    def health_check(self) -> bool:
        return self.model is not None

    def metadata(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters()) if self.model is not None else None
        return {
            "architecture": "RefVideoNet: byte tokenizer + 2-layer transformer text encoder; "
            f"factorized space-time denoiser (2-D conv per frame + 1-D temporal conv, {BLOCKS} blocks, "
            f"{CHANNELS} channels, FiLM on timestep + text) on a {LATENT_CHANNELS}-channel latent at 1/{LATENT_FACTOR} "
            "resolution; fixed decoder (Gaussian low-pass, bilinear upsampling, linear latent-to-RGB)",
            "parameters": params,
            "weights": f"random, seeded (torch.Generator seed {WEIGHT_SEED}); untrained",
            "sampler": "DDIM (eta=0, trailing timestep spacing)",
            "beta_schedule": "cosine",
            "train_timesteps": TRAIN_STEPS,
            "prediction": "x0 with EDM preconditioning (sigma_data 0.5)",
            "guidance": "classifier-free against the empty prompt when guidance_scale > 1",
            "noise_prior": f"progressive AR(1) across frames (alpha {NOISE_CORRELATION})",
            "threads": self.threads,
            "defaults": dict(PARAM_DEFAULTS),
        }

    def _x0(self, x: torch.Tensor, t: int, alpha_bar: float, text: torch.Tensor, guidance: float) -> torch.Tensor:
        """EDM-preconditioned x0 prediction at VP state ``x`` (``[1, frames, 4, y, x]``), with CFG."""
        assert self.model is not None
        sigma = math.sqrt((1 - alpha_bar) / alpha_bar)
        c_skip = SIGMA_DATA**2 / (sigma**2 + SIGMA_DATA**2)
        c_out = sigma * SIGMA_DATA / math.sqrt(sigma**2 + SIGMA_DATA**2)
        c_in = 1 / math.sqrt(sigma**2 + SIGMA_DATA**2)
        scaled = x / math.sqrt(alpha_bar)  # the variance-exploding view: x0 + sigma * eps
        batch = text.shape[0]
        net_in = (scaled * c_in).expand(batch, *x.shape[1:])
        out: torch.Tensor = self.model.denoiser(net_in, torch.full((batch,), t, dtype=torch.long), text)
        if batch == 2:  # [conditional, unconditional]
            out = out[1:] + guidance * (out[:1] - out[1:])
        return (c_skip * scaled + c_out * out).clamp(-1.0, 1.0)

    def generate(self, prompt: str, **params: Any) -> Any:
        """float32 ``[frames, 3, height, width]`` in [0, 1]; ``seed`` None means 0; unknown params are errors."""
        if self.model is None:
            raise RuntimeError("RefVideo.generate() called before load()")
        seed = params.pop("seed", None)
        seed = 0 if seed is None else int(seed)
        unknown = set(params) - set(PARAM_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}; RefVideo accepts seed, {', '.join(PARAM_DEFAULTS)}")
        p = {**PARAM_DEFAULTS, **params}
        for key in ("frames", "height", "width", "steps"):
            if isinstance(p[key], bool) or not isinstance(p[key], (int, np.integer)):
                raise ValueError(f"{key} must be an integer, got {p[key]!r}")
        frames, height, width, steps = (int(p[k]) for k in ("frames", "height", "width", "steps"))
        guidance = float(p["guidance_scale"])
        if not math.isfinite(guidance):
            raise ValueError(f"guidance_scale must be finite, got {guidance}")
        if frames < 1 or height < 1 or width < 1:
            raise ValueError(f"frames, height and width must be >= 1, got {frames}, {height}, {width}")
        if not 1 <= steps <= TRAIN_STEPS:
            raise ValueError(f"steps must be in 1..{TRAIN_STEPS}, got {steps}")

        with torch.inference_mode():
            prompts = [prompt, ""] if guidance > 1.0 else [prompt]
            text = self.model.text(torch.stack([tokenize(s) for s in prompts]))
            latent_h, latent_w = max(1, -(-height // LATENT_FACTOR)), max(1, -(-width // LATENT_FACTOR))
            x = frame_noise((frames, LATENT_CHANNELS, latent_h, latent_w), seed)[None]
            timesteps = trailing_timesteps(steps)
            for i, t in enumerate(timesteps):
                a = float(self.alphas_cumprod[t])
                a_prev = float(self.alphas_cumprod[timesteps[i + 1]]) if i + 1 < steps else 1.0
                x0 = self._x0(x, t, a, text, guidance)
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
                x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps  # DDIM, eta = 0
            video = decode(x[0], height, width, self.latent_to_rgb)
        return video.numpy()
