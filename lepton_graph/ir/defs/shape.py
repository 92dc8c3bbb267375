"""Shape and data-movement ops: registry entries whose functions are the torch eager references.

Size attributes (RESHAPE/EXPAND ``shape``, SLICE bounds, SELECT ``index``) may hold ``Ref`` entries for sizes
known only at run time; they are resolved to ints before the reference runs. View ops may return views of their
input: the IR has no mutation, so aliasing is invisible inside a graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..ops import Op
from ..registry import REQUIRED, register_op

Tensor = torch.Tensor
_MEMORY_FORMATS = {
    "contiguous_format": torch.contiguous_format,
    "channels_last": torch.channels_last,
    "channels_last_3d": torch.channels_last_3d,
    "preserve_format": torch.preserve_format,
}
_slice = torch.ops.aten.slice.Tensor


@register_op(Op.RESHAPE, attrs={"shape": REQUIRED})
def reshape(x: Tensor, *, shape: tuple[int, ...]) -> Tensor:
    """torch.reshape (one entry may be -1); aten.view / _unsafe_view / flatten import as this."""
    return torch.reshape(x, shape)


@register_op(Op.PERMUTE, attrs={"dims": REQUIRED})
def permute(x: Tensor, *, dims: tuple[int, ...]) -> Tensor:
    return torch.permute(x, dims)


@register_op(Op.TRANSPOSE, attrs={"dim0": REQUIRED, "dim1": REQUIRED})
def transpose(x: Tensor, *, dim0: int, dim1: int) -> Tensor:
    return torch.transpose(x, dim0, dim1)


@register_op(Op.EXPAND, attrs={"shape": REQUIRED})
def expand(x: Tensor, *, shape: tuple[int, ...]) -> Tensor:
    """x.expand(shape): -1 keeps a dim, new leading dims may be added."""
    return x.expand(shape)


@register_op(Op.SQUEEZE, attrs={"dims": None})
def squeeze(x: Tensor, *, dims: tuple[int, ...] | None) -> Tensor:
    """torch.squeeze: drop the listed dims that have size 1 (all size-1 dims when dims is None)."""
    return torch.squeeze(x) if dims is None else torch.squeeze(x, dims)


@register_op(Op.UNSQUEEZE, attrs={"dim": REQUIRED})
def unsqueeze(x: Tensor, *, dim: int) -> Tensor:
    return torch.unsqueeze(x, dim)


@register_op(Op.SLICE, attrs={"dim": 0, "start": None, "end": None, "step": 1})
def slice_(x: Tensor, *, dim: int, start: int | None, end: int | None, step: int) -> Tensor:
    """x[..., start:end:step] along ``dim`` (aten.slice.Tensor: out-of-range bounds are clamped, step > 0)."""
    return _slice(x, dim, start, end, step)


@register_op(Op.SELECT, attrs={"dim": REQUIRED, "index": REQUIRED})
def select(x: Tensor, *, dim: int, index: int) -> Tensor:
    """torch.select: x[..., index] along ``dim``, which is removed; negative index counts from the end."""
    return torch.select(x, dim, index)


@register_op(Op.CAT, inputs=(1, 1 << 16), attrs={"dim": 0})
def cat(*xs: Tensor, dim: int) -> Tensor:
    """torch.cat of all inputs along ``dim`` (the inputs are the tensors to join)."""
    return torch.cat(xs, dim)


@register_op(Op.SPLIT, attrs={"sizes": REQUIRED, "dim": 0})
def split(x: Tensor, *, sizes: Sequence[int], dim: int) -> tuple[Tensor, ...]:
    """torch.split(x, sizes, dim) with explicit sizes (summing to x.shape[dim]): one output per entry."""
    return torch.split_with_sizes(x, sizes, dim)


@register_op(Op.CONTIGUOUS, attrs={"memory_format": None})
def contiguous(x: Tensor, *, memory_format: str | None) -> Tensor:
    """x.contiguous(memory_format); the format is named as in torch ("channels_last"); None = contiguous_format."""
    if memory_format is None:
        return x.contiguous()
    return x.contiguous(memory_format=_MEMORY_FORMATS[memory_format])


@register_op(Op.EMBEDDING, inputs=2, attrs={"padding_idx": None, "scale_grad_by_freq": False, "sparse": False})
def embedding(
    weight: Tensor, indices: Tensor, *, padding_idx: int | None, scale_grad_by_freq: bool, sparse: bool
) -> Tensor:
    """F.embedding(indices, weight) (no max_norm, which mutates the weight); padding_idx is None or in
    [0, num_embeddings) and, like the last two attrs, only matters for gradients."""
    return torch.embedding(weight, indices, -1 if padding_idx is None else padding_idx, scale_grad_by_freq, sparse)


@register_op(Op.GATHER, inputs=2, attrs={"dim": REQUIRED})
def gather(x: Tensor, index: Tensor, *, dim: int) -> Tensor:
    """torch.gather(x, dim, index)."""
    return torch.gather(x, dim, index)


@register_op(Op.INDEX_SELECT, inputs=2, attrs={"dim": REQUIRED})
def index_select(x: Tensor, index: Tensor, *, dim: int) -> Tensor:
    """torch.index_select(x, dim, index) with a 0-d or 1-d index."""
    return torch.index_select(x, dim, index)
