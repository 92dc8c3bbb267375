"""FALLBACK: any operator we do not model, run through torch by name. Never lowered to a native kernel.

The node keeps the operator's qualified name and an argument template (plain data with Arg/Ref markers), so a
fallback node serializes like any other node, and loading an artifact resolves names, never unpickles code.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import torch

from ..dtype import DType
from ..graph import Arg, TorchObj
from ..ops import Op
from ..registry import register_op

# Python callables a graph may name (symbolic-int helpers Dynamo/export emit); nothing else is resolvable.
_PY_MODULES = {"operator": operator, "math": math, "torch": torch}


@functools.cache
def resolve_target(target: str) -> Any:
    """'aten::add.Tensor' -> torch.ops.aten.add.Tensor; 'py:operator.mul' -> operator.mul."""
    if target.startswith("py:"):
        mod, _, name = target[3:].rpartition(".")
        if mod not in _PY_MODULES or name.startswith("_") and not name.startswith("_sym"):
            raise ValueError(f"fallback target {target!r} is not an allowed callable")
        return getattr(_PY_MODULES[mod], name)
    ns, _, rest = target.partition("::")
    name, _, overload = rest.partition(".")
    try:
        packet = getattr(getattr(torch.ops, ns), name)
        return getattr(packet, overload or "default")
    except (AttributeError, RuntimeError) as e:
        raise ValueError(f"unknown torch operator {target!r} (not in this torch build)") from e


def decode(template: Any, inputs: tuple[Any, ...]) -> Any:
    """Turn an argument template back into call arguments (Arg -> tensor, DType -> torch.dtype, ...)."""
    if isinstance(template, Arg):
        return inputs[template.index]
    if isinstance(template, DType):
        return template.to_torch()
    if isinstance(template, TorchObj):
        return torch.device(template.value) if template.kind == "device" else getattr(torch, template.value)
    if isinstance(template, (list, tuple)):
        return type(template)(decode(t, inputs) for t in template)
    if isinstance(template, dict):
        return {k: decode(t, inputs) for k, t in template.items()}
    return template


@register_op(Op.FALLBACK, inputs=(0, 1 << 16), attrs={"target": None, "args": (), "kwargs": {}, "outputs": None})
def fallback(*inputs: Any, target: str, args: tuple, kwargs: dict, outputs: tuple[int, ...] | None) -> Any:
    """Call the named torch operator; ``outputs`` picks the tensor results of a tuple-returning operator."""
    out = resolve_target(target)(*decode(args, inputs), **decode(kwargs, inputs))
    if outputs is None:
        return out
    return tuple(out[i] for i in outputs)
