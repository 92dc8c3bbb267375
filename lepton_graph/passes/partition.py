"""Partitioning: assign each node to the first backend that can run it; group runs of nodes per backend.

Every "no" is recorded with its reason. Partitions know their inputs, outputs and the partitions they depend
on, so an executor can run independent partitions at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..ir import Graph, Node, Op, Value


class Capability(Protocol):
    name: str

    def supports(self, node: Node, graph: Graph) -> str | None:
        """None if this backend can run ``node``; otherwise the reason it cannot."""
        ...


@dataclass
class Partition:
    index: int
    target: str
    nodes: list[Node] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)  # values from outside (graph inputs, other partitions)
    outputs: list[Value] = field(default_factory=list)  # values used outside (other partitions, graph outputs)
    deps: set[int] = field(default_factory=set)  # indices of partitions this one reads from

    def __repr__(self) -> str:
        return f"Partition({self.index}, {self.target}, {len(self.nodes)} nodes)"


@dataclass
class PartitionPlan:
    partitions: list[Partition]
    reasons: dict[str, dict[str, int]]  # op -> {reason: count} for nodes no preferred backend took

    def summary(self) -> str:
        lines = [f"{len(self.partitions)} partitions"]
        for p in self.partitions:
            ops = ", ".join(sorted({n.op.value for n in p.nodes}))[:100]
            lines.append(f"  #{p.index} {p.target:14} {len(p.nodes):4} nodes  deps={sorted(p.deps)}  [{ops}]")
        for op, rs in self.reasons.items():
            for r, c in rs.items():
                lines.append(f"  not native: {op} x{c}: {r}")
        return "\n".join(lines)


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
