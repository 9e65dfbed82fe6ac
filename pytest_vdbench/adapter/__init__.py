"""Adapter SDK installed inside every model image: ``ModelAdapter`` and its HTTP server.

This package imports nothing from the rest of pytest-vdbench and depends on numpy only, so it
installs into Python 3.8-3.13 images next to any framework (TensorFlow, PyTorch, JAX...).
"""

from __future__ import annotations

from pytest_vdbench.adapter.base import ModelAdapter
from pytest_vdbench.adapter.codec import decode_safetensors, encode_safetensors
from pytest_vdbench.adapter.metric import MetricAdapter, not_computed, score

__all__ = [
    "SDK_VERSION",
    "MetricAdapter",
    "ModelAdapter",
    "decode_safetensors",
    "encode_safetensors",
    "not_computed",
    "score",
]

SDK_VERSION = "1"
