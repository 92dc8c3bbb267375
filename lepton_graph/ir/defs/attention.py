"""Attention: registry entries whose functions are the torch eager references."""

from __future__ import annotations

import torch

from ..ops import Op
from ..registry import register_op

Tensor = torch.Tensor


@register_op(Op.SDPA, inputs=(3, 4), attrs={"is_causal": False, "scale": None, "enable_gqa": False})
def sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    is_causal: bool,
    scale: float | None,
    enable_gqa: bool,
) -> Tensor:
    """F.scaled_dot_product_attention with dropout_p=0: q (..., L, E), k (..., S, E), v (..., S, Ev); the
    optional mask (bool = keep, or float = added) broadcasts to (..., L, S); scale None = 1/sqrt(E)."""
    return torch._C._nn.scaled_dot_product_attention(q, k, v, mask, 0.0, is_causal, scale=scale, enable_gqa=enable_gqa)
