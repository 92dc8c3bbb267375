"""Constant folding, and BatchNorm folded into the conv / linear weights before it."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..ir import Arg, Graph, Node, Op, OpGroup, Value
from ..ir.pattern import Match, P, Rules, rewrite
from ..ir.registry import run_reference
from .base import PassOptions, PassResult

# folding must not turn a cheap view of a small constant into a large materialised one
_MAX_GROWTH = 2
_MAX_FREE_ELEMENTS = 1 << 16
_NEVER_FOLD = frozenset({Op.FALLBACK, Op.FUSED, Op.EXPAND}) | OpGroup.SYMBOLIC


def fold_constants(graph: Graph, opts: PassOptions) -> PassResult:
    """Evaluate nodes whose inputs are all constants once, at compile time."""
    folded = 0
    for n in list(graph.nodes):
        if n.op in _NEVER_FOLD or n.syms or len(n.outputs) != 1 or n.out.kind != "tensor":
            continue
        if not all(v.const is not None for v in n.inputs):
            continue
        in_elems = sum(graph.constants[v.const].numel() for v in n.inputs if v.const is not None)
        out_elems = n.out.numel()
        if out_elems is None or out_elems > max(_MAX_GROWTH * in_elems, _MAX_FREE_ELEMENTS):
            continue
        with torch.no_grad():
            t = run_reference(n, [graph.constants[v.const] for v in n.inputs], [])  # type: ignore[index]
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            continue
        graph.replace_all_uses(n.out, graph.add_derived(_evaluator(n), n.inputs, f"{n.out.name}_folded"))
        folded += 1
    gathers = sum(
        _constant_index_to_gather(graph, n)
        for n in list(graph.nodes)
        if n.op is Op.FALLBACK and n.attrs.get("target") == "aten::index.Tensor"
    )
    if folded or gathers:
        graph.remove_dead()
    return PassResult(graph, folded + gathers > 0, {"folded": folded, "index_to_gather": gathers})


def _evaluator(n: Node) -> Callable[..., torch.Tensor]:
    def evaluate(*ts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = run_reference(n, list(ts), [])
        # a strided view of a weight is materialised; a contiguous one stays a view of the weight's storage
        return t.contiguous() if t._base is not None and not t.is_contiguous() else t

    return evaluate


def _constant_index_to_gather(graph: Graph, n: Node) -> bool:
    """``x[i0, ..., ik]`` (advanced indexing, aten::index.Tensor) with constant integer indices on the leading dims
    becomes reshape -> index_select(dim 0, one flat constant index) -> reshape. Indices are wrapped and bounds-checked
    here; out-of-range ones keep the torch call (which raises as eager does)."""
    args = n.attrs.get("args")
    if n.attrs.get("kwargs") or len(n.outputs) != 1 or not isinstance(args, (list, tuple)) or len(args) != 2:
        return False
    if not isinstance(args[0], Arg) or not isinstance(args[1], (list, tuple)) or not args[1]:
        return False
    if not all(isinstance(a, Arg) for a in args[1]):
        return False  # None entries (x[:, i]) are left to torch
    x, idx = n.inputs[args[0].index], [n.inputs[a.index] for a in args[1]]
    if not x.is_static or len(idx) > x.rank or any(v.const is None for v in idx):
        return False
    ts = [graph.constants[v.const] for v in idx]
    for v in idx:
        graph.pin(v)  # the bounds checked below hold for these values only
    if any(t.dtype not in (torch.int64, torch.int32) for t in ts):
        return False  # boolean masks give a data-dependent shape
    try:
        bshape = torch.broadcast_shapes(*(t.shape for t in ts))
    except RuntimeError:
        return False
    sizes = [int(d) for d in x.shape[: len(ts)]]
    flat = torch.zeros(bshape, dtype=torch.int64)
    for t, size in zip(ts, sizes, strict=True):
        if size == 0 or bool(((t < -size) | (t >= size)).any()):
            return False
        flat = flat * size + torch.remainder(t.long(), size)
    rest = [int(d) for d in x.shape[len(ts) :]]
    if list(n.out.shape) != [*bshape, *rest]:
        return False
    rows = graph.add_node(Op.RESHAPE, [x], {"shape": [math.prod(sizes), *rest]}, before=n).out
    index = graph.add_constant(flat.reshape(-1).contiguous(), f"{n.out.name}_flat_index")
    picked = graph.add_node(Op.INDEX_SELECT, [rows, index], {"dim": 0}, before=n).out
    out = graph.add_node(Op.RESHAPE, [picked], {"shape": [*bshape, *rest]}, before=n).out
    graph.replace_all_uses(n.out, out)
    return True


def _bn_parts(bn: Node) -> list[Value]:
    """mean, var[, weight][, bias] of an inference BatchNorm."""
    return list(bn.inputs[1:])


def _bn_scale(bn: Node, stats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) in float64 with y = x * scale + shift, from BatchNorm's mean, var[, weight][, bias]."""
    mean, var, *rest = (t.double() for t in stats)
    weight = rest.pop(0) if bn.attrs["has_weight"] else torch.ones_like(mean)
    bias = rest.pop(0) if bn.attrs["has_bias"] else torch.zeros_like(mean)
    scale = weight / torch.sqrt(var + bn.attrs["eps"])
    return scale, bias - mean * scale


def _all_const(m: Match) -> bool:
    return all(v.const is not None for v in m.root.inputs[1:])


def _fold_bn(m: Match, layer: Node, w_shape: tuple[int, ...]) -> tuple[Value, Value]:
    """The layer's weight and bias with the BatchNorm after it folded in (derived: replayed when any changes)."""
    bn, g = m.root, m.graph
    has_b = len(layer.inputs) == 3
    ins = [m["w"], *([layer.inputs[2]] if has_b else []), *_bn_parts(bn)]

    def weight(w: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        scale, _ = _bn_scale(bn, rest[1:] if has_b else rest)
        return (w.double() * scale.reshape(w_shape)).to(w.dtype)

    def bias(w: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        scale, shift = _bn_scale(bn, rest[1:] if has_b else rest)
        b = rest[0].double() if has_b else torch.zeros_like(scale)
        return (b * scale + shift).to(w.dtype)

    key = m["w"].const
    return g.add_derived(weight, ins, f"{key}.bnfold"), g.add_derived(bias, ins, f"{key}.bnfold_bias")


def _fold_bn_into_conv(m: Match) -> Value | None:
    # batch_norm(conv(x, w, b)) -> conv(x, w * s, (b - mean) * s + beta)
    conv = m.node("conv")
    if not _all_const(m) or conv.out.rank != 4:
        return None
    w, b = _fold_bn(m, conv, (-1, 1, 1, 1))
    return m.emit(Op.CONV2D, [m["x"], w, b], dict(conv.attrs))


def _fold_bn_into_linear(m: Match) -> Value | None:
    # batch_norm(linear(x, w, b)) -> linear(x, w * s[:, None], (b - mean) * s + beta)   for (N, C) inputs
    lin = m.node("lin")
    if not _all_const(m) or lin.out.rank != 2:
        return None
    w, b = _fold_bn(m, lin, (-1, 1))
    return m.emit(Op.LINEAR, [m["x"], w, b])


_bias = P.const()
bn_rules = Rules(
    [
        (
            P(Op.BATCH_NORM, P(Op.CONV2D, P.var("x"), P.const("w"), name="conv"), variadic=True),
            _fold_bn_into_conv,
            "conv(x,w)+bn -> conv(x,w',b')",
        ),
        (
            P(Op.BATCH_NORM, P(Op.CONV2D, P.var("x"), P.const("w"), _bias, name="conv"), variadic=True),
            _fold_bn_into_conv,
            "conv(x,w,b)+bn -> conv(x,w',b')",
        ),
        (
            P(Op.BATCH_NORM, P(Op.LINEAR, P.var("x"), P.const("w"), name="lin"), variadic=True),
            _fold_bn_into_linear,
            "linear(x,w)+bn -> linear(x,w',b')",
        ),
        (
            P(Op.BATCH_NORM, P(Op.LINEAR, P.var("x"), P.const("w"), _bias, name="lin"), variadic=True),
            _fold_bn_into_linear,
            "linear(x,w,b)+bn -> linear(x,w',b')",
        ),
    ]
)


def fold_batchnorm(graph: Graph, opts: PassOptions) -> PassResult:
    """Inference BatchNorm after a conv or linear layer becomes part of that layer's weight and bias."""
    fired = rewrite(graph, bn_rules)
    return PassResult(graph, bool(fired), {"rules": fired})
