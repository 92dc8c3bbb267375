"""Creation ops (no tensor inputs): registry entries whose functions are the torch eager references.

The result's device is the ``device`` attribute, so their shape inference runs the reference on "meta" and
reports that device, instead of the default "device of the first input".
"""

from __future__ import annotations

from typing import Any

import torch

from ..dtype import DType
from ..graph import Node
from ..ops import Op
from ..registry import REQUIRED, OutSpec, infer_by_meta, register_op

Tensor = torch.Tensor


def _infer_on_device(node: Node) -> list[OutSpec]:
    meta = Node(node.op, node.inputs, {**node.attrs, "device": "meta"}, [], node.name, node.syms)
    return [(shape, dtype, node.attrs["device"], kind) for shape, dtype, _, kind in infer_by_meta(meta)]


@register_op(
    Op.ARANGE,
    inputs=0,
    attrs={"start": 0, "end": REQUIRED, "step": 1, "dtype": None, "device": "cpu"},
    infer=_infer_on_device,
)
def arange(*, start: Any, end: Any, step: Any, dtype: DType | None, device: str) -> Tensor:
    """torch.arange(start, end, step); dtype None = i64 for int bounds, the default float type otherwise."""
    return torch.arange(start, end, step, dtype=None if dtype is None else dtype.to_torch(), device=device)


@register_op(
    Op.FULL,
    inputs=0,
    attrs={"shape": REQUIRED, "value": REQUIRED, "dtype": None, "device": "cpu"},
    infer=_infer_on_device,
)
def full(*, shape: tuple[int, ...], value: Any, dtype: DType | None, device: str) -> Tensor:
    """torch.full(shape, value); dtype None = bool / i64 / default float type after the value's Python type."""
    return torch.full(shape, value, dtype=None if dtype is None else dtype.to_torch(), device=device)
