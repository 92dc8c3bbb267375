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
    w1 = g.constants[inner.inputs[1].const].double()  # type: ignore[index]
    w2 = g.constants[outer.inputs[1].const].double()  # type: ignore[index]
    (mid, k), n = w1.shape, w2.shape[0]
    if n * k > mid * k + n * mid:
        return None  # a bottleneck (e.g. low-rank factors): merging would cost more than it saves
    b1 = g.constants[inner.inputs[2].const].double() if len(inner.inputs) == 3 else None  # type: ignore[index]
    b2 = g.constants[outer.inputs[2].const].double() if len(outer.inputs) == 3 else None  # type: ignore[index]
    dtype = g.constants[outer.inputs[1].const].dtype  # type: ignore[index]
    w = g.add_constant((w2 @ w1).to(dtype), f"{outer.inputs[1].const}.merged")
    inputs = [m["x"], w]
    if b1 is not None or b2 is not None:
        b = (w2 @ b1 if b1 is not None else 0) + (b2 if b2 is not None else 0)
        inputs.append(g.add_constant(torch.as_tensor(b).to(dtype), f"{outer.inputs[1].const}.merged_bias"))
    return m.emit(Op.LINEAR, inputs)


_lin_inner = P(Op.LINEAR, P.var("x"), P.const(), variadic=True, name="inner")
chain_rules = Rules([
    (P(Op.LINEAR, _lin_inner, P.const(), variadic=True), lambda m: _merge_chain(m) if _consts(m) else None,
     "linear(linear(x)) -> linear(x)"),
])


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
        ws = [graph.constants[n.inputs[1].const] for n in nodes]  # type: ignore[index]
        if len({w.dtype for w in ws}) != 1:
            continue
        w = graph.add_constant(torch.cat(ws, 0), "+".join(str(n.inputs[1].const) for n in nodes))
        inputs = [x, w]
        if nin == 3:
            b = torch.cat([graph.constants[n.inputs[2].const] for n in nodes], 0)  # type: ignore[index]
            inputs.append(graph.add_constant(b, f"{w.const}.bias"))
        first = nodes[0]
        lin = graph.add_node(Op.LINEAR, inputs, before=first)
        sizes = tuple(int(t.shape[0]) for t in ws)
        split = graph.add_node(Op.SPLIT, [lin.out], {"sizes": sizes, "dim": -1}, before=first)
        for n, v in zip(nodes, split.outputs):
            graph.replace_all_uses(n.out, v)
        merged += len(nodes)
    if merged:
        graph.remove_dead()
    return PassResult(graph, merged > 0, {"merged_linears": merged})
