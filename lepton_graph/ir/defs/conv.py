"""Convolution and pooling (NCHW): registry entries whose functions are the torch eager references.

Window attributes are tuples of two ints (height, width); CONV2D's ``padding`` may also be "same" or "valid".
"""

from __future__ import annotations

import torch

from ..ops import Op
from ..registry import REQUIRED, register_op

Tensor = torch.Tensor
Pair = tuple[int, int]


@register_op(Op.CONV2D, inputs=(2, 3), attrs={"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1})
def conv2d(
    x: Tensor, w: Tensor, b: Tensor | None = None, *, stride: Pair, padding: Pair | str, dilation: Pair, groups: int
) -> Tensor:
    """F.conv2d: x (N, C, H, W) or unbatched (C, H, W), w (O, C/groups, kH, kW), b (O,)."""
    return torch.conv2d(x, w, b, stride, padding, dilation, groups)


@register_op(
    Op.MAX_POOL2D,
    attrs={"kernel_size": REQUIRED, "stride": None, "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False},
)
def max_pool2d(
    x: Tensor, *, kernel_size: Pair, stride: Pair | None, padding: Pair, dilation: Pair, ceil_mode: bool
) -> Tensor:
    """F.max_pool2d without indices; stride None = kernel_size."""
    return torch.max_pool2d(x, kernel_size, () if stride is None else stride, padding, dilation, ceil_mode)


@register_op(
    Op.AVG_POOL2D,
    attrs={
        "kernel_size": REQUIRED,
        "stride": None,
        "padding": (0, 0),
        "ceil_mode": False,
        "count_include_pad": True,
        "divisor_override": None,
    },
)
def avg_pool2d(
    x: Tensor,
    *,
    kernel_size: Pair,
    stride: Pair | None,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    """F.avg_pool2d; stride None = kernel_size."""
    return torch._C._nn.avg_pool2d(
        x, kernel_size, () if stride is None else stride, padding, ceil_mode, count_include_pad, divisor_override
    )


@register_op(Op.ADAPTIVE_AVG_POOL2D, attrs={"output_size": REQUIRED})
def adaptive_avg_pool2d(x: Tensor, *, output_size: Pair) -> Tensor:
    """F.adaptive_avg_pool2d with an explicit (oH, oW)."""
    return torch._C._nn.adaptive_avg_pool2d(x, output_size)
