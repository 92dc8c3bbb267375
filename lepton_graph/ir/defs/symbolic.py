"""Symbolic integer ops for dynamic shapes: their results are Python ints (values of kind "sym")."""

from __future__ import annotations

import operator
from typing import Any

import torch

from ..ops import Op
from ..registry import REQUIRED, register_op

_SYM_FNS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


@register_op(Op.SYM_SIZE, attrs={"dim": REQUIRED})
def sym_size(x: torch.Tensor, *, dim: int) -> int:
    """x.size(dim) as a Python int (aten.sym_size.int)."""
    return x.size(dim)


@register_op(Op.SYM_ARITH, inputs=0, attrs={"fn": REQUIRED, "a": REQUIRED, "b": REQUIRED})
def sym_arith(*, fn: str, a: Any, b: Any) -> Any:
    """``a fn b`` on ints, fn one of "add", "sub", "mul", "floordiv"; a and b are usually Refs to sym values."""
    return _SYM_FNS[fn](a, b)
