"""Backends: each declares what it can run (supports) and turns a partition into a callable (lower).

The partitioner asks them in preference order; the torch fallback backend accepts everything, last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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


class Prepacked:
    """GEMM weights whose f32 B panels exist before lowering (a loaded artifact stores them: no packing at load),
    by constant key: (transposed, the panel bytes as a uint8 tensor). ``take`` counts each use, so the loader can
    check that every reader of such a constant took its panels (the constant itself is not in the file)."""

    def __init__(self, entries: dict[str, tuple[bool, Any]]) -> None:
        self.entries = entries
        self.used: Counter[str] = Counter()

    def take(self, key: str, transposed: bool) -> Any | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] != transposed:
            return None
        self.used[key] += 1
        return entry[1]


@dataclass(frozen=True)
class LowerOptions:
    """The compile settings lowering reads, passed to every lowering as an argument."""

    precision: str = "fp32"  # "bf16": GEMM/conv weights and attention operands in bf16 where the CPU has it
    prepacked: Prepacked | None = field(default=None, compare=False)


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
