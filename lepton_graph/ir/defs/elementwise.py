"""Elementwise ops (unary, binary, where, cast): registry entries whose functions are the torch eager references.

Binary ops take two tensor inputs ``(a, b)``, or one tensor input ``(a,)`` and the Python number ``scalar``
attribute; ``reverse=True`` puts the scalar on the left (``2 - x`` is SUB(x, scalar=2, reverse=True)). Python
scalars promote as torch's "wrapped numbers" do (``int_tensor + 2.0`` is f32, ``f16_tensor * 2.0`` stays f16),
which the references get by passing the number straight to torch, or a 0-d tensor of ``result_type(a, scalar)``
where torch has no Number overload.
"""

from __future__ import annotations

from typing import Any

import torch

from ..dtype import DType
from ..ops import Op
from ..registry import REQUIRED, register_op

Tensor = torch.Tensor
_BINARY = {"scalar": None, "reverse": False}


def _wrapped(scalar: Any, like: Tensor) -> Tensor:
    """A 0-d CPU tensor standing for a Python number, typed so promotion with ``like`` equals torch's."""
    return torch.tensor(scalar, dtype=torch.result_type(like, scalar))


# -- unary ------------------------------------------------------------------------------------------------------


@register_op(Op.NEG)
def neg(x: Tensor) -> Tensor:
    return torch.neg(x)


@register_op(Op.ABS)
def abs_(x: Tensor) -> Tensor:
    return torch.abs(x)


@register_op(Op.EXP)
def exp(x: Tensor) -> Tensor:
    return torch.exp(x)


@register_op(Op.LOG)
def log(x: Tensor) -> Tensor:
    return torch.log(x)


@register_op(Op.SQRT)
def sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(x)


@register_op(Op.RSQRT)
def rsqrt(x: Tensor) -> Tensor:
    return torch.rsqrt(x)


@register_op(Op.ERF)
def erf(x: Tensor) -> Tensor:
    return torch.erf(x)


@register_op(Op.TANH)
def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


@register_op(Op.SIGMOID)
def sigmoid(x: Tensor) -> Tensor:
    return torch.sigmoid(x)


@register_op(Op.RELU)
def relu(x: Tensor) -> Tensor:
    return torch.relu(x)


@register_op(Op.GELU, attrs={"approximate": "none"})
def gelu(x: Tensor, *, approximate: str) -> Tensor:
    """F.gelu; ``approximate`` is "none" (erf form) or "tanh"."""
    return torch._C._nn.gelu(x, approximate=approximate)


@register_op(Op.SILU)
def silu(x: Tensor) -> Tensor:
    return torch._C._nn.silu(x)


@register_op(Op.SIN)
def sin(x: Tensor) -> Tensor:
    return torch.sin(x)


@register_op(Op.COS)
def cos(x: Tensor) -> Tensor:
    return torch.cos(x)


@register_op(Op.RECIPROCAL)
def reciprocal(x: Tensor) -> Tensor:
    return torch.reciprocal(x)


@register_op(Op.LOGICAL_NOT)
def logical_not(x: Tensor) -> Tensor:
    return torch.logical_not(x)


@register_op(Op.CLAMP, attrs={"min": None, "max": None})
def clamp(x: Tensor, *, min: Any, max: Any) -> Tensor:
    """torch.clamp with Python-number bounds; None = unbounded (one bound must be given)."""
    return torch.clamp(x, min, max)


@register_op(Op.CAST, attrs={"dtype": REQUIRED})
def cast(x: Tensor, *, dtype: DType) -> Tensor:
    """x.to(dtype) (aten._to_copy with only a dtype change)."""
    return x.to(dtype.to_torch())


# -- binary -----------------------------------------------------------------------------------------------------


@register_op(Op.ADD, inputs=(1, 2), attrs={**_BINARY, "alpha": 1})
def add(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool, alpha: Any) -> Tensor:
    """a + alpha*b; reverse: scalar + alpha*a."""
    if b is not None:
        return torch.add(a, b, alpha=alpha)
    return torch.add(scalar, a, alpha=alpha) if reverse else torch.add(a, scalar, alpha=alpha)


@register_op(Op.SUB, inputs=(1, 2), attrs={**_BINARY, "alpha": 1})
def sub(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool, alpha: Any) -> Tensor:
    """a - alpha*b; reverse: scalar - alpha*a (aten.rsub)."""
    if b is not None:
        return torch.sub(a, b, alpha=alpha)
    return torch.sub(scalar, a, alpha=alpha) if reverse else torch.sub(a, scalar, alpha=alpha)


@register_op(Op.MUL, inputs=(1, 2), attrs=_BINARY)
def mul(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    if b is not None:
        return torch.mul(a, b)
    return torch.mul(scalar, a) if reverse else torch.mul(a, scalar)


@register_op(Op.DIV, inputs=(1, 2), attrs={**_BINARY, "rounding_mode": None})
def div(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool, rounding_mode: str | None) -> Tensor:
    """torch.div: true division, or rounding_mode "trunc" / "floor"."""
    if b is not None:
        return torch.div(a, b, rounding_mode=rounding_mode)
    if reverse:
        return torch.div(scalar, a, rounding_mode=rounding_mode)
    return torch.div(a, scalar, rounding_mode=rounding_mode)


@register_op(Op.POW, inputs=(1, 2), attrs=_BINARY)
def pow_(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    if b is not None:
        return torch.pow(a, b)
    return torch.pow(scalar, a) if reverse else torch.pow(a, scalar)


@register_op(Op.MAXIMUM, inputs=(1, 2), attrs=_BINARY)
def maximum(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    """torch.maximum (NaN-propagating); commutative, so ``reverse`` changes nothing. With a scalar it is
    clamp_min, which promotes and propagates NaN the same way but has no bool kernel."""
    if b is not None:
        return torch.maximum(a, b)
    return torch.clamp_min(a, scalar) if a.dtype != torch.bool else torch.maximum(a, _wrapped(scalar, a))


@register_op(Op.MINIMUM, inputs=(1, 2), attrs=_BINARY)
def minimum(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    """torch.minimum; with a scalar, clamp_max (see MAXIMUM)."""
    if b is not None:
        return torch.minimum(a, b)
    return torch.clamp_max(a, scalar) if a.dtype != torch.bool else torch.minimum(a, _wrapped(scalar, a))


def _comparison(op: Op, fn: Any, mirrored: Any) -> None:
    """Register a comparison; ``scalar OP a`` is ``a MIRRORED scalar`` (2 < x is x > 2)."""

    def compare(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
        if b is not None:
            return fn(a, b)
        return mirrored(a, scalar) if reverse else fn(a, scalar)

    compare.__name__ = compare.__qualname__ = op.value
    compare.__doc__ = f"torch.{fn.__name__}(a, b); a tensor compared with a Python number when b is absent."
    register_op(op, inputs=(1, 2), attrs=_BINARY)(compare)


_comparison(Op.EQ, torch.eq, torch.eq)
_comparison(Op.NE, torch.ne, torch.ne)
_comparison(Op.LT, torch.lt, torch.gt)
_comparison(Op.LE, torch.le, torch.ge)
_comparison(Op.GT, torch.gt, torch.lt)
_comparison(Op.GE, torch.ge, torch.le)


@register_op(Op.LOGICAL_AND, inputs=(1, 2), attrs=_BINARY)
def logical_and(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    return torch.logical_and(a, b if b is not None else torch.tensor(scalar))


@register_op(Op.LOGICAL_OR, inputs=(1, 2), attrs=_BINARY)
def logical_or(a: Tensor, b: Tensor | None = None, *, scalar: Any, reverse: bool) -> Tensor:
    return torch.logical_or(a, b if b is not None else torch.tensor(scalar))


# -- ternary ----------------------------------------------------------------------------------------------------


@register_op(Op.WHERE, inputs=(1, 3), attrs={"scalar_a": None, "scalar_b": None})
def where(cond: Tensor, *ab: Tensor, scalar_a: Any, scalar_b: Any) -> Tensor:
    """torch.where(cond, a, b). A branch given as a Python number sits in its attr and is left out of the inputs:
    inputs are (cond, a, b), (cond, b) with scalar_a, (cond, a) with scalar_b, or (cond,) with both."""
    if scalar_a is None and scalar_b is None:
        return torch.where(cond, ab[0], ab[1])
    if scalar_a is None:
        return torch.where(cond, ab[0], scalar_b)
    if scalar_b is None:
        return torch.where(cond, scalar_a, ab[0])
    return torch.where(cond, scalar_a, scalar_b)
