"""MedGAN (Choi et al., 2017) in PyTorch, implemented here, behind the vdbench adapter contract.

The three parts of the paper:
1. an autoencoder pre-trained on the binary records (encoder tanh, decoder sigmoid, BCE loss);
2. a generator working in the autoencoder's code space (fully connected layers with batch norm and
   shortcut connections), whose codes the pre-trained decoder turns into records (the decoder is
   fine-tuned with the generator);
3. a discriminator with minibatch averaging: each record is judged together with the mean of its
   minibatch, which counters mode collapse.
Samples are probabilities thresholded at 0.5. Tabular contract as in ``ganblr_adapter``: fit on a
float64 [rows, columns] table of 0/1 values, generate ``rows`` records. Seeded: the same seed and
fit give the same samples.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from pytest_vdbench.adapter import ModelAdapter


class Autoencoder(nn.Module):
    def __init__(self, dim: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, code), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(code, dim), nn.Sigmoid())


class Generator(nn.Module):
    """Noise -> code, with batch-normalised residual layers (the paper's shortcut connections)."""

    def __init__(self, code: int, layers: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(code, code, bias=False), nn.BatchNorm1d(code, momentum=0.01), nn.ReLU())
            for _ in range(layers)
        )
        self.out = nn.Sequential(nn.Linear(code, code, bias=False), nn.BatchNorm1d(code, momentum=0.01), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for block in self.blocks:
            h = block(h) + h
        return self.out(h) + h


class Discriminator(nn.Module):
    """Judges [record, minibatch mean] pairs (minibatch averaging)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=0, keepdim=True).expand_as(x)
        return self.net(torch.cat([x, mean], dim=1)).squeeze(1)


class MedGAN(ModelAdapter):
    libraries = ("torch", "numpy")

    def load(self) -> None:
        torch.set_num_threads(int(os.environ.get("VDBENCH_THREADS", "1")))
        self.ae: Autoencoder | None = None
        self.gen: Generator | None = None
        self.columns: list[dict[str, Any]] = []

    def get_requirements(self) -> dict[str, Any]:
        return {"gpus": 0, "gpu_memory": 0, "memory": 512 * 1024**2, "cpus": 1}

    def metadata(self) -> dict[str, Any]:
        return {"model": "MedGAN", "paper": "Choi et al., MLHC 2017", "implementation": "pytest-vdbench (PyTorch)"}

    def fit(self, table: Any, columns: list[dict[str, Any]], **params: Any) -> None:
        seed = int(params.get("seed") or 0)
        torch.manual_seed(seed)
        data = torch.as_tensor(np.asarray(table, dtype=np.float32)).clamp(0, 1)
        dim, code = data.shape[1], int(params.get("code_dim", 128))
        batch = int(params.get("batch_size", 100))
        self.columns = list(columns)
        ae, gen, disc = Autoencoder(dim, code), Generator(code), Discriminator(dim)
        loader_gen = torch.Generator().manual_seed(seed)
        bce = nn.BCELoss()
        opt_ae = torch.optim.Adam(ae.parameters(), lr=1e-3)
        for _ in range(int(params.get("ae_epochs", 20))):  # 1. pre-train the autoencoder
            for idx in torch.randperm(len(data), generator=loader_gen).split(batch):
                x = data[idx]
                loss = bce(ae.decoder(ae.encoder(x)), x)
                opt_ae.zero_grad()
                loss.backward()
                opt_ae.step()
        opt_g = torch.optim.Adam(list(gen.parameters()) + list(ae.decoder.parameters()), lr=1e-3, weight_decay=1e-4)
        opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, weight_decay=1e-4)
        logits = nn.BCEWithLogitsLoss()
        for _ in range(int(params.get("epochs", 20))):  # 2.+3. adversarial training
            for idx in torch.randperm(len(data), generator=loader_gen).split(batch):
                if len(idx) < 2:
                    continue
                real = data[idx]
                z = torch.randn(len(idx), code, generator=loader_gen)
                fake = ae.decoder(gen(z))
                d_loss = logits(disc(real), torch.ones(len(idx))) + logits(disc(fake.detach()), torch.zeros(len(idx)))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                g_loss = logits(disc(ae.decoder(gen(torch.randn(len(idx), code, generator=loader_gen)))), torch.ones(len(idx)))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
        self.ae, self.gen, self.code = ae.eval(), gen.eval(), code

    def generate(self, prompt: str, **params: Any) -> Any:
        if self.ae is None or self.gen is None:
            raise RuntimeError("generate() before fit(): the harness fits tabular models first")
        rows = int(params.get("rows", 500))
        noise = torch.Generator().manual_seed(int(params.get("seed") or 0))
        with torch.no_grad():
            probs = self.ae.decoder(self.gen(torch.randn(rows, self.code, generator=noise)))
        return (probs > 0.5).to(torch.float64).numpy()
