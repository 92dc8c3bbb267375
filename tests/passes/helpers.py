"""check_pass: run one pass on a graph, verify structure, compare numerics with the graph before, idempotency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lepton_graph.ir import Graph, Op, interpret, verify
from lepton_graph.passes import PassOptions


def clone_graph_outputs(graph: Graph, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.clone() for t in interpret(graph, inputs)]


def check_pass(
    pass_fn: Callable, graph: Graph, inputs: Sequence[torch.Tensor], *, rtol: float = 1e-5, fired: bool = True
) -> Graph:
    """Apply ``pass_fn``; assert it fired (or not), the verifier passes, outputs match, a second run is a no-op."""
    before = clone_graph_outputs(graph, inputs)
    result = pass_fn(graph, PassOptions())
    assert result.changed is fired, f"{pass_fn.__name__} changed={result.changed}, expected {fired}"
    verify(result.graph)
    after = clone_graph_outputs(result.graph, inputs)
    for a, b in zip(before, after, strict=True):
        scale = max(float(a.abs().max()), 1e-12) if a.numel() else 1.0
        assert a.shape == b.shape and a.dtype == b.dtype
        assert float((a - b).abs().max()) <= rtol * scale if a.numel() else True
    again = pass_fn(result.graph, PassOptions())
    assert not again.changed, f"{pass_fn.__name__} is not idempotent"
    return result.graph


def ops(graph: Graph) -> list[str]:
    out = []
    for n in graph.nodes:
        if n.op is Op.FUSED:
            out.append(f"fused[{n.attrs['kind']}:{'+'.join(b.op.value for b in n.attrs['body'].nodes)}]")
        else:
            out.append(n.op.value)
    return out


def rand(*shape: int, gen: Any = None) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)
