"""The pass pipeline: small Graph -> Graph functions run in this order, each followed by the verifier."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from .. import log
from ..config import config
from ..ir import Graph, format_graph, interpret, verify
from ..ir.metrics import output_error
from .analysis import estimate
from .attention import recognize_attention
from .base import Pass, PassOptions, PassRecord, PassResult
from .cleanup import eliminate_dead_code
from .fold import fold_batchnorm, fold_constants
from .fuse import fuse
from .memory import mark_lifetimes
from .merge import merge_linear_chains, merge_sibling_linears
from .quantize import quantize_layers
from .simplify import eliminate_common_subexpressions, simplify

PIPELINE: list[Pass] = [
    eliminate_dead_code,
    simplify,
    fold_constants,
    fold_batchnorm,
    merge_linear_chains,
    merge_sibling_linears,
    quantize_layers,
    recognize_attention,
    eliminate_common_subexpressions,
    fuse,
    mark_lifetimes,
]


class PassError(RuntimeError):
    pass


def run_pipeline(
    graph: Graph,
    opts: PassOptions | None = None,
    passes: Sequence[Pass] | None = None,
    example_inputs: Sequence[Any] | None = None,
    reference: Sequence[Any] | None = None,
) -> tuple[Graph, list[PassRecord]]:
    """Run ``passes`` (default PIPELINE); verify after each; given example inputs (LEPTON_VERIFY), measure each
    pass's numeric drift against ``reference`` (the outputs of the graph before the pipeline)."""
    opts = opts or PassOptions()
    records: list[PassRecord] = []
    done: list[str] = []
    if example_inputs is not None and reference is None:
        reference = interpret(graph, example_inputs)
    est = estimate(graph)
    for p in passes if passes is not None else PIPELINE:
        before = len(graph.nodes)
        t0 = time.perf_counter()
        try:
            result: PassResult = p(graph, opts)
            graph = result.graph
            # structure (defs before uses, no dangling values) always; shapes and dtypes re-inferred under VERIFY
            verify(graph, check_types=config.verify)
        except Exception as e:
            raise PassError(f"pass {p.__name__} failed (after {', '.join(done) or 'no passes'}): {e}") from e
        seconds = time.perf_counter() - t0
        after = estimate(graph) if result.changed else est
        rec = PassRecord(
            p.__name__,
            seconds,
            before,
            len(graph.nodes),
            result.changed,
            result.stats,
            est.kernels,
            after.kernels,
            est.bytes_moved,
            after.bytes_moved,
        )
        est = after
        if reference is not None and example_inputs is not None:
            rec.drift = (
                drift(reference, interpret(graph, example_inputs))
                if result.changed
                else (records[-1].drift if records else 0.0)
            )
        records.append(rec)
        done.append(p.__name__)
        log.log(
            "passes",
            "after %s (%d -> %d nodes):\n%s",
            p.__name__,
            before,
            len(graph.nodes),
            log.Lazy(functools.partial(format_graph, graph)),
        )
    return graph, records


def drift(ref: Sequence[Any], out: Sequence[Any]) -> float:
    """Max over outputs of max|out - ref| / max|ref| (ir.metrics, the one error measure)."""
    return output_error(ref, out)["max_rel"]


__all__ = ["PIPELINE", "drift", "PassOptions", "PassRecord", "PassResult", "run_pipeline"]
