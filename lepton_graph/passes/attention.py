"""Attention recognition: matmul -> scale -> (mask) -> softmax -> matmul, as HF models write it, becomes SDPA."""

from __future__ import annotations

import math

import torch

from ..ir import Graph, Op, OpGroup, Value
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


def _repeat_kv(name: str) -> P:
    """HF's repeat_kv: x[:, :, None].expand(b, h_kv, n_rep, s, d).reshape(b, h_kv * n_rep, s, d)."""
    return P(
        Op.RESHAPE,
        P(Op.EXPAND, P(Op.UNSQUEEZE, P.var(name), name=f"{name}_u"), name=f"{name}_e"),
        name=f"{name}_r",
        shared=True,
    )


def _is_head_repeat(m: Match, name: str) -> int | None:
    """The repeat factor if ``name`` was repeated along the heads dim (dim 1 of (B, H_kv, S, D)), else None."""
    x, out = m[name], m[f"{name}_r"]
    if x.rank != 4 or out.rank != 4 or not x.is_static or not out.is_static:
        return None
    if m.node(f"{name}_u").attrs["dim"] % 5 != 2:
        return None
    b, h, s, d = x.shape
    rep = out.shape[1] // h if out.shape[1] % h == 0 else None  # type: ignore[operator]
    if rep is None or tuple(out.shape) != (b, h * rep, s, d) or tuple(m[f"{name}_e"].shape) != (b, h, rep, s, d):
        return None
    return rep


def _to_gqa(m: Match) -> Value | None:
    # sdpa(q, repeat_kv(k), repeat_kv(v)) -> sdpa(q, k, v, enable_gqa=True)
    rk, rv = _is_head_repeat(m, "k"), _is_head_repeat(m, "v")
    if rk is None or rk != rv or rk == 1:
        return None
    attrs = dict(m.root.attrs)
    attrs["enable_gqa"] = True
    return m.emit(Op.SDPA, [m["q"], m["k"], m["v"], *m.root.inputs[3:]], attrs)


def _drop_noop_mask(m: Match) -> Value | None:
    # sdpa(q, k, v, mask) with a constant mask that keeps everything (bool all-True, float all-zero) -> no mask:
    # the kernel then skips reading an (L, S) mask per head (ViT's all-True mask is one).
    v = m.root.inputs[3]
    while v.const is None and v.producer is not None and v.producer.op in OpGroup.VIEW:  # views keep "all"
        v = v.producer.inputs[0]
    t = m.graph.constant(v)
    if t is None or t.numel() == 0:
        return None
    noop = bool(t.all()) if t.dtype == torch.bool else bool((t == 0).all()) if t.is_floating_point() else False
    if not noop:
        return None
    m.graph.pin(v)  # valid while the mask keeps everything
    return m.emit(Op.SDPA, list(m.root.inputs[:3]), dict(m.root.attrs))


attention_rules = Rules(
    [
        (_pattern, _to_sdpa, "matmul-scale-mask-softmax-matmul -> sdpa"),
        (
            P(Op.SDPA, P.var("q"), _repeat_kv("k"), _repeat_kv("v"), variadic=True, enable_gqa=False),
            _to_gqa,
            "sdpa(q, repeat_kv(k), repeat_kv(v)) -> sdpa(q, k, v, gqa)",
        ),
        (
            P(Op.SDPA, P.var("q"), P.var("k"), P.var("v"), P.var("mask")),
            _drop_noop_mask,
            "sdpa(q, k, v, keep-all mask) -> sdpa(q, k, v)",
        ),
    ]
)


def recognize_attention(graph: Graph, opts: PassOptions) -> PassResult:
    """Replace the explicit attention computation by one SDPA node (the score matrix need not materialise)."""
    fired = rewrite(graph, attention_rules)
    return PassResult(graph, bool(fired), {"rules": fired})
