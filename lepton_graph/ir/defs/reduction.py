"""Reductions and normalised reductions: registry entries whose functions are the torch eager references.

``dims`` is a tuple of ints or None (= all dims). As in torch, an empty tuple also means all dims; the importer
turns ATen's empty dim lists into None, the canonical form.
"""

from __future__ import annotations

import torch

from ..dtype import DType
from ..ops import Op
from ..registry import REQUIRED, register_op

Tensor = torch.Tensor
_REDUCE = {"dims": None, "keepdim": False}


def _torch(dtype: DType | None) -> torch.dtype | None:
    return None if dtype is None else dtype.to_torch()


@register_op(Op.SUM, attrs={**_REDUCE, "dtype": None})
def sum_(x: Tensor, *, dims: tuple[int, ...] | None, keepdim: bool, dtype: DType | None) -> Tensor:
    """torch.sum(x, dims, keepdim, dtype=dtype); integer and bool inputs accumulate (and return) i64."""
    return torch.sum(x, dims, keepdim, dtype=_torch(dtype))


@register_op(Op.MEAN, attrs={**_REDUCE, "dtype": None})
def mean(x: Tensor, *, dims: tuple[int, ...] | None, keepdim: bool, dtype: DType | None) -> Tensor:
    return torch.mean(x, dims, keepdim, dtype=_torch(dtype))


@register_op(Op.AMAX, attrs=_REDUCE)
def amax(x: Tensor, *, dims: tuple[int, ...] | None, keepdim: bool) -> Tensor:
    return torch.amax(x, () if dims is None else dims, keepdim)


@register_op(Op.AMIN, attrs=_REDUCE)
def amin(x: Tensor, *, dims: tuple[int, ...] | None, keepdim: bool) -> Tensor:
    return torch.amin(x, () if dims is None else dims, keepdim)


@register_op(Op.ARGMAX, attrs={"dim": None, "keepdim": False})
def argmax(x: Tensor, *, dim: int | None, keepdim: bool) -> Tensor:
    """torch.argmax; dim None = index into the flattened tensor."""
    return torch.argmax(x, dim, keepdim)


@register_op(Op.SOFTMAX, attrs={"dim": REQUIRED, "dtype": None})
def softmax(x: Tensor, *, dim: int, dtype: DType | None) -> Tensor:
    """torch.softmax(x, dim, dtype): with a dtype the input is cast to it first."""
    return torch.softmax(x, dim, _torch(dtype))


@register_op(Op.LOG_SOFTMAX, attrs={"dim": REQUIRED, "dtype": None})
def log_softmax(x: Tensor, *, dim: int, dtype: DType | None) -> Tensor:
    return torch.log_softmax(x, dim, _torch(dtype))
