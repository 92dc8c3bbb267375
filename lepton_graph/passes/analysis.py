"""Whole-graph analyses passes and reports share: views vs kernels, and bytes moved, by meta execution.

Running every node's torch reference on meta tensors gives exact strides and aliasing (torch decides whether a
reshape is a view or a copy), at no memory cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..ir import Graph, Node, Op, OpGroup, Value
from ..ir.registry import run_reference

_NO_KERNEL = frozenset({Op.SYM_SIZE, Op.SYM_ARITH})
_MAYBE_VIEW = OpGroup.VIEW | {Op.SPLIT, Op.CONTIGUOUS, Op.FALLBACK}


@dataclass
class CostSummary:
    kernels: int
    bytes_moved: int  # sum over kernels of input + output bytes (static shapes; symbolic dims count as 1)
    views: int


def _meta(v: Value, graph: Graph) -> Any:
    if v.kind == "sym":
        return 1
    shape = [d if isinstance(d, int) else 1 for d in v.shape]
    if v.const is not None:
        t = graph.constants[v.const]
        return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    return torch.empty(shape, dtype=v.dtype.to_torch(), device="meta")


def meta_values(graph: Graph) -> dict[Value, Any]:
    """Meta tensors with the strides torch would give each value. Only view-like nodes are executed (on meta
    tensors); every other node makes fresh contiguous outputs, which is what registered compute ops do."""
    env: dict[Value, Any] = {v: _meta(v, graph) for v in graph.inputs}
    env.update({v: _meta(v, graph) for v in graph.const_values.values()})
    for n in graph.nodes:
        out: Any
        if n.op not in _MAYBE_VIEW:
            out = [_meta(v, graph) for v in n.outputs]
            out = out[0] if len(out) == 1 else out
        else:
            try:
                out = run_reference(n, [env[v] for v in n.inputs], [env[v] for v in n.syms])
            except Exception:  # an op without a meta kernel: assume a fresh contiguous result
                out = [_meta(v, graph) for v in n.outputs]
                out = out[0] if len(out) == 1 else out
        outs = out if len(n.outputs) != 1 or isinstance(out, (tuple, list)) else (out,)
        for v, o in zip(n.outputs, outs):
            env[v] = o
    return env


def is_view(node: Node, env: dict[Value, Any]) -> bool:
    """True if torch runs ``node`` without a kernel: its outputs alias an input (compute ops never do, even where
    torch returns a view of an internal temporary, as linear does for 3-d inputs)."""
    if node.op not in _MAYBE_VIEW:
        return False
    outs = [env.get(v) for v in node.outputs]
    ins = [env.get(v) for v in node.inputs]
    return bool(outs) and all(
        isinstance(o, torch.Tensor) and (o._base is not None or any(o is i for i in ins)) for o in outs
    )


def estimate(graph: Graph) -> CostSummary:
    """A cheap static estimate (no execution): view-like ops count as free."""
    return _summarize(graph, lambda n: n.op in OpGroup.VIEW or n.op is Op.SPLIT)


def cost(graph: Graph, env: dict[Value, Any] | None = None) -> CostSummary:
    """Kernels and bytes per forward, with views told apart by meta execution (exact aliasing)."""
    env = meta_values(graph) if env is None else env
    return _summarize(graph, lambda n: is_view(n, env))


def _summarize(graph: Graph, free: Callable[[Node], bool]) -> CostSummary:
    kernels = views = moved = 0
    for n in graph.nodes:
        if n.op in _NO_KERNEL or not n.outputs:
            continue
        if free(n):
            views += 1
            continue
        kernels += 1
        moved += sum(_bytes(v) for v in (*n.inputs, *n.outputs) if v.kind == "tensor")
    return CostSummary(kernels, moved, views)


def _bytes(v: Value) -> int:
    n = 1
    for d in v.shape:
        n *= d if isinstance(d, int) else 1
    return int(n * v.dtype.itemsize)
