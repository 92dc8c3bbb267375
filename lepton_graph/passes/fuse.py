"""Fusion: groups of nodes that one kernel runs, made into FUSED nodes whose body is the group's sub-graph.

Three kinds, formed in this order:
- "gemm": a GEMM or conv with the elementwise chain after it (bias, activation, residual add) as its epilogue;
- "norm"/"softmax": a normalisation with its elementwise producers (residual add) and consumers;
- "elementwise": maximal connected groups of same-shaped elementwise ops, broadcasting operands allowed.
A group never duplicates work (an inner value used outside becomes an extra output of the group) and never
creates a cycle (a group must be convex: no path leaves it and comes back).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import log
from ..ir import Graph, Node, Op, OpGroup, Value, toposort
from .base import PassOptions, PassResult

_ROOTS_GEMM = OpGroup.GEMM | OpGroup.CONV
_ROOTS_NORM = {Op.LAYER_NORM: "norm", Op.RMS_NORM: "norm", Op.SOFTMAX: "softmax", Op.LOG_SOFTMAX: "softmax"}


class _Refusals:
    """Every "no" of the pass: logged on the fusion channel and counted by reason in the pass stats."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, producer: Node, consumer: Node, reason: str, key: str | None = None) -> None:
        log.log("fusion", "not fusing %s into %s: %s", consumer.name, producer.name, reason)
        self.counts[key or reason] = self.counts.get(key or reason, 0) + 1


def _why_not_eltwise(n: Node, shape: tuple, taken: set[Node]) -> str | None:
    if n in taken:
        return "already in another group"
    if n.op not in OpGroup.ELEMENTWISE:
        return f"{n.op.value} is not elementwise"
    if len(n.outputs) != 1 or n.syms:
        return "multi-output or symbolic-size elementwise op"
    if tuple(n.out.shape) != shape:
        return f"shape {list(n.out.shape)} differs from the group's {list(shape)}"
    return None


def _epilogue(
    root: Node, users: dict[Value, list[Node]], taken: set[Node], graph: Graph, opts: PassOptions, why: _Refusals
) -> list[Node]:
    group = [root]
    cur = root
    shape = tuple(root.out.shape)
    while True:
        us = users.get(cur.out, [])
        if len(us) != 1:
            if us:
                why(cur, us[0], f"{len(us)} users of {cur.name}'s output", "several users")
            break
        u = us[0]
        if (reason := _why_not_eltwise(u, shape, taken)) is not None:
            why(cur, u, reason, "not a same-shape elementwise consumer")
            break
        refusal = opts.can_fuse("gemm", [*group, u], graph) if opts.can_fuse is not None else None
        if refusal is not None:  # the backend disposes: the rest stays for an elementwise group after the GEMM
            why(root, u, f"backend: {refusal}")
            break
        group.append(u)
        cur = u
    return group


def _norm_group(root: Node, users: dict[Value, list[Node]], taken: set[Node], why: _Refusals) -> list[Node]:
    group = [root]
    x = root.inputs[0]
    p = x.producer
    # prologue: the elementwise op producing the normalised input (typically the residual add); when its output is
    # used outside too (the residual stream), it becomes an extra output of the group
    if p is not None:
        if (reason := _why_not_eltwise(p, tuple(x.shape), taken)) is None:
            group.insert(0, p)
        else:
            why(p, root, f"prologue: {reason}", "prologue not a same-shape elementwise producer")
    cur = root
    while True:  # epilogue: elementwise consumers of the normalised value
        us = users.get(cur.out, [])
        if len(us) != 1:
            if us:
                why(cur, us[0], f"{len(us)} users of {cur.name}'s output", "several users")
            break
        if (reason := _why_not_eltwise(us[0], tuple(root.out.shape), taken)) is not None:
            why(cur, us[0], reason, "not a same-shape elementwise consumer")
            break
        group.append(us[0])
        cur = us[0]
    return group


def _eltwise_groups(graph: Graph, users: dict[Value, list[Node]], taken: set[Node]) -> list[list[Node]]:
    parent: dict[Node, Node] = {}

    def find(n: Node) -> Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    cands = [
        n for n in graph.nodes if n not in taken and n.op in OpGroup.ELEMENTWISE and len(n.outputs) == 1 and not n.syms
    ]
    for n in cands:
        parent[n] = n
    for n in cands:
        for v in n.inputs:
            p = v.producer
            if p in parent and tuple(p.out.shape) == tuple(n.out.shape):
                parent[find(n)] = find(p)
    comps: dict[Node, list[Node]] = {}
    for n in cands:
        comps.setdefault(find(n), []).append(n)
    return [c for c in comps.values() if len(c) > 1]


def _convex(graph: Graph, group: set[Node], users: dict[Value, list[Node]]) -> bool:
    """No path from the group to an outside node and back into the group."""
    frontier = [u for n in group for v in n.outputs for u in users.get(v, []) if u not in group]
    seen: set[Node] = set()
    while frontier:
        n = frontier.pop()
        if n in seen:
            continue
        seen.add(n)
        for v in n.outputs:
            for u in users.get(v, []):
                if u in group:
                    return False
                frontier.append(u)
    return True


def make_fused(graph: Graph, nodes: Iterable[Node], kind: str, users: dict[Value, list[Node]] | None = None) -> Node:
    """Replace ``nodes`` (in topological order) by one FUSED node whose body holds copies of them."""
    nodes = list(nodes)
    members = set(nodes)
    users = graph.users() if users is None else users
    body = Graph()
    vmap: dict[Value, Value] = {}
    ext_inputs: list[Value] = []
    for n in nodes:
        for v in n.deps():
            if v in vmap or v.producer in members:
                continue
            ext_inputs.append(v)
            vmap[v] = body.add_input(v.shape, v.dtype, v.device, kind=v.kind, name=f"i{len(ext_inputs) - 1}")
    outputs: list[Value] = []
    graph_outs = set(graph.outputs)
    for n in nodes:
        new_outs = [Value(body.fresh(), v.shape, v.dtype, v.device, kind=v.kind) for v in n.outputs]
        copy = body.add_node(
            n.op, [vmap[v] for v in n.inputs], dict(n.attrs), outputs=new_outs, syms=[vmap[v] for v in n.syms]
        )
        for old, new in zip(n.outputs, copy.outputs):
            vmap[old] = new
            if old in graph_outs or any(u not in members for u in users.get(old, [])):
                outputs.append(old)
    body.outputs = [vmap[v] for v in outputs]
    outs = [Value(graph.fresh(), v.shape, v.dtype, v.device, kind=v.kind) for v in outputs]
    fused = graph.make_node(Op.FUSED, ext_inputs, {"kind": kind, "body": body}, outputs=outs)
    last = nodes[-1]
    graph.nodes.insert(graph.nodes.index(last) + 1, fused)
    for old, new in zip(outputs, outs):
        graph.replace_all_uses(old, new)
    graph.nodes = [n for n in graph.nodes if n not in members]
    toposort(graph)
    return fused


def fuse(graph: Graph, opts: PassOptions) -> PassResult:
    """Form GEMM-epilogue, normalisation and elementwise fusion groups (see module doc)."""
    users = graph.users()
    taken: set[Node] = set()
    groups: list[tuple[list[Node], str]] = []
    why = _Refusals()

    def claim(group: list[Node], kind: str) -> None:
        if len(group) < 2:
            return  # nothing to fuse (the reason, if any, was recorded while growing it)
        if not _convex(graph, set(group), users):
            why(
                group[0], group[-1], f"{kind} group would not be convex (a path leaves it and comes back)", "not convex"
            )
            return
        taken.update(group)
        groups.append((group, kind))

    for n in graph.nodes:
        if n.op in _ROOTS_GEMM and n not in taken:
            claim(_epilogue(n, users, taken, graph, opts, why), "gemm")
    for n in graph.nodes:
        if n.op in _ROOTS_NORM and n not in taken:
            claim(_norm_group(n, users, taken, why), _ROOTS_NORM[n.op])
    order = {n: i for i, n in enumerate(graph.nodes)}
    for comp in _eltwise_groups(graph, users, taken):
        claim(sorted(comp, key=order.__getitem__), "elementwise")
    counts: dict[str, int] = {}
    for group, kind in groups:
        users = graph.users()
        if not _convex(graph, set(group), users):  # groups fused before this one can close a cycle
            why(group[0], group[-1], f"{kind} group would close a cycle with a group fused before it", "cycle")
            continue
        make_fused(graph, sorted(group, key=order.__getitem__), kind, users)
        counts[kind] = counts.get(kind, 0) + 1
    stats: dict[str, object] = {"groups": counts}
    if why.counts:
        stats["refused"] = why.counts
    return PassResult(graph, bool(counts), stats)
