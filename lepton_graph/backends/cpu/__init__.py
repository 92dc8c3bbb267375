"""The native CPU backend: C++ kernels in csrc/, reached through the lowerings in this package.

Each kernel family module registers its lowerings (registry.py); a node is native when its lowering returns a
kernel. Lowering runs once per node at compile time (weights are packed then) and its result is cached between
``supports`` and ``lower``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...ir import Graph, Node, Op
from ...ir.plan import Partition
from .. import LowerOptions
from .registry import Kernel, lowering_for

# kernel family modules; each registers lowerings on import (missing ones are simply not native)
FAMILIES = ("gemm", "conv", "eltwise", "norm", "attention", "movement")


class CpuNative:
    name = "cpu-native"

    def __init__(self, options: LowerOptions) -> None:
        self.options = options
        self._kernels: dict[int, Kernel | str] = {}

    @classmethod
    def create(cls, options: LowerOptions) -> CpuNative | None:
        try:
            from . import native
        except ImportError:
            return None
        if not native.available():
            return None
        import torch

        from ...config import config

        # native kernels use as many threads as torch does, unless LEPTON_NUM_THREADS says otherwise
        native.set_num_threads(config.num_threads or torch.get_num_threads())
        for fam in FAMILIES:
            try:
                importlib.import_module(f"{__name__}.{fam}")
            except ModuleNotFoundError as e:
                if e.name != f"{__name__}.{fam}":
                    raise
        return cls(options)

    def _lower_node(self, node: Node, graph: Graph) -> Kernel | str:
        key = id(node)
        if key not in self._kernels:
            fn = lowering_for(node)
            if fn is None:
                self._kernels[key] = "no native kernel"
            else:
                try:
                    self._kernels[key] = fn(node, graph, self.options)
                except (ValueError, NotImplementedError) as e:  # a kernel that rejects this configuration
                    self._kernels[key] = f"kernel rejected: {e}"
        return self._kernels[key]

    def can_fuse(self, kind: str, group: list[Node], graph: Graph) -> str | None:
        """Asked by the fusion pass for each group it proposes: None, or why no native kernel runs it."""
        from .fusion import can_fuse

        return can_fuse(kind, group, graph)

    def prefers_float(self, node: Node, graph: Graph) -> str | None:
        """Asked by the quantize pass for each layer a default scheme would quantize: why its float kernel is faster
        here than the int8 one, or None."""
        from .conv import float_conv_is_faster

        return float_conv_is_faster(node, graph, self.options) if node.op is Op.CONV2D else None

    def forget(self, nodes: list[Node]) -> None:
        """Drop these nodes' kernels (their weights changed): the next lowering packs them again."""
        for n in nodes:
            self._kernels.pop(id(n), None)

    def supports(self, node: Node, graph: Graph) -> str | None:
        k = self._lower_node(node, graph)
        return k if isinstance(k, str) else None

    def lower(self, partition: Partition, graph: Graph) -> Any:
        from ...config import config
        from ...runtime.codegen import generate_function

        kernels = {id(n): self._lower_node(n, graph) for n in partition.nodes}
        if config.profile:
            from ...runtime import profile

            kernels = {
                i: k if isinstance(k, str) else profile.wrap(_label(n), k)
                for n in partition.nodes
                for i, k in [(id(n), kernels[id(n)])]
            }
        return generate_function(
            partition.nodes, partition.inputs, partition.outputs, graph, f"cpu_{partition.index}", kernels=kernels
        )

    def kernels(self, partition: Partition) -> int:
        return len(partition.nodes)


def _label(node: Node) -> str:
    kind = node.attrs.get("kind") if node.op.name == "FUSED" else None

    def dims(vs: list) -> str:
        return ",".join("x".join(map(str, v.shape)) for v in vs if getattr(v, "shape", None) is not None)

    return f"{node.op.value}{'[' + kind + ']' if kind else ''} {dims(node.inputs)} -> {dims(node.outputs)}"
