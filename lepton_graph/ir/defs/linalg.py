"""Linear algebra: registry entries whose functions are the torch eager references."""

from __future__ import annotations

import torch

from ..ops import Op
from ..registry import register_op

Tensor = torch.Tensor


@register_op(Op.LINEAR, inputs=(2, 3))
def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """F.linear: x @ w.T + b, with w of shape (out_features, in_features)."""
    return torch._C._nn.linear(x, w, b)


@register_op(Op.MATMUL, inputs=2)
def matmul(a: Tensor, b: Tensor) -> Tensor:
    """torch.matmul: batched and broadcasting; also what aten.mm / aten.bmm import as."""
    return torch.matmul(a, b)


@register_op(Op.ADDMM, inputs=3, attrs={"beta": 1, "alpha": 1})
def addmm(bias: Tensor, a: Tensor, b: Tensor, *, beta: float, alpha: float) -> Tensor:
    """torch.addmm: beta*bias + alpha*(a @ b) for 2-d a, b; bias broadcasts to the result."""
    return torch.addmm(bias, a, b, beta=beta, alpha=alpha)
