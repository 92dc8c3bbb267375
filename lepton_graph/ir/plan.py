"""The partition plan: which nodes each backend runs, as the partition pass hands it to lowering and the runtime.

Plain data over the IR (its own module so that passes/, backends/ and runtime/ share it without importing each
other). Partitions know their inputs, outputs and the partitions they depend on, so an executor can run
independent partitions at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Node, Value


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
