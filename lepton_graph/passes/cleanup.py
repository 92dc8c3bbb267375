"""Dead-code elimination."""

from __future__ import annotations

from ..ir import Graph
from .base import PassOptions, PassResult


def eliminate_dead_code(graph: Graph, opts: PassOptions) -> PassResult:
    """Drop nodes whose results reach no output, and weights nothing reads any more."""
    removed = graph.remove_dead()
    return PassResult(graph, removed > 0, {"removed": removed})
