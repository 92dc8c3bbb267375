"""The pass pipeline: small Graph -> Graph functions run in this order, each followed by the verifier."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .. import log
from ..config import config
from ..ir import Graph, format_graph, interpret, verify
from .base import Pass, PassOptions, PassRecord, PassResult
from .cleanup import eliminate_dead_code

PIPELINE: list[Pass] = [
    eliminate_dead_code,
]


class PassError(RuntimeError):
    pass


def run_pipeline(graph: Graph, opts: PassOptions | None = None, passes: Sequence[Pass] | None = None,
                 example_inputs: Sequence[Any] | None = None) -> tuple[Graph, list[PassRecord]]:
    """Run ``passes`` (default PIPELINE); verify after each; with verify on, measure each pass's numeric drift."""
    opts = opts or PassOptions()
    records: list[PassRecord] = []
    done: list[str] = []
    reference = interpret(graph, example_inputs) if config.verify and example_inputs is not None else None
    for p in passes if passes is not None else PIPELINE:
        before = len(graph.nodes)
        t0 = time.perf_counter()
        try:
            result: PassResult = p(graph, opts)
            graph = result.graph
            if config.verify:
                verify(graph)
        except Exception as e:
            raise PassError(f"pass {p.__name__} failed (after {', '.join(done) or 'no passes'}): {e}") from e
        rec = PassRecord(p.__name__, time.perf_counter() - t0, before, len(graph.nodes), result.changed,
                         result.stats)
        if reference is not None and result.changed:
            rec.drift = _drift(reference, interpret(graph, example_inputs))  # type: ignore[arg-type]
        records.append(rec)
        done.append(p.__name__)
        log.log("passes", "after %s (%d -> %d nodes):\n%s", p.__name__, before, len(graph.nodes),
                _Lazy(graph))
    return graph, records


def _drift(ref: Sequence[Any], out: Sequence[Any]) -> float:
    worst = 0.0
    for a, b in zip(ref, out):
        if hasattr(a, "dtype") and a.is_floating_point() and a.numel():
            scale = max(float(a.abs().max()), 1e-12)
            worst = max(worst, float((a.double() - b.double()).abs().max()) / scale)
    return worst


class _Lazy:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def __str__(self) -> str:
        return format_graph(self.graph)


__all__ = ["PIPELINE", "PassOptions", "PassRecord", "PassResult", "run_pipeline"]
