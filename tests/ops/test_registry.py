"""Every registered op against torch eager, with hypothesis inputs (empty / size-1 / odd dims, strided views).

For each op a case builder draws inputs and attrs plus ``alt``: the same computation through a different torch
call path (a Tensor method, an ATen overload, Python indexing or the formula). The test checks that
(a) shape/dtype inference (Graph.add_node) matches the real result, (b) the registry's reference equals ``alt``,
(c) a one-node graph run by the reference interpreter gives the same result.
A new op without a case fails ``test_every_op_has_a_case``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from lepton_graph.backends import default_backends
from lepton_graph.compiler import CompiledGraph
from lepton_graph.ir import OPS, DType, Graph, Op, Ref, interpret
from lepton_graph.ir.registry import resolve_attrs
from tests.strategies import (
    FLOATS,
    INTS,
    broadcast_shapes,
    dims_of,
    index_tensors,
    scalars,
    shapes,
    sides,
    subsets,
    tensors,
)

aten = torch.ops.aten
# torch warns that padding="same" with an even kernel copies the input; the case is drawn on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@dataclass
class Case:
    inputs: list[torch.Tensor]
    attrs: dict[str, Any]
    alt: Callable[[], Any]  # the same result by another torch call path
    syms: list[int] = field(default_factory=list)  # run-time values of Ref(i) in attrs
    # for each sym, the (input index, dim) whose size it is: that dim becomes symbolic ("s<i>") in the graph
    sym_dims: list[tuple[int, int] | None] = field(default_factory=list)
    atol: float | None = None
    rtol: float | None = None


Draw = Callable[[st.SearchStrategy], Any]
CASES: dict[Op, Callable[[Draw], Case]] = {}


def case(*ops: Op) -> Callable:
    def deco(fn: Callable[[Draw, Op], Case]) -> Callable:
        for op in ops:
            CASES[op] = lambda draw, op=op: fn(draw, op)
        return fn

    return deco


def tensor(draw: Draw, shape: Any, dtypes: Any = FLOATS, **kw: Any) -> torch.Tensor:
    dtype = draw(st.sampled_from(dtypes)) if isinstance(dtypes, tuple) else dtypes
    return draw(tensors(tuple(shape), dtype, **kw))


# -- elementwise --------------------------------------------------------------------------------------------------

UNARY: dict[Op, tuple[Callable, tuple]] = {
    Op.NEG: (operator.neg, FLOATS + INTS),
    Op.ABS: (torch.Tensor.abs, FLOATS + INTS),
    Op.EXP: (torch.Tensor.exp, FLOATS + (torch.int64,)),
    Op.LOG: (torch.Tensor.log, FLOATS + (torch.int64,)),
    Op.SQRT: (torch.Tensor.sqrt, FLOATS),
    Op.RSQRT: (lambda x: 1 / x.sqrt(), FLOATS),
    Op.ERF: (torch.special.erf, FLOATS),
    Op.TANH: (torch.Tensor.tanh, FLOATS),
    Op.SIGMOID: (torch.special.expit, FLOATS),
    Op.RELU: (lambda x: x.clamp_min(0), FLOATS + INTS),
    Op.SILU: (lambda x: x * torch.sigmoid(x), FLOATS),
    Op.SIN: (torch.Tensor.sin, FLOATS),
    Op.COS: (torch.Tensor.cos, FLOATS),
    Op.RECIPROCAL: (lambda x: 1 / x, FLOATS + (torch.int64,)),
    Op.LOGICAL_NOT: (lambda x: x == 0, FLOATS + INTS + (torch.bool,)),
}


@case(*UNARY)
def _unary(draw: Draw, op: Op) -> Case:
    fn, dtypes = UNARY[op]
    x = tensor(draw, draw(shapes()), dtypes)
    return Case([x], {}, lambda: fn(x), atol=1e-5, rtol=1e-5)


@case(Op.GELU)
def _gelu(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()))
    approximate = draw(st.sampled_from(["none", "tanh"]))
    if approximate == "none":
        alt = lambda: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))  # noqa: E731
    else:
        alt = lambda: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))  # noqa: E731
    return Case([x], {"approximate": approximate}, alt, atol=1e-5, rtol=1e-5)


@case(Op.CLAMP)
def _clamp(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS)
    lo, hi = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    bound = st.integers(-3, 3) if not x.dtype.is_floating_point else st.floats(-3, 3, width=32)
    attrs = {"min": draw(bound) if lo else None, "max": draw(bound) if hi else None}
    return Case([x], attrs, lambda: aten.clamp.default(x, attrs["min"], attrs["max"]))


@case(Op.CAST)
def _cast(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS + (torch.bool,))
    dt = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool]))
    return Case([x], {"dtype": DType.from_torch(dt)}, lambda: aten._to_copy.default(x, dtype=dt))


BINARY: dict[Op, tuple[tuple, Callable, Callable]] = {
    # op: (dtypes, alt for tensor (a, b), alt for scalar (a, s, reverse))
    Op.MUL: (FLOATS + INTS + (torch.bool,), operator.mul, lambda a, s, r: s * a if r else a * s),
    Op.POW: (FLOATS, operator.pow, lambda a, s, r: s**a if r else a**s),
    Op.MAXIMUM: (
        FLOATS + INTS + (torch.bool,),
        aten.maximum.default,
        lambda a, s, r: aten.maximum.default(a, torch.tensor(s, dtype=torch.result_type(a, s))),
    ),
    Op.MINIMUM: (
        FLOATS + INTS + (torch.bool,),
        aten.minimum.default,
        lambda a, s, r: aten.minimum.default(a, torch.tensor(s, dtype=torch.result_type(a, s))),
    ),
    Op.EQ: (FLOATS + INTS, operator.eq, lambda a, s, r: s == a if r else a == s),
    Op.NE: (FLOATS + INTS, operator.ne, lambda a, s, r: s != a if r else a != s),
    Op.LT: (FLOATS + INTS, operator.lt, lambda a, s, r: s < a if r else a < s),
    Op.LE: (FLOATS + INTS, operator.le, lambda a, s, r: s <= a if r else a <= s),
    Op.GT: (FLOATS + INTS, operator.gt, lambda a, s, r: s > a if r else a > s),
    Op.GE: (FLOATS + INTS, operator.ge, lambda a, s, r: s >= a if r else a >= s),
    Op.LOGICAL_AND: (
        FLOATS + INTS + (torch.bool,),
        lambda a, b: a.bool() & b.bool(),
        lambda a, s, r: a.bool() & bool(s),
    ),
    Op.LOGICAL_OR: (
        FLOATS + INTS + (torch.bool,),
        lambda a, b: a.bool() | b.bool(),
        lambda a, s, r: a.bool() | bool(s),
    ),
}


def _operands(draw: Draw, dtypes: tuple, *, exclude_zero: bool = False) -> tuple[torch.Tensor, Any, bool]:
    """(a, b, reverse): b is a tensor (maybe of another dtype, to exercise promotion) or a Python number."""
    sa, sb = draw(broadcast_shapes(2))
    a = tensor(draw, sa, dtypes)
    if draw(st.booleans()):
        b = tensor(draw, sb, dtypes, exclude_zero=exclude_zero)
        return a, b, False
    s = draw(scalars())
    if exclude_zero and s == 0:
        s = 2
    return a, s, draw(st.booleans())


@case(*BINARY)
def _binary(draw: Draw, op: Op) -> Case:
    dtypes, alt_t, alt_s = BINARY[op]
    a, b, rev = _operands(draw, dtypes)
    if isinstance(b, torch.Tensor):
        return Case([a, b], {}, lambda: alt_t(a, b), atol=1e-5, rtol=1e-5)
    return Case([a], {"scalar": b, "reverse": rev}, lambda: alt_s(a, b, rev), atol=1e-5, rtol=1e-5)


@case(Op.ADD, Op.SUB)
def _add_sub(draw: Draw, op: Op) -> Case:
    a, b, rev = _operands(draw, FLOATS + INTS)
    if op is Op.SUB and isinstance(b, bool):
        b = int(b)  # torch rejects subtraction with bools
    alpha = draw(st.sampled_from([1, 2, -1]))
    name = "add" if op is Op.ADD else "sub"
    if isinstance(b, torch.Tensor):
        return Case([a, b], {"alpha": alpha}, lambda: getattr(aten, name).Tensor(a, b, alpha=alpha))
    attrs = {"scalar": b, "reverse": rev, "alpha": alpha}
    if not rev:
        return Case([a], attrs, lambda: getattr(aten, name).Scalar(a, b, alpha))
    if op is Op.SUB:
        return Case([a], attrs, lambda: aten.rsub.Scalar(a, b, alpha))
    return Case([a], attrs, lambda: aten.mul.Tensor(a, alpha) + b, atol=1e-5, rtol=1e-5)


@case(Op.DIV)
def _div(draw: Draw, op: Op) -> Case:
    mode = draw(st.sampled_from([None, "trunc", "floor"]))
    a, b, rev = _operands(draw, FLOATS + INTS, exclude_zero=True)
    if rev:  # the scalar is the dividend, so the tensor must have no zeros
        a = tensor(draw, a.shape, a.dtype, exclude_zero=True)
    attrs = {"rounding_mode": mode}
    if isinstance(b, torch.Tensor):
        return Case([a, b], attrs, lambda: aten.div.Tensor_mode(a, b, rounding_mode=mode))
    attrs.update(scalar=b, reverse=rev)
    if not rev:
        return Case([a], attrs, lambda: aten.div.Scalar_mode(a, b, rounding_mode=mode))
    num = lambda: torch.tensor(b, dtype=torch.result_type(b, a))  # noqa: E731
    return Case([a], attrs, lambda: aten.div.Tensor_mode(num(), a, rounding_mode=mode), atol=1e-5, rtol=1e-5)


@case(Op.WHERE)
def _where(draw: Draw, op: Op) -> Case:
    sc, sa, sb = draw(broadcast_shapes(3))
    cond = tensor(draw, sc, torch.bool)
    a, b = tensor(draw, sa, FLOATS + INTS), tensor(draw, sb, FLOATS + INTS)
    kind = draw(st.sampled_from(["tensors", "scalar_a", "scalar_b", "scalars"]))
    s1, s2 = draw(scalars()), draw(scalars())
    if kind == "tensors":
        return Case([cond, a, b], {}, lambda: aten.where.self(cond, a, b))
    if kind == "scalar_a":
        return Case([cond, b], {"scalar_a": s1}, lambda: aten.where.ScalarSelf(cond, s1, b))
    if kind == "scalar_b":
        return Case([cond, a], {"scalar_b": s2}, lambda: aten.where.ScalarOther(cond, a, s2))
    return Case([cond], {"scalar_a": s1, "scalar_b": s2}, lambda: aten.where.Scalar(cond, s1, s2))


# -- reductions ---------------------------------------------------------------------------------------------------


@case(Op.SUM, Op.MEAN)
def _sum_mean(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + (INTS if op is Op.SUM else ()))
    dims = draw(st.one_of(st.none(), subsets(x.dim())))
    keepdim = draw(st.booleans())
    dt = draw(st.sampled_from([None, torch.float64]))
    attrs = {"dims": dims, "keepdim": keepdim, "dtype": None if dt is None else DType.from_torch(dt)}
    overload = aten.sum.dim_IntList if op is Op.SUM else aten.mean.dim
    return Case([x], attrs, lambda: overload(x, dims, keepdim, dtype=dt), atol=1e-5, rtol=1e-5)


def _nonempty_reduced(draw: Draw, shape: tuple, dims: tuple | None, dtypes: tuple) -> torch.Tensor:
    """A tensor whose reduced dims (all if dims is None) are non-empty, as amax/argmax require."""
    shape_ = list(shape)
    for d in range(len(shape_)) if not dims else [d % len(shape_) for d in dims]:  # () means all, as in torch
        shape_[d] = max(shape_[d], 1)
    return tensor(draw, shape_, dtypes)


@case(Op.AMAX, Op.AMIN)
def _amax(draw: Draw, op: Op) -> Case:
    shape = draw(shapes())
    dims = draw(st.one_of(st.none(), subsets(len(shape))))
    x = _nonempty_reduced(draw, shape, dims, FLOATS + INTS)
    keepdim = draw(st.booleans())
    method = torch.Tensor.amax if op is Op.AMAX else torch.Tensor.amin
    return Case([x], {"dims": dims, "keepdim": keepdim}, lambda: method(x, dims or (), keepdim))


@case(Op.ARGMAX)
def _argmax(draw: Draw, op: Op) -> Case:
    shape = draw(shapes())
    dim = draw(st.one_of(st.none(), dims_of(len(shape)))) if shape else None
    x = _nonempty_reduced(draw, shape, None if dim is None else (dim,), FLOATS + INTS)
    keepdim = draw(st.booleans())
    return Case([x], {"dim": dim, "keepdim": keepdim}, lambda: x.argmax(dim, keepdim))


@case(Op.SOFTMAX, Op.LOG_SOFTMAX)
def _softmax(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(min_rank=1)))
    dim = draw(dims_of(x.dim()))
    dt = draw(st.sampled_from([None, torch.float64]))
    fn = aten._softmax.default if op is Op.SOFTMAX else aten._log_softmax.default
    attrs = {"dim": dim, "dtype": None if dt is None else DType.from_torch(dt)}
    return Case([x], attrs, lambda: fn(x if dt is None else x.to(dt), dim, False), atol=1e-6, rtol=1e-5)


# -- linear algebra -----------------------------------------------------------------------------------------------


@case(Op.LINEAR)
def _linear(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    n_in, n_out = draw(sides()), draw(sides())
    x = tensor(draw, (*draw(shapes(max_rank=2)), n_in), dt)
    w = tensor(draw, (n_out, n_in), dt)
    if draw(st.booleans()):
        b = tensor(draw, (n_out,), dt)
        return Case([x, w, b], {}, lambda: torch.matmul(x, w.t()) + b, atol=1e-4, rtol=1e-4)
    return Case([x, w], {}, lambda: torch.matmul(x, w.t()), atol=1e-4, rtol=1e-4)


@case(Op.QLINEAR)
def _qlinear(draw: Draw, op: Op) -> Case:
    n_in, n_out = draw(sides()), draw(sides())
    x = tensor(draw, (*draw(shapes(max_rank=2)), n_in), torch.float32)
    w = draw(tensors((n_out, n_in), torch.int8, low=-127, high=128))
    scale = tensor(draw, (n_out,), torch.float32, low=1e-3, high=0.1)
    b = tensor(draw, (n_out,), torch.float32) if draw(st.booleans()) else None

    def alt() -> torch.Tensor:  # row by row in int64, from the formula in csrc/kernels/gemm_int8.h
        rows = x.reshape(math.prod(x.shape[:-1]), n_in)
        out = torch.empty(rows.shape[0], n_out)
        for i, r in enumerate(rows):
            mn, mx = min(float(r.min()) if n_in else 0.0, 0.0), max(float(r.max()) if n_in else 0.0, 0.0)
            s = torch.tensor((mx - mn) / 255.0, dtype=torch.float32) if n_in else torch.tensor(0.0)
            s = s if s > 0 else torch.tensor(1.0)
            z = int(torch.clamp(torch.round(torch.tensor(-mn, dtype=torch.float32) / s), 0, 255))
            q = torch.clamp(torch.round(torch.clamp(r * (1.0 / s), -256, 511)) + z, 0, 255).long()
            out[i] = ((q - z) @ w.long().t()).to(torch.float32) * (s * scale)
        out = out.reshape(*x.shape[:-1], n_out)
        return out if b is None else out + b

    return Case([x, w, scale] + ([b] if b is not None else []), {"act": "dynamic"}, alt, atol=1e-5, rtol=1e-5)


@case(Op.WQLINEAR)
def _wqlinear(draw: Draw, op: Op) -> Case:
    bits, group = draw(st.sampled_from([(8, 0), (8, 4), (4, 8), (4, 16)]))
    n_in, n_out = draw(sides()), draw(sides())
    g = n_in if group == 0 or group >= n_in else group
    ng = max(1, -(-n_in // max(g, 1)))
    x = tensor(draw, (*draw(shapes(max_rank=2)), n_in), torch.float32)
    if bits == 8:
        q = draw(tensors((n_out, n_in), torch.int8, low=-127, high=128))
        vals, zero = q.long(), torch.zeros(n_out, ng, dtype=torch.uint8)
    else:
        vals = draw(tensors((n_out, n_in), torch.uint8, low=0, high=16)).long()
        padded = torch.cat([vals, torch.zeros(n_out, n_in % 2, dtype=torch.long)], 1)
        q = (padded[:, 0::2] + 16 * padded[:, 1::2]).to(torch.uint8)  # two per byte, k even low
        zero = draw(tensors((n_out, ng), torch.uint8, low=0, high=16))
    scale = tensor(draw, (n_out, ng), torch.float32, low=1e-3, high=0.1)
    b = tensor(draw, (n_out,), torch.float32) if draw(st.booleans()) else None

    def alt() -> torch.Tensor:  # the weight column by column from its group, then one float64 product
        w = torch.empty(n_out, n_in, dtype=torch.float64)
        for k in range(n_in):
            gi = k // max(g, 1)
            w[:, k] = ((vals[:, k] - zero[:, gi].long()).to(torch.float32) * scale[:, gi]).double()
        out = (x.double() @ w.t()).to(torch.float32)
        return out if b is None else out + b

    inputs = [x, q, scale, zero] + ([b] if b is not None else [])
    return Case(inputs, {"bits": bits, "group": group}, alt, atol=1e-5, rtol=1e-5)


@case(Op.MATMUL)
def _matmul(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    ba, bb = draw(broadcast_shapes(2, max_rank=2))
    m, k, n = draw(sides()), draw(sides()), draw(sides())
    sa = (k,) if draw(st.booleans()) else (*ba, m, k)
    sb = (k,) if draw(st.booleans()) else (*bb, k, n)
    a, b = tensor(draw, sa, dt), tensor(draw, sb, dt)
    return Case([a, b], {}, lambda: a @ b, atol=1e-4, rtol=1e-4)


@case(Op.ADDMM)
def _addmm(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    m, k, n = draw(sides()), draw(sides()), draw(sides())
    bias_shape = draw(st.sampled_from([(n,), (1, n), (m, 1), (m, n), ()]))
    bias, a, b = tensor(draw, bias_shape, dt), tensor(draw, (m, k), dt), tensor(draw, (k, n), dt)
    beta, alpha = draw(st.sampled_from([1, 0.5, 0])), draw(st.sampled_from([1, -2.0]))
    alt = lambda: (beta * bias if beta else torch.zeros_like(bias)) + alpha * (a @ b)  # noqa: E731
    return Case([bias, a, b], {"beta": beta, "alpha": alpha}, alt, atol=1e-4, rtol=1e-4)


# -- convolution and pooling --------------------------------------------------------------------------------------


def _window(draw: Draw, with_dilation: bool = True) -> tuple[tuple, tuple, tuple, tuple, tuple]:
    """(kernel, stride, padding, dilation, input HW) per spatial dim, with an output of at least one element."""
    k = tuple(draw(st.integers(1, 3)) for _ in range(2))
    s = tuple(draw(st.integers(1, 3)) for _ in range(2))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    d = tuple(draw(st.integers(1, 2)) if with_dilation else 1 for _ in range(2))
    hw = tuple(draw(st.integers(max(1, di * (ki - 1) + 1 - 2 * pi), 9)) for ki, pi, di in zip(k, p, d))
    return k, s, p, d, hw


@case(Op.CONV2D)
def _conv2d(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    k, s, p, d, hw = _window(draw)
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(0,), (1,), (2,), ()]))
    x, w = tensor(draw, (*batch, cin, *hw), dt), tensor(draw, (cout, cin // groups, *k), dt)
    ins = [x, w] + ([tensor(draw, (cout,), dt)] if draw(st.booleans()) else [])
    b = ins[2] if len(ins) == 3 else None
    if draw(st.booleans()) and batch:
        fits = all(h >= di * (ki - 1) + 1 for h, ki, di in zip(hw, k, d))
        pad = draw(st.sampled_from(["same", "valid"])) if fits else "same"
        s = (1, 1) if pad == "same" else s
        attrs = {"stride": s, "padding": pad, "dilation": d, "groups": groups}
        return Case(ins, attrs, lambda: aten.conv2d.padding(x, w, b, s, pad, d, groups), atol=1e-4, rtol=1e-4)
    attrs = {"stride": s, "padding": p, "dilation": d, "groups": groups}
    if not batch:
        return Case(ins, attrs, lambda: aten.conv2d.default(x, w, b, s, p, d, groups), atol=1e-4, rtol=1e-4)
    alt = lambda: aten.convolution.default(x, w, b, s, p, d, False, [0, 0], groups)  # noqa: E731
    return Case(ins, attrs, alt, atol=1e-4, rtol=1e-4)


@case(Op.QCONV2D)
def _qconv2d(draw: Draw, op: Op) -> Case:
    k, s, p, d, hw = _window(draw)
    cin, cout = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(st.sampled_from([(0,), (1,), (2,), ()]))
    x = tensor(draw, (*batch, cin, *hw), torch.float32)
    w = draw(tensors((cout, cin, *k), torch.int8, low=-127, high=128))
    scale = tensor(draw, (cout,), torch.float32, low=1e-3, high=0.1)
    b = tensor(draw, (cout,), torch.float32) if draw(st.booleans()) else None
    static = draw(st.sampled_from([None, (0.02, 128), (0.05, 7)]))

    def alt() -> torch.Tensor:  # image by image: u8 by hand, then im2col (unfold) and an int64 product
        xb = x.reshape(-1, cin, *hw)
        o = [(hw[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
        out = []
        for img in xb:
            if static is None:
                mn = min(float(img.min()) if img.numel() else 0.0, 0.0)
                mx = max(float(img.max()) if img.numel() else 0.0, 0.0)
                sc = torch.tensor((mx - mn) / 255.0, dtype=torch.float32)
                sc = sc if sc > 0 else torch.tensor(1.0)
                z = int(torch.clamp(torch.round(torch.tensor(-mn, dtype=torch.float32) / sc), 0, 255))
            else:
                sc, z = torch.tensor(static[0], dtype=torch.float32), static[1]
            q = torch.clamp(torch.round(torch.clamp(img * (1.0 / sc), -256, 511)) + z, 0, 255).long() - z
            cols = F.unfold(q[None].double(), k, d, p, s)[0].long()  # (cin * kh * kw, L), zero padding = q - z = 0
            acc = w.reshape(cout, -1).long() @ cols
            out.append((acc.to(torch.float32) * (sc * scale).reshape(-1, 1)).reshape(cout, *o))
        y = torch.stack(out) if out else torch.empty(0, cout, *o)
        if b is not None:
            y = y + b.reshape(-1, 1, 1)
        return y.reshape(*batch, *y.shape[1:]) if batch else y[0]

    attrs = {"stride": s, "padding": p, "dilation": d, "groups": 1, "act": "dynamic" if static is None else "static"}
    if static is not None:
        attrs.update(scale=static[0], zero_point=static[1])
    return Case([x, w, scale] + ([b] if b is not None else []), attrs, alt, atol=1e-5, rtol=1e-5)


@case(Op.MAX_POOL2D)
def _max_pool2d(draw: Draw, op: Op) -> Case:
    k, s, p, d, hw = _window(draw)
    stride = draw(st.sampled_from([None, s]))
    x = tensor(draw, (*draw(st.sampled_from([(1, 2), (2, 3), (3,)])), *hw), FLOATS)
    ceil = draw(st.booleans())
    attrs = {"kernel_size": k, "stride": stride, "padding": p, "dilation": d, "ceil_mode": ceil}
    return Case([x], attrs, lambda: aten.max_pool2d_with_indices.default(x, k, stride or [], p, d, ceil)[0])


@case(Op.AVG_POOL2D)
def _avg_pool2d(draw: Draw, op: Op) -> Case:
    k, s, p, _, hw = _window(draw, with_dilation=False)
    stride = draw(st.sampled_from([None, s]))
    x = tensor(draw, (*draw(st.sampled_from([(1, 2), (2, 3), (3,)])), *hw), FLOATS)
    ceil, include, div = draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from([None, 1, 3]))
    attrs = {
        "kernel_size": k,
        "stride": stride,
        "padding": p,
        "ceil_mode": ceil,
        "count_include_pad": include,
        "divisor_override": div,
    }
    alt = lambda: torch.nn.AvgPool2d(k, stride, p, ceil, include, div)(x)  # noqa: E731
    return Case([x], attrs, alt, atol=1e-6, rtol=1e-5)


@case(Op.ADAPTIVE_AVG_POOL2D)
def _adaptive_avg_pool2d(draw: Draw, op: Op) -> Case:
    x = tensor(draw, (*draw(st.sampled_from([(1, 2), (2, 3), (3,)])), draw(sides(1)), draw(sides(1))), FLOATS)
    out = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return Case([x], {"output_size": out}, lambda: aten._adaptive_avg_pool2d.default(x, out), atol=1e-6, rtol=1e-5)


# -- normalisation ------------------------------------------------------------------------------------------------


@case(Op.LAYER_NORM)
def _layer_norm(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    norm = draw(shapes(min_rank=1, max_rank=2, min_side=1))
    x = tensor(draw, (*draw(shapes(max_rank=2)), *norm), dt)
    n_affine = draw(st.integers(0, 2))
    ins = [x] + [tensor(draw, norm, dt) for _ in range(n_affine)]
    eps = draw(st.sampled_from([1e-5, 1e-12, 0.1]))
    w, b = (ins[1:] + [None, None])[:2]
    alt = lambda: aten.native_layer_norm.default(x, norm, w, b, eps)[0]  # noqa: E731
    return Case(ins, {"normalized_shape": norm, "eps": eps}, alt, atol=1e-5, rtol=1e-5)


@case(Op.RMS_NORM)
def _rms_norm(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    norm = draw(shapes(min_rank=1, max_rank=2, min_side=1))
    x = tensor(draw, (*draw(shapes(max_rank=2)), *norm), dt)
    ins = [x] + ([tensor(draw, norm, dt)] if draw(st.booleans()) else [])
    eps = draw(st.sampled_from([None, 1e-6, 0.1]))
    dims = tuple(range(-len(norm), 0))

    def alt() -> torch.Tensor:
        e = torch.finfo(dt).eps if eps is None else eps
        y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + e)
        return y * ins[1] if len(ins) == 2 else y

    return Case(ins, {"normalized_shape": norm, "eps": eps}, alt, atol=1e-5, rtol=1e-5)


@case(Op.BATCH_NORM)
def _batch_norm(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    c = draw(sides(1))
    x = tensor(draw, (draw(sides()), c, *draw(shapes(max_rank=2))), dt)
    mean, var = tensor(draw, (c,), dt), tensor(draw, (c,), dt, low=0.1, high=2)
    has_w, has_b = draw(st.booleans()), draw(st.booleans())
    w = tensor(draw, (c,), dt) if has_w else None
    b = tensor(draw, (c,), dt) if has_b else None
    eps = draw(st.sampled_from([1e-5, 0.1]))
    ins = [x, mean, var] + [t for t in (w, b) if t is not None]
    attrs = {"eps": eps, "has_weight": has_w, "has_bias": has_b}
    alt = lambda: aten._native_batch_norm_legit_no_training.default(x, w, b, mean, var, 0.1, eps)[0]  # noqa: E731
    return Case(ins, attrs, alt, atol=1e-5, rtol=1e-5)


# -- attention ----------------------------------------------------------------------------------------------------


@case(Op.SDPA)
def _sdpa(draw: Draw, op: Op) -> Case:
    dt = draw(st.sampled_from(FLOATS))
    batch, hk, rep = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ln, sn, e, ev = (draw(st.integers(1, 5)) for _ in range(4))
    gqa = rep > 1
    q = tensor(draw, (batch, hk * rep, ln, e), dt)
    k, v = tensor(draw, (batch, hk, sn, e), dt), tensor(draw, (batch, hk, sn, ev), dt)
    mask_kind = draw(st.sampled_from(["none", "causal", "bool", "float"]))
    mask = None
    if mask_kind == "bool":
        mask = tensor(draw, (ln, sn), torch.bool)
        mask[:, 0] = True  # no fully masked rows
    elif mask_kind == "float":
        mask = tensor(draw, (batch, 1, ln, sn), dt)
    scale = draw(st.sampled_from([None, 0.3]))
    causal = mask_kind == "causal"

    def alt() -> torch.Tensor:
        kk, vv = (t.repeat_interleave(rep, dim=1) for t in (k, v))
        s = (q @ kk.transpose(-1, -2)) * (1 / math.sqrt(e) if scale is None else scale)
        if causal:
            s = s.masked_fill(~torch.ones(ln, sn, dtype=torch.bool).tril(), -math.inf)
        elif mask is not None:
            s = s.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else s + mask
        return torch.softmax(s, -1) @ vv

    ins = [q, k, v] + ([mask] if mask is not None else [])
    return Case(ins, {"is_causal": causal, "scale": scale, "enable_gqa": gqa}, alt, atol=1e-5, rtol=1e-4)


# -- shape and data movement --------------------------------------------------------------------------------------


@case(Op.RESHAPE)
def _reshape(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS)
    order = draw(st.permutations(range(x.dim())))
    target = [x.shape[i] for i in order]
    merged = len(target) >= 2 and draw(st.booleans())
    if merged:
        target[:2] = [target[0] * target[1]]
    if target and draw(st.booleans()) and math.prod(target[1:]) != 0:
        target[0] = -1
    c = Case([x], {"shape": tuple(target)}, lambda: x.reshape(target))
    if len(target) >= 2 and (order[-1] > 1 or not merged) and draw(st.booleans()):
        # the last size is symbolic: the input dim it comes from is "s0" and the attr holds Ref(0)
        c.attrs["shape"], c.syms, c.sym_dims = (*target[:-1], Ref(0)), [target[-1]], [(0, order[-1])]
    return c


@case(Op.PERMUTE)
def _permute(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS)
    dims = tuple(draw(st.permutations(range(x.dim()))))
    return Case([x], {"dims": dims}, lambda: x.permute(dims))


@case(Op.TRANSPOSE)
def _transpose(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(min_rank=1)), FLOATS + INTS)
    d0, d1 = draw(dims_of(x.dim())), draw(dims_of(x.dim()))
    return Case([x], {"dim0": d0, "dim1": d1}, lambda: x.swapaxes(d0, d1))


@case(Op.EXPAND)
def _expand(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(max_side=3)), FLOATS + INTS)
    new = [draw(sides(max_side=3)) if s == 1 else draw(st.sampled_from([s, -1])) for s in x.shape]
    shape = (*draw(shapes(max_rank=2, max_side=3)), *new)
    concrete = [x.shape[i - len(shape) + x.dim()] if s == -1 else s for i, s in enumerate(shape)]
    return Case([x], {"shape": shape}, lambda: torch.broadcast_to(x, concrete))


@case(Op.SQUEEZE)
def _squeeze(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(max_side=3)), FLOATS + INTS)
    dims = draw(st.one_of(st.none(), subsets(x.dim())))
    alt = (lambda: aten.squeeze.default(x)) if dims is None else (lambda: aten.squeeze.dims(x, dims))
    return Case([x], {"dims": dims}, alt)


@case(Op.UNSQUEEZE)
def _unsqueeze(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS)
    dim = draw(st.integers(-x.dim() - 1, x.dim()))
    d = dim % (x.dim() + 1)
    return Case([x], {"dim": dim}, lambda: x[(slice(None),) * d + (None,)])


@case(Op.SLICE)
def _slice(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(min_rank=1)), FLOATS + INTS)
    dim = draw(dims_of(x.dim()))
    bound = st.one_of(st.none(), st.integers(-9, 9))
    start, end, step = draw(bound), draw(bound), draw(st.integers(1, 3))
    index = (slice(None),) * (dim % x.dim()) + (slice(start, end, step),)
    c = Case([x], {"dim": dim, "start": start, "end": end, "step": step}, lambda: x[index])
    if end is None and start is None and step == 1 and draw(st.booleans()):  # x[..., :s0] on a dim of size s0
        c.attrs["end"], c.syms, c.sym_dims = Ref(0), [x.shape[dim]], [(0, dim % x.dim())]
    return c


@case(Op.SELECT)
def _select(draw: Draw, op: Op) -> Case:
    shape = list(draw(shapes(min_rank=1)))
    dim = draw(dims_of(len(shape)))
    shape[dim] = max(shape[dim], 1)
    x = tensor(draw, shape, FLOATS + INTS)
    index = draw(st.integers(-shape[dim], shape[dim] - 1))
    where = (slice(None),) * (dim % x.dim()) + (index,)
    return Case([x], {"dim": dim, "index": index}, lambda: x[where])


@case(Op.CAT)
def _cat(draw: Draw, op: Op) -> Case:
    shape = list(draw(shapes(min_rank=1)))
    dim = draw(dims_of(len(shape)))
    xs = []
    for _ in range(draw(st.integers(1, 3))):
        shape[dim] = draw(sides())
        xs.append(tensor(draw, shape, FLOATS))
    return Case(xs, {"dim": dim}, lambda: torch.concatenate(xs, axis=dim))


@case(Op.SPLIT)
def _split(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(min_rank=1)), FLOATS + INTS)
    dim = draw(dims_of(x.dim()))
    cuts = sorted(draw(st.lists(st.integers(0, x.shape[dim]), min_size=1, max_size=3)))  # see test_split_one_piece
    bounds = [0, *cuts, x.shape[dim]]
    sizes = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    return Case([x], {"sizes": sizes, "dim": dim}, lambda: torch.tensor_split(x, cuts, dim))


@case(Op.CONTIGUOUS)
def _contiguous(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes()), FLOATS + INTS)
    formats = [None, "contiguous_format"] + (["channels_last"] if x.dim() == 4 else [])
    fmt = draw(st.sampled_from(formats))
    mf = getattr(torch, fmt or "contiguous_format")
    return Case([x], {"memory_format": fmt}, lambda: x.clone(memory_format=mf))


@case(Op.EMBEDDING)
def _embedding(draw: Draw, op: Op) -> Case:
    num = draw(sides(1))
    weight = tensor(draw, (num, draw(sides())), FLOATS)
    indices = draw(index_tensors(draw(shapes(max_rank=3)), num))
    pad = draw(st.one_of(st.none(), st.integers(0, num - 1)))
    return Case([weight, indices], {"padding_idx": pad}, lambda: weight[indices])


@case(Op.GATHER)
def _gather(draw: Draw, op: Op) -> Case:
    shape = list(draw(shapes(min_rank=1)))
    dim = draw(dims_of(len(shape)))
    shape[dim] = max(shape[dim], 1)
    x = tensor(draw, shape, FLOATS + INTS)
    ishape = [draw(st.integers(0, s)) if i != dim % len(shape) else draw(sides()) for i, s in enumerate(shape)]
    index = draw(index_tensors(ishape, shape[dim]))
    return Case([x, index], {"dim": dim}, lambda: x.gather(dim, index))


@case(Op.INDEX_SELECT)
def _index_select(draw: Draw, op: Op) -> Case:
    shape = list(draw(shapes(min_rank=1)))
    dim = draw(dims_of(len(shape)))
    shape[dim] = max(shape[dim], 1)
    x = tensor(draw, shape, FLOATS + INTS)
    index = draw(index_tensors((draw(sides()),), shape[dim]))
    where = (slice(None),) * (dim % x.dim()) + (index,)
    return Case([x, index], {"dim": dim}, lambda: x[where])


# -- creation and symbolic ----------------------------------------------------------------------------------------


@case(Op.ARANGE)
def _arange(draw: Draw, op: Op) -> Case:
    num = st.one_of(st.integers(-20, 20), st.floats(-20, 20, width=32))
    start, step = draw(num), draw(st.sampled_from([1, 2, 3, 0.5, -1, -2.5]))
    count = draw(st.integers(0, 12))
    end = start + step * count if draw(st.booleans()) else start + step * count + step / 3
    dt = draw(st.sampled_from([None, torch.int64, torch.float32, torch.float64]))
    if dt == torch.int64 and not all(isinstance(v, int) for v in (start, end, step)):
        dt = None
    attrs = {"start": start, "end": end, "step": step, "dtype": None if dt is None else DType.from_torch(dt)}
    return Case([], attrs, lambda: aten.arange.start_step(start, end, step, dtype=dt))


@case(Op.FULL)
def _full(draw: Draw, op: Op) -> Case:
    shape = draw(shapes())
    value = draw(scalars())
    dt = draw(st.sampled_from([None, torch.float32, torch.float64, torch.int64, torch.bool]))
    attrs = {"shape": shape, "value": value, "dtype": None if dt is None else DType.from_torch(dt)}
    return Case([], attrs, lambda: aten.full.default(shape, value, dtype=dt))


@case(Op.SYM_SIZE)
def _sym_size(draw: Draw, op: Op) -> Case:
    x = tensor(draw, draw(shapes(min_rank=1)), FLOATS)
    dim = draw(dims_of(x.dim()))
    return Case([x], {"dim": dim}, lambda: x.shape[dim])


@case(Op.SYM_ARITH)
def _sym_arith(draw: Draw, op: Op) -> Case:
    fn = draw(st.sampled_from(["add", "sub", "mul", "floordiv"]))
    a, b = draw(st.integers(-50, 50)), draw(st.integers(-9, 9).filter(bool))
    alt = lambda: {"add": a + b, "sub": a - b, "mul": a * b, "floordiv": a // b}[fn]  # noqa: E731
    if draw(st.booleans()):
        return Case([], {"fn": fn, "a": Ref(0), "b": b}, alt, syms=[a])
    return Case([], {"fn": fn, "a": a, "b": b}, alt)


# -- the checks ---------------------------------------------------------------------------------------------------


def _assert_same(got: Any, want: Any, c: Case) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w, c)
    elif isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor)
        torch.testing.assert_close(got, want, atol=c.atol, rtol=c.rtol, equal_nan=True)
    else:
        assert type(got) is type(want) and got == want


def test_every_op_has_a_case() -> None:
    assert set(CASES) == set(OPS) - {Op.FALLBACK, Op.FUSED}


@pytest.mark.parametrize("op", sorted(CASES, key=lambda o: o.value), ids=lambda o: o.value)
@given(data=st.data())
def test_op_matches_torch(op: Op, data: st.DataObject) -> None:
    c = CASES[op](data.draw)
    # (b) the reference equals torch through another call path
    got = OPS[op].reference(*c.inputs, **resolve_attrs(OPS[op].normalize_attrs(c.attrs, "test"), c.syms))
    _assert_same(got, c.alt(), c)
    # (a) shape/dtype inference matches the real result (symbolic dims are named "s<i>")
    g = Graph()
    in_shapes = [list(t.shape) for t in c.inputs]
    for i, where in enumerate(c.sym_dims):
        if where is not None:
            in_shapes[where[0]][where[1]] = f"s{i}"
    ins = [g.add_input(s, DType.from_torch(t.dtype)) for s, t in zip(in_shapes, c.inputs)]
    syms = [g.add_input((), DType.i64, kind="sym", name=f"s{i}") for i in range(len(c.syms))]
    node = g.add_node(op, ins, c.attrs, syms=syms)
    outs = got if isinstance(got, tuple) else (got,)
    assert len(node.outputs) == len(outs)
    sym_value = {f"s{i}": n for i, n in enumerate(c.syms)}
    for v, o in zip(node.outputs, outs):
        if isinstance(o, torch.Tensor):
            shape = tuple(sym_value.get(d, d) for d in v.shape)
            assert (v.kind, shape, v.dtype) == ("tensor", tuple(o.shape), DType.from_torch(o.dtype))
        else:
            assert v.kind == "sym"
    # (c) the one-node graph as compile() runs it: lowered to the native kernel where the CPU backend has one
    # (the reference interpreter would call the same reference as (b) and could not fail)
    g.outputs = list(node.outputs)
    res = CompiledGraph(g, default_backends("cpu", True)).run(*c.inputs, *c.syms)
    _assert_same(tuple(res) if isinstance(got, tuple) else res[0], got, c)


def test_creation_infers_the_device_attribute() -> None:
    g = Graph()
    for op, attrs in [(Op.ARANGE, {"end": 5}), (Op.FULL, {"shape": (2, 3), "value": 1.5})]:
        v = g.add_node(op, [], {**attrs, "device": "meta"}).out
        assert v.device == "meta"
        out = OPS[op].reference(**OPS[op].normalize_attrs({**attrs, "device": "meta"}, "test"))
        assert out.device.type == "meta" and tuple(out.shape) == v.shape


def test_symbolic_sizes_infer_consistently() -> None:
    # x[s0, 6] -> reshape(x, (2*s0, 3)) with the size computed by SYM_SIZE and SYM_ARITH
    g = Graph()
    x = g.add_input(("s0", 6), DType.f32)
    n = g.add_node(Op.SYM_SIZE, [x], {"dim": 0}).out
    m = g.add_node(Op.SYM_ARITH, [], {"fn": "mul", "a": Ref(0), "b": 2}, syms=[n]).out
    y = g.add_node(Op.RESHAPE, [x], {"shape": (Ref(0), 3)}, syms=[m]).out
    z = g.add_node(Op.ADD, [y, y]).out
    assert y.rank == 2 and y.shape[1] == 3 and z.rank == 2
    g.outputs = [z]
    t = torch.randn(5, 6)
    torch.testing.assert_close(interpret(g, [t])[0], 2 * t.reshape(10, 3))
    flat = g.add_node(Op.RESHAPE, [x], {"shape": (-1,)}).out
    assert flat.rank == 1


def test_split_one_piece() -> None:
    g = Graph()
    x = g.add_input((4, 3), DType.f32)
    g.outputs = list(g.add_node(Op.SPLIT, [x], {"sizes": (4,), "dim": 0}).outputs)
    t = torch.randn(4, 3)
    out = interpret(g, [t])[0]
    assert isinstance(out, torch.Tensor) and torch.equal(out, t)
