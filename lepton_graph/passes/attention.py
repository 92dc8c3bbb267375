"""Attention recognition: matmul -> scale -> (mask) -> softmax -> matmul, as HF models write it, becomes SDPA."""

from __future__ import annotations

import math

from ..ir import Graph, Op, Value
from ..ir.pattern import Match, P, Rules, rewrite
from .base import PassOptions, PassResult


def _kt(name: str) -> P:
    """k transposed on its last two dims (transpose(-1, -2) or an equivalent permute)."""
    return P.any_of(
        P(Op.TRANSPOSE, P.var(name), name=f"{name}_t"),
        P(Op.PERMUTE, P.var(name), name=f"{name}_p"),
    )


def _scores(scaled: P) -> P:
    return P.any_of(
        P(Op.ADD, scaled, P.var("mask"), name="masked"),  # additive mask
        scaled,
    )


_qk = P(Op.MATMUL, P.var("q"), _kt("k"), name="qk")
_scaled = P.any_of(
    P(Op.DIV, _qk, name="div", reverse=False, rounding_mode=None, scalar=lambda s: s is not None),
    P(Op.MUL, _qk, name="mul", scalar=lambda s: s is not None),
    _qk,
)
_pattern = P(Op.MATMUL, P(Op.SOFTMAX, _scores(_scaled), name="softmax"), P.var("v"))


def _is_last_two_swap(m: Match) -> bool:
    r = m["k"].rank
    if "k_t" in m.nodes:
        a = m.node("k_t").attrs
        return {a["dim0"] % r, a["dim1"] % r} == {r - 1, r - 2}
    dims = tuple(d % r for d in m.node("k_p").attrs["dims"])
    return dims == tuple(range(r - 2)) + (r - 1, r - 2)


def _to_sdpa(m: Match) -> Value | None:
    q, k, v = m["q"], m["k"], m["v"]
    if q.rank < 3 or k.rank != q.rank or v.rank != q.rank or not _is_last_two_swap(m):
        return None
    if m.node("softmax").attrs.get("dim") not in (-1, q.rank - 1) or m.node("softmax").attrs.get("dtype"):
        return None
    scale = 1.0
    if "div" in m.nodes:
        scale = 1.0 / m.node("div").attrs["scalar"]
    elif "mul" in m.nodes:
        scale = float(m.node("mul").attrs["scalar"])
    if q.dtype != m.root.out.dtype:
        return None
    inputs = [q, k, v]
    if "mask" in m.values:
        mask = m["mask"]
        if mask.dtype != q.dtype:  # SDPA's float mask is added like the pattern's; a bool mask is not
            return None
        inputs.append(mask)
    return m.emit(Op.SDPA, inputs, {"is_causal": False, "scale": scale if not math.isnan(scale) else None})


attention_rules = Rules([(_pattern, _to_sdpa, "matmul-scale-mask-softmax-matmul -> sdpa")])


def recognize_attention(graph: Graph, opts: PassOptions) -> PassResult:
    """Replace the explicit attention computation by one SDPA node (the score matrix need not materialise)."""
    fired = rewrite(graph, attention_rules)
    return PassResult(graph, bool(fired), {"rules": fired})
