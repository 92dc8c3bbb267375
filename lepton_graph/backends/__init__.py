"""Backends: each declares what it can run (supports) and turns a partition into a callable (lower).

The partitioner asks them in preference order; the torch fallback backend accepts everything, last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..ir import Graph, Node
from ..ir.plan import Partition

# A lowered partition: takes the partition's input values positionally, returns a tuple of its outputs.
Executable = Callable[..., tuple[Any, ...]]


class Backend(Protocol):
    name: str

    def supports(self, node: Node, graph: Graph) -> str | None: ...

    def lower(self, partition: Partition, graph: Graph) -> Executable: ...

    def kernels(self, partition: Partition) -> int:
        """Kernel launches one call of the lowered partition makes."""
        ...


@dataclass(frozen=True)
class LowerOptions:
    """The compile settings lowering reads, passed to every lowering as an argument."""

    precision: str = "fp32"  # "bf16": GEMM/conv weights and attention operands in bf16 where the CPU has it


def default_backends(device: str, native: bool, options: LowerOptions | None = None) -> list[Any]:
    from .fallback import TorchFallback

    chain: list[Any] = []
    if native and device.startswith("cpu"):
        from .cpu import CpuNative

        cpu = CpuNative.create(options or LowerOptions())
        if cpu is not None:
            chain.append(cpu)
    chain.append(TorchFallback())
    return chain
