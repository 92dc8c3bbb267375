"""The native CPU backend (C++ kernels in csrc/). Its capability table grows with the kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...ir import Graph, Node, Op
from ...passes.partition import Partition

# (Op) -> predicate(node) -> reason or None. Empty until native kernels beat torch (see bench/kernels).
CAPABILITIES: dict[Op, Callable[[Node], str | None]] = {}


class CpuNative:
    name = "cpu-native"

    @classmethod
    def create(cls) -> CpuNative | None:
        try:
            from . import native  # noqa: F401
        except ImportError:
            return None
        return cls()

    def supports(self, node: Node, graph: Graph) -> str | None:
        check = CAPABILITIES.get(node.op)
        if check is None:
            return "no native kernel"
        return check(node)

    def lower(self, partition: Partition, graph: Graph) -> Any:
        raise NotImplementedError("no native kernels are registered yet")

    def kernels(self, partition: Partition) -> int:
        return len(partition.nodes)
