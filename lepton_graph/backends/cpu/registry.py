"""How CPU-native kernels plug in: one lowering function per op (or per fusion-group kind).

A lowering runs once at compile time, given the node, its graph and the compile's LowerOptions: it inspects the
node (shapes, dtypes, attributes, constant weights), packs weights, and returns a Kernel — a callable taking the
node's inputs, then its syms (torch tensors; Python ints for symbolic sizes) and returning its output (a tensor for
a single-output node, a tuple otherwise; SPLIT always a tuple) — or a string saying why this node cannot run
natively (then the torch fallback runs it, and the string shows up in the report). Inputs may be non-contiguous
views: a kernel handles strides or makes them contiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...ir import Graph, Node, Op

if TYPE_CHECKING:
    from .. import LowerOptions

Kernel = Callable[..., Any]
Lowering = Callable[[Node, Graph, "LowerOptions"], "Kernel | str"]

LOWERINGS: dict[Op, Lowering] = {}
FUSED_LOWERINGS: dict[str, Lowering] = {}


def lowers(*ops: Op) -> Callable[[Lowering], Lowering]:
    def deco(fn: Lowering) -> Lowering:
        for op in ops:
            if op in LOWERINGS:
                raise ValueError(f"two CPU lowerings for {op.value}")
            LOWERINGS[op] = fn
        return fn

    return deco


def lowers_fused(*kinds: str) -> Callable[[Lowering], Lowering]:
    def deco(fn: Lowering) -> Lowering:
        for kind in kinds:
            if kind in FUSED_LOWERINGS:
                raise ValueError(f"two CPU lowerings for fused kind {kind}")
            FUSED_LOWERINGS[kind] = fn
        return fn

    return deco


def lowering_for(node: Node) -> Lowering | None:
    if node.op is Op.FUSED:
        return FUSED_LOWERINGS.get(node.attrs["kind"])
    return LOWERINGS.get(node.op)
