"""The torch backend: runs any node through its registry reference. Accepts everything; used last.

A partition becomes one generated straight-line Python function (runtime/codegen.py): the fallback path costs
about what eager costs, with no interpreter loop.
"""

from __future__ import annotations

from typing import Any

from ..ir import Graph, Node, Op
from ..ir.plan import Partition
from ..runtime.codegen import generate_function, inline_fused


class TorchFallback:
    name = "fallback-torch"

    def supports(self, node: Node, graph: Graph) -> str | None:
        return None

    def lower(self, partition: Partition, graph: Graph) -> Any:
        return generate_function(
            partition.nodes, partition.inputs, partition.outputs, graph, f"fallback_{partition.index}"
        )

    def kernels(self, partition: Partition) -> int:
        return sum(1 for n in inline_fused(partition.nodes) if n.op not in _FREE)


# nodes that launch no kernel (pure metadata or Python ints)
_FREE = frozenset(
    {
        Op.RESHAPE,
        Op.PERMUTE,
        Op.TRANSPOSE,
        Op.EXPAND,
        Op.SQUEEZE,
        Op.UNSQUEEZE,
        Op.SLICE,
        Op.SELECT,
        Op.SYM_SIZE,
        Op.SYM_ARITH,
    }
)
