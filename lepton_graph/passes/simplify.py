"""Algebraic simplification, canonical GEMM forms, and common-subexpression elimination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..ir import Graph, Op, OpGroup, Value
from ..ir.pattern import Match, P, Rules, rewrite
from .base import PassOptions, PassResult


def _same(m: Match, name: str) -> Value | None:
    """The bound value, if it has exactly the root's type (so replacing the root by it changes nothing)."""
    x, out = m[name], m.root.out
    return x if x.shape == out.shape and x.dtype == out.dtype and x.device == out.device else None


def _static(v: Value) -> bool:
    return v.is_static


def _fold_reshapes(m: Match) -> Value | None:
    # reshape(reshape(x, s1), s2) -> reshape(x, s2)
    if m.root.syms:
        return None
    return m.emit(Op.RESHAPE, [m["x"]], {"shape": tuple(m.root.out.shape)})


def _compose_permutes(m: Match) -> Value:
    # permute(permute(x, p), q) -> permute(x, p[q])
    p, q = m.node("inner").attrs["dims"], m.root.attrs["dims"]
    dims = tuple(p[i] for i in q)
    return m["x"] if dims == tuple(range(len(dims))) else m.emit(Op.PERMUTE, [m["x"]], {"dims": dims})


def _cancel_transposes(m: Match) -> Value | None:
    # transpose(transpose(x, a, b), a, b) -> x
    a, b = m.node("inner").attrs, m.root.attrs
    rank = m["x"].rank
    norm = lambda d: d % rank if rank else d  # noqa: E731
    if {norm(a["dim0"]), norm(a["dim1"])} == {norm(b["dim0"]), norm(b["dim1"])}:
        return m["x"]
    return None


def _identity_permute(m: Match) -> Value | None:
    return m["x"] if tuple(m.root.attrs["dims"]) == tuple(range(m["x"].rank)) else None


def _full_slice(m: Match) -> Value | None:
    a = m.root.attrs
    return _same(m, "x") if a["step"] == 1 else None


def _drop_contiguous(m: Match) -> Value | None:
    # contiguous(x) -> x: every registered op accepts any strides; only opaque torch calls might not
    if m.root.attrs["memory_format"] is not None:
        return None
    if any(u.op is Op.FALLBACK for u in m.graph.users().get(m.root.out, [])):
        return None
    return m["x"]


def _addmm_to_linear(m: Match) -> Value | None:
    # addmm(b, x, transpose(w)) -> linear(x, w, b)   (beta = alpha = 1, b a row vector)
    if m.root.attrs["beta"] != 1 or m.root.attrs["alpha"] != 1 or m["b"].rank != 1:
        return None
    return m.emit(Op.LINEAR, [m["x"], m["w"], m["b"]])


def _mm_to_linear(m: Match) -> Value | None:
    # matmul(x, transpose(w)) -> linear(x, w)   for a 2-d weight w
    if m["w"].rank != 2:
        return None
    return m.emit(Op.LINEAR, [m["x"], m["w"]])


def _transposed_weight(m: Match, name: str) -> Value:
    """A new constant holding w.T contiguous (weights are re-laid out at compile time, once)."""
    return m.graph.add_derived(_transposed, [m[name]], f"{m[name].const}.T")


def _transposed(w: torch.Tensor) -> torch.Tensor:
    return w.t().contiguous()


def _addmm_const_to_linear(m: Match) -> Value | None:
    # addmm(b, x, W) -> linear(x, W.T, b)   (W a constant (in, out), as in GPT-2's Conv1D)
    if m.root.attrs["beta"] != 1 or m.root.attrs["alpha"] != 1 or m["b"].rank != 1 or m["w"].rank != 2:
        return None
    return m.emit(Op.LINEAR, [m["x"], _transposed_weight(m, "w"), m["b"]])


def _mm_const_to_linear(m: Match) -> Value | None:
    # matmul(x, W) -> linear(x, W.T)
    if m["w"].rank != 2:
        return None
    return m.emit(Op.LINEAR, [m["x"], _transposed_weight(m, "w")])


def _unflatten_linear(m: Match) -> Value | None:
    # reshape(linear(reshape(x, [-1, K]), w, b), lead + [N]) -> linear(x, w, b)
    x, out = m["x"], m.root.out
    if m.root.syms or x.rank < 2 or out.rank != x.rank or tuple(out.shape[:-1]) != tuple(x.shape[:-1]):
        return None
    if m.node("flat").syms or m["flat"].rank != 2:
        return None
    lin = m.node("lin")
    return m.emit(Op.LINEAR, [x, *lin.inputs[1:]])


def _drop_empty_cat_inputs(m: Match) -> Value | None:
    # cat(x, empty) -> x   (an empty KV-cache past concatenated with the new keys)
    node = m.root
    dim = node.attrs["dim"] % node.out.rank if node.out.rank else 0
    keep = [
        v
        for v in node.inputs  # torch.cat also skips 1-d empty tensors of any other rank (legacy rule)
        if not (
            (v.rank == node.out.rank and isinstance(v.shape[dim], int) and v.shape[dim] == 0) or tuple(v.shape) == (0,)
        )
    ]
    if len(keep) == len(node.inputs) or not keep:
        return None
    if len(keep) == 1:
        return keep[0] if keep[0].shape == node.out.shape and keep[0].dtype == node.out.dtype else None
    return m.emit(Op.CAT, keep, {"dim": node.attrs["dim"]})


def _approx(value: float) -> object:
    return lambda s: s is not None and abs(s - value) <= 1e-6 * max(1.0, abs(value))


def _gelu(approximate: str) -> Callable[[Match], Value | None]:
    def build(m: Match) -> Value | None:
        return m.emit(Op.GELU, [m["x"]], {"approximate": approximate}) if m.root.out.shape == m["x"].shape else None

    return build


_x = P.var("x")
# 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))  (GPT-2's gelu_new / NewGELUActivation)
_tanh_inner = P(
    Op.TANH,
    P(
        Op.MUL,
        P(Op.ADD, _x, P(Op.MUL, P(Op.POW, _x, scalar=3.0), scalar=_approx(0.044715))),
        scalar=_approx((2.0 / 3.141592653589793) ** 0.5),
    ),
)
_gelu_tanh = [
    P(Op.MUL, P(Op.MUL, _x, scalar=0.5), P(Op.ADD, _tanh_inner, scalar=1.0)),
    P(Op.MUL, P(Op.ADD, _tanh_inner, scalar=1.0), P(Op.MUL, _x, scalar=0.5)),
]
# 0.5*x*(1 + erf(x/sqrt(2)))  (BERT-style gelu written out)
_erf = P.any_of(
    P(Op.ERF, P(Op.DIV, _x, scalar=_approx(2**0.5), reverse=False, rounding_mode=None)),
    P(Op.ERF, P(Op.MUL, _x, scalar=_approx(2**-0.5))),
)
_gelu_erf = [
    P(Op.MUL, P(Op.MUL, _x, scalar=0.5), P(Op.ADD, _erf, scalar=1.0)),
    P(Op.MUL, P(Op.MUL, _x, P(Op.ADD, _erf, scalar=1.0)), scalar=0.5),
]
activation_rules = Rules(
    [(p, _gelu("tanh"), "0.5x(1+tanh(c(x+0.044715x^3))) -> gelu_tanh(x)") for p in _gelu_tanh]
    + [(p, _gelu("none"), "0.5x(1+erf(x/sqrt2)) -> gelu(x)") for p in _gelu_erf]
)

_w = P.const("w")
algebra_rules = Rules(
    [
        (P(Op.CAT, variadic=True), _drop_empty_cat_inputs, "cat(x, empty) -> x"),
        (P(Op.MUL, P.var("x"), scalar=1), lambda m: _same(m, "x"), "x*1 -> x"),
        (P(Op.DIV, P.var("x"), scalar=1, reverse=False, rounding_mode=None), lambda m: _same(m, "x"), "x/1 -> x"),
        (P(Op.ADD, P.var("x"), scalar=0), lambda m: _same(m, "x"), "x+0 -> x"),
        (P(Op.SUB, P.var("x"), scalar=0, reverse=False), lambda m: _same(m, "x"), "x-0 -> x"),
        (P(Op.CAST, P.var("x")), lambda m: _same(m, "x"), "cast(x, x.dtype) -> x"),
        (P(Op.RESHAPE, P.var("x", _static)), lambda m: _same(m, "x"), "reshape(x, x.shape) -> x"),
        (P(Op.EXPAND, P.var("x")), lambda m: _same(m, "x"), "expand(x, x.shape) -> x"),
        (P(Op.RESHAPE, P(Op.RESHAPE, P.var("x"))), _fold_reshapes, "reshape(reshape(x)) -> reshape(x)"),
        (P(Op.PERMUTE, P.var("x")), _identity_permute, "permute(x, id) -> x"),
        (
            P(Op.PERMUTE, P(Op.PERMUTE, P.var("x"), name="inner")),
            _compose_permutes,
            "permute(permute(x)) -> permute(x)",
        ),
        (P(Op.TRANSPOSE, P(Op.TRANSPOSE, P.var("x"), name="inner")), _cancel_transposes, "t(t(x)) -> x"),
        (P(Op.SLICE, P.var("x")), _full_slice, "x[:] -> x"),
        (P(Op.CONTIGUOUS, P.var("x")), _drop_contiguous, "contiguous(x) -> x"),
    ]
)
gemm_rules = Rules(
    [
        (
            P(Op.ADDMM, P.var("b"), P.var("x"), P(Op.TRANSPOSE, _w, shared=True)),
            _addmm_to_linear,
            "addmm(b, x, t(w)) -> linear(x, w, b)",
        ),
        (P(Op.MATMUL, P.var("x"), P(Op.TRANSPOSE, _w, shared=True)), _mm_to_linear, "mm(x, t(w)) -> linear(x, w)"),
        (P(Op.ADDMM, P.var("b"), P.var("x"), _w), _addmm_const_to_linear, "addmm(b, x, W) -> linear(x, W.T, b)"),
        (P(Op.MATMUL, P.var("x"), _w), _mm_const_to_linear, "mm(x, W) -> linear(x, W.T)"),
        (
            P(Op.RESHAPE, P(Op.LINEAR, P(Op.RESHAPE, P.var("x"), name="flat"), P.var(), P.var(), nargs=3, name="lin")),
            _unflatten_linear,
            "reshape(linear(flatten(x))) -> linear(x)",
        ),
        (
            P(Op.RESHAPE, P(Op.LINEAR, P(Op.RESHAPE, P.var("x"), name="flat"), P.var(), name="lin")),
            _unflatten_linear,
            "reshape(linear(flatten(x))) -> linear(x) (no bias)",
        ),
    ]
)


def simplify(graph: Graph, opts: PassOptions) -> PassResult:
    """Algebraic identities, no-op views/casts/copies, view chains, canonical GEMMs, to a fixed point."""
    fired = rewrite(graph, algebra_rules + gemm_rules + activation_rules)
    return PassResult(graph, bool(fired), {"rules": fired})


def _key(n: Any) -> Any:
    def freeze(a: Any) -> Any:
        if isinstance(a, dict):
            return tuple(sorted((k, freeze(v)) for k, v in a.items()))
        if isinstance(a, (list, tuple)):
            return tuple(freeze(x) for x in a)
        if isinstance(a, Graph):
            return id(a)
        return a

    return (n.op, tuple(id(v) for v in n.inputs), tuple(id(v) for v in n.syms), freeze(n.attrs))


def eliminate_common_subexpressions(graph: Graph, opts: PassOptions) -> PassResult:
    """Nodes computing the same op on the same inputs with the same attributes are computed once."""
    seen: dict[Any, Any] = {}
    merged = 0
    for n in graph.nodes:
        if n.op is Op.FALLBACK or n.op is Op.FUSED or n.op in OpGroup.CREATION and n.attrs.get("device") is None:
            continue
        key = _key(n)
        prev = seen.get(key)
        if prev is None:
            seen[key] = n
            continue
        for old, new in zip(n.outputs, prev.outputs):
            graph.replace_all_uses(old, new)
        merged += 1
    if merged:
        graph.remove_dead()
    return PassResult(graph, merged > 0, {"merged": merged})
