"""Partitioning: assign each node to the first backend that can run it; group runs of nodes per backend.

Every "no" is recorded with its reason. The result is a PartitionPlan (ir/plan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..ir import Graph, Node, Op, Value
from ..ir.plan import Partition, PartitionPlan

__all__ = ["Capability", "Partition", "PartitionPlan", "partition_graph"]


class Capability(Protocol):
    name: str

    def supports(self, node: Node, graph: Graph) -> str | None:
        """None if this backend can run ``node``; otherwise the reason it cannot."""
        ...


def partition_graph(graph: Graph, backends: Sequence[Capability]) -> PartitionPlan:
    """Greedy, in topological order: a node joins the current partition when its backend matches."""
    reasons: dict[str, dict[str, int]] = {}
    parts: list[Partition] = []
    for node in graph.nodes:
        target = None
        for b in backends:
            why = b.supports(node, graph)
            if why is None:
                target = b.name
                break
            key = node.attrs.get("target", node.op.value) if node.op is Op.FALLBACK else node.op.value
            reasons.setdefault(key, {}).setdefault(f"{b.name}: {why}", 0)
            reasons[key][f"{b.name}: {why}"] += 1
        if target is None:
            raise RuntimeError(f"no backend accepts node {node.name} ({node.op.value}); the fallback backend must")
        if not parts or parts[-1].target != target:
            parts.append(Partition(len(parts), target))
        parts[-1].nodes.append(node)
    _connect(graph, parts)
    return PartitionPlan(parts, reasons)


def _connect(graph: Graph, parts: list[Partition]) -> None:
    if len(parts) == 1:  # the whole graph: take its exact signature so the executor needs no wrapper
        parts[0].inputs, parts[0].outputs = list(graph.inputs), list(graph.outputs)
        return
    owner: dict[Value, int] = {}
    for p in parts:
        for n in p.nodes:
            for v in n.outputs:
                owner[v] = p.index
    needed_outside: set[Value] = set(graph.outputs)
    for p in parts:
        seen: set[Value] = set()
        for n in p.nodes:
            for v in n.deps():
                src = owner.get(v)
                if src == p.index or v.const is not None or v in seen:
                    continue
                seen.add(v)
                p.inputs.append(v)
                if src is not None:
                    p.deps.add(src)
                    needed_outside.add(v)
    for p in parts:
        p.outputs = [v for n in p.nodes for v in n.outputs if v in needed_outside]
