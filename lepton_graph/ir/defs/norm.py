"""Normalisation layers (inference forms): registry entries whose functions are the torch eager references."""

from __future__ import annotations

import torch

from ..ops import Op
from ..registry import REQUIRED, register_op

Tensor = torch.Tensor


@register_op(Op.LAYER_NORM, inputs=(1, 3), attrs={"normalized_shape": REQUIRED, "eps": 1e-5})
def layer_norm(
    x: Tensor, w: Tensor | None = None, b: Tensor | None = None, *, normalized_shape: tuple[int, ...], eps: float
) -> Tensor:
    """F.layer_norm over the trailing ``normalized_shape`` dims; inputs (x), (x, w) or (x, w, b)."""
    return torch.layer_norm(x, normalized_shape, w, b, eps)


@register_op(Op.RMS_NORM, inputs=(1, 2), attrs={"normalized_shape": REQUIRED, "eps": None})
def rms_norm(x: Tensor, w: Tensor | None = None, *, normalized_shape: tuple[int, ...], eps: float | None) -> Tensor:
    """F.rms_norm; inputs (x) or (x, w); eps None = torch.finfo(x.dtype).eps."""
    return torch.rms_norm(x, normalized_shape, w, eps)


@register_op(Op.BATCH_NORM, inputs=(3, 5), attrs={"eps": 1e-5, "has_weight": True, "has_bias": True})
def batch_norm(
    x: Tensor, mean: Tensor, var: Tensor, *affine: Tensor, eps: float, has_weight: bool, has_bias: bool
) -> Tensor:
    """F.batch_norm(training=False) with running statistics. Inputs are (x, running_mean, running_var) then the
    weight if ``has_weight`` and the bias if ``has_bias``: (x, mean, var, w, b), (x, mean, var, w),
    (x, mean, var, b) with has_weight=False, or (x, mean, var) with both flags False."""
    w = affine[0] if has_weight else None
    b = affine[-1] if has_bias else None
    return torch.batch_norm(x, w, b, mean, var, False, 0.0, eps, True)
