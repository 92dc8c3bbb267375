"""Layer merging: consecutive linear layers with nothing between them become one; linear layers reading the
same input (Q/K/V, gate/up) become one GEMM followed by a split."""

from __future__ import annotations

import torch

from ..ir import Graph, Node, Op, Value
from ..ir.pattern import Match, P, Rules, rewrite
from .base import PassOptions, PassResult


def _merge_chain(m: Match) -> Value | None:
    # linear(linear(x, W1, b1), W2, b2) -> linear(x, W2 @ W1, W2 @ b1 + b2)   when it saves FLOPs
    g = m.graph
    inner, outer = m.node("inner"), m.root
    (mid, k), n = inner.inputs[1].shape, outer.inputs[1].shape[0]
    if n * k > mid * k + n * mid:  # type: ignore[operator]
        return None  # a bottleneck (e.g. low-rank factors): merging would cost more than it saves
    has_b1, has_b2 = len(inner.inputs) == 3, len(outer.inputs) == 3
    ins = [inner.inputs[1], outer.inputs[1], *inner.inputs[2:], *outer.inputs[2:]]

    def weight(w1: torch.Tensor, w2: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return (w2.double() @ w1.double()).to(w2.dtype)

    def bias(w1: torch.Tensor, w2: torch.Tensor, *bs: torch.Tensor) -> torch.Tensor:
        b1 = bs[0].double() if has_b1 else None
        b2 = bs[-1].double() if has_b2 else None
        b = (w2.double() @ b1 if b1 is not None else 0) + (b2 if b2 is not None else 0)
        return torch.as_tensor(b).to(w2.dtype)

    key = outer.inputs[1].const
    inputs = [m["x"], g.add_derived(weight, ins, f"{key}.merged")]
    if has_b1 or has_b2:
        inputs.append(g.add_derived(bias, ins, f"{key}.merged_bias"))
    return m.emit(Op.LINEAR, inputs)


_lin_inner = P(Op.LINEAR, P.var("x"), P.const(), variadic=True, name="inner")
chain_rules = Rules(
    [
        (
            P(Op.LINEAR, _lin_inner, P.const(), variadic=True),
            lambda m: _merge_chain(m) if _consts(m) else None,
            "linear(linear(x)) -> linear(x)",
        ),
    ]
)


def _consts(m: Match) -> bool:
    return all(v.const is not None for v in (*m.node("inner").inputs[1:], *m.root.inputs[1:]))


def merge_linear_chains(graph: Graph, opts: PassOptions) -> PassResult:
    """Consecutive linear layers with no non-linearity between them, merged into one (FLOPs permitting)."""
    fired = rewrite(graph, chain_rules)
    return PassResult(graph, bool(fired), {"rules": fired})


def merge_sibling_linears(graph: Graph, opts: PassOptions) -> PassResult:
    """linear(x, Wq), linear(x, Wk), linear(x, Wv) -> split(linear(x, [Wq; Wk; Wv]))."""
    groups: dict[tuple, list[Node]] = {}
    for n in graph.nodes:
        if n.op is Op.LINEAR and all(v.const is not None for v in n.inputs[1:]) and n.inputs[1].rank == 2:
            groups.setdefault((n.inputs[0], n.out.dtype, len(n.inputs)), []).append(n)
    merged = 0
    for (x, _, nin), nodes in groups.items():
        if len(nodes) < 2:
            continue
        if len({n.inputs[1].dtype for n in nodes}) != 1:
            continue
        w = graph.add_derived(_cat_rows, [n.inputs[1] for n in nodes], "+".join(str(n.inputs[1].const) for n in nodes))
        inputs = [x, w]
        if nin == 3:
            inputs.append(graph.add_derived(_cat_rows, [n.inputs[2] for n in nodes], f"{w.const}.bias"))
        first = nodes[0]
        lin = graph.add_node(Op.LINEAR, inputs, before=first)
        sizes = tuple(int(n.inputs[1].shape[0]) for n in nodes)
        split = graph.add_node(Op.SPLIT, [lin.out], {"sizes": sizes, "dim": -1}, before=first)
        for n, v in zip(nodes, split.outputs):
            graph.replace_all_uses(n.out, v)
        merged += len(nodes)
    if merged:
        graph.remove_dead()
    return PassResult(graph, merged > 0, {"merged_linears": merged})


def _cat_rows(*ts: torch.Tensor) -> torch.Tensor:
    return torch.cat(ts, 0)
