"""Declare torchvision's C++ operator schemas when its compiled ops cannot load.

PyPI's torchvision wheels are CUDA builds: their ``_C.so`` links ``libtorch_cuda.so``, which the
CPU torch of ``vdbench/torch-cpu:bookworm`` does not ship, so ``torchvision.extension`` cannot load
``_C`` (it tolerates that: every compiled op then raises torchvision's own "Couldn't load custom C++
ops" error). Only ``import torchvision`` itself breaks, because ``_meta_registrations`` and
``_autograd_registrations`` attach fake/autograd kernels to ``torchvision::nms`` & co. and fail when
those operators were never declared. This module declares the schemas (copied from torchvision
0.28's ``csrc/ops/*.cpp`` ``m.def`` lines) with NO kernel: the pure-Python parts of torchvision
(transforms, models' Python code) work, and calling a compiled op still fails loudly with
torchvision's message. VBench's temporal_flickering path imports torchvision.transforms only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width,"
    " int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size,"
    " SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels,"
    " SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels,"
    " SymInt height, SymInt width) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias,"
    " SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h,"
    " SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask,"
    " Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w,"
    " SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask)"
    " -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)

_LIB: "torch.library.Library | None" = None


def compiled_ops_load() -> bool:
    """Whether torchvision's own ``_C`` extension loads here (then it declares the schemas itself)."""
    spec = importlib.util.find_spec("torchvision")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for library in Path(location).glob("_C*.so"):
            try:
                torch.ops.load_library(str(library))
            except (OSError, RuntimeError):
                return False
            return True
    return False


def declare() -> bool:
    """Declare the schemas (without kernels) unless torchvision's ``_C`` loads; True when declared."""
    global _LIB
    if _LIB is not None or compiled_ops_load():
        return False
    _LIB = torch.library.Library("torchvision", "DEF")
    for schema in SCHEMAS:
        _LIB.define(schema)
    return True
