"""Lifetimes: where each intermediate value dies, and the peak of live activation bytes that implies.

The executor releases a value right after its last use (its generated code deletes it there); this pass records
the same facts on the graph so reports and a later buffer-reuse planner can use them.
"""

from __future__ import annotations

from ..ir import Graph, Value
from .analysis import _bytes
from .base import PassOptions, PassResult


def mark_lifetimes(graph: Graph, opts: PassOptions) -> PassResult:
    """graph.meta["dies_after"]: node name -> names of values last used there; graph.meta["peak_bytes"]."""
    last: dict[Value, int] = {}
    for i, n in enumerate(graph.nodes):
        for v in n.deps():
            last[v] = i
    outputs = set(graph.outputs)
    dies: dict[str, list[str]] = {}
    live = peak = 0
    for i, n in enumerate(graph.nodes):
        live += sum(_bytes(v) for v in n.outputs if v.kind == "tensor")
        peak = max(peak, live)
        for v in n.deps():
            if last.get(v) == i and v.producer is not None and v not in outputs:
                dies.setdefault(n.name, []).append(v.name)
                live -= _bytes(v)
        for v in n.outputs:  # never read: dead as soon as it is made
            if v not in last and v not in outputs:
                dies.setdefault(n.name, []).append(v.name)
                live -= _bytes(v)
    graph.meta["dies_after"] = dies
    graph.meta["peak_bytes"] = peak
    return PassResult(graph, False, {"peak_activation_bytes": peak, "values_freed": sum(map(len, dies.values()))})
