"""An Open Inference Protocol v2 model as MLServer serves them: a custom ``MLModel``, no vdbench adapter.

Inputs: ``prompt`` (BYTES [1]), ``seed`` (INT64 [1]) and optional ``frames``/``height``/``width``
(INT64 [1]); output ``video``: FP32 [frames, 3, height, width] in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import toyvideo
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor

_SIZES = {"frames": 8, "height": 32, "width": 32}


class ToyVideo(MLModel):
    async def load(self) -> bool:
        toyvideo.generate("warm-up", 0, frames=2, height=4, width=4)
        self.inputs = [
            MetadataTensor(name="prompt", datatype="BYTES", shape=[1]),
            MetadataTensor(name="seed", datatype="INT64", shape=[1]),
            *(MetadataTensor(name=n, datatype="INT64", shape=[1]) for n in _SIZES),
        ]
        self.outputs = [MetadataTensor(name="video", datatype="FP32", shape=[-1, 3, -1, -1])]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        given: dict[str, Any] = {}
        for tensor in payload.inputs:
            if tensor.name == "prompt":
                given["prompt"] = StringCodec.decode_input(tensor)[0]
            elif tensor.name in ("seed", *_SIZES):
                given[tensor.name] = int(NumpyCodec.decode_input(tensor).reshape(-1)[0])
            else:
                raise ValueError(f"unknown input {tensor.name!r}; this model takes prompt, seed, {', '.join(_SIZES)}")
        sizes = {n: given.get(n, d) for n, d in _SIZES.items()}
        video = toyvideo.generate(given.get("prompt", ""), given.get("seed", 0), **sizes)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(name="video", payload=np.ascontiguousarray(video))],
        )
