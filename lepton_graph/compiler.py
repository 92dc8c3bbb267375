"""From a captured graph to a runnable executor: passes, partitioning, lowering. Shared by both frontends."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import torch

from . import log, passes
from .backends import LowerOptions, default_backends
from .calibration import CalibrationRun, calibrate_graph
from .config import config
from .frontend.export import Captured
from .ir import Graph, Op, format_graph, interpret
from .ir.metrics import output_error
from .passes import PassOptions, run_pipeline
from .passes import drift as _drift
from .passes.analysis import cost
from .passes.base import Pass
from .passes.partition import partition_graph
from .passes.quantize import QuantConfig, quantize_layers
from .report import RegionReport
from .runtime import Executor, Step

DRIFT_TOLERANCE = 1e-4  # relative, fp32 (the project's correctness bar)


class CompiledGraph:
    """A graph after the passes, partitioned and lowered; ``run`` takes the graph's flat inputs.

    ``refresh`` follows changed weights: the constants derived from them are computed again and only the nodes
    that read a changed constant are lowered again (their weights re-packed); the rest keeps its kernels."""

    def __init__(self, graph: Graph, backends: list[Any]) -> None:
        self.graph = graph
        self.backends = backends
        self._lower()

    def _lower(self) -> None:
        g = self.graph
        self.plan = partition_graph(g, self.backends)
        log.log("partitions", "%s", log.Lazy(self.plan.summary))
        by_name = {b.name: b for b in self.backends}
        steps = [Step(p, by_name[p.target].lower(p, g), by_name[p.target].kernels(p)) for p in self.plan.partitions]
        self.executor = Executor(g, steps)
        self.run: Callable[..., tuple[Any, ...]] = self.executor.run

    def refresh(self, changed: Mapping[str, torch.Tensor]) -> int:
        """Weights (by constant key) that changed since compilation; returns how many nodes were re-lowered.
        Raises StructureChanged when a pass chose structure from a changed value: the caller recompiles."""
        dirty = self.graph.update_sources(changed)
        stale = [n for n in self.graph.nodes if any(v.const in dirty for v in n.inputs)]
        for b in self.backends:
            forget = getattr(b, "forget", None)
            if forget is not None:
                forget(stale)
        self._lower()
        log.log(
            "guards",
            "weights changed (%s): %d nodes lowered again",
            log.Lazy(lambda: ", ".join(sorted(changed))),
            len(stale),
        )
        return len(stale)


def _fp32_lowering(
    device: str, native: bool, opts: PassOptions, rest: Sequence[Pass]
) -> Callable[[Graph], Callable[..., tuple[Any, ...]]]:
    """How calibration compiles its copy of the graph: ``rest`` (the passes after quantization), then partitioning
    and lowering with backends of its own, so nothing it packs outlives calibration."""

    def lower(graph: Graph) -> Callable[..., tuple[Any, ...]]:
        graph, _ = run_pipeline(graph, opts, passes=rest)
        return CompiledGraph(graph, default_backends(device, native, LowerOptions(precision="fp32"))).run

    return lower


def compile_captured(
    cap: Captured,
    *,
    device: str = "cpu",
    native: bool = True,
    opts: PassOptions | None = None,
    example_inputs: Sequence[Any] | None = None,
    precision: str = "fp32",
    quantize: QuantConfig | None = None,
    act_ranges: Mapping[str, tuple[float, float]] | None = None,
    act_smooth: Mapping[str, tuple[torch.Tensor, tuple[float, float]]] | None = None,
    budget_inputs: Sequence[Sequence[Any]] | None = None,
    calibration: CalibrationRun | None = None,
) -> tuple[CompiledGraph, RegionReport]:
    """Passes, partitioning and lowering. With LEPTON_VERIFY and real example inputs, every pass's numeric
    drift is measured against the captured graph, and the first pass beyond tolerance is named. Quantized, the
    error against the fp32 graph is measured on the example inputs (when given), per layer and for the outputs.
    Given ``calibration`` (int8-static), its examples run through the graph as the quantize pass would receive it,
    compiled for fp32 (calibration.calibrate_graph), and the ranges they fix go to the pass and to ``calibration``."""
    graph = cap.graph
    log.log("graph", "captured (%s):\n%s", cap.frontend, log.Lazy(lambda: format_graph(graph)))
    verify_inputs = example_inputs if config.verify else None
    backends = default_backends(device, native, LowerOptions(precision=precision))
    opts = replace(
        opts or PassOptions(),
        can_fuse=getattr(backends[0], "can_fuse", None),
        prefers_float=getattr(backends[0], "prefers_float", None),
    )
    if quantize is not None:
        opts = replace(
            opts,
            quantize=quantize,
            example_inputs=example_inputs,
            act_ranges=act_ranges,
            act_smooth=act_smooth,
            budget_inputs=budget_inputs,
        )
    with torch.no_grad():
        reference = interpret(graph, verify_inputs) if verify_inputs is not None else None
        # the fp32 answer a quantized model is measured against (the passes change the graph in place)
        fp32 = reference
        if fp32 is None and quantize is not None and example_inputs is not None and calibration is None:
            fp32 = interpret(graph, example_inputs)
        t0 = time.perf_counter()
        before = cost(graph)
        calibrate_s = 0.0
        # int8-static calibrating on the graph: the pipeline stops before quantizing, and goes on once it is done
        pipeline = passes.PIPELINE  # read now: tests and tools may swap the module's list
        cut = pipeline.index(quantize_layers) if calibration is not None and quantize is not None else len(pipeline)
        graph, records = run_pipeline(
            graph, opts, passes=pipeline[:cut], example_inputs=verify_inputs, reference=reference
        )
        if calibration is not None and cut < len(pipeline):
            tc = time.perf_counter()
            lower = _fp32_lowering(device, native, opts, pipeline[cut + 1 :])
            cal = calibrate_graph(graph, opts, calibration.inputs, lower, example_inputs)
            calibrate_s = time.perf_counter() - tc
            calibration.result = cal
            calibration.info = {
                "on": "compiled fp32 graph",
                "examples": len(calibration.inputs),
                "seconds": calibrate_s,
            }
            if fp32 is None and example_inputs is not None:  # the compiled fp32 graph's answer, or the reference's
                fp32 = cal.example_outputs if cal.example_outputs is not None else interpret(graph, example_inputs)
            opts = replace(opts, act_ranges=cal.ranges, act_smooth=cal.smooth, layer_inputs=cal.layer_inputs)
            graph, rest = run_pipeline(
                graph, opts, passes=pipeline[cut:], example_inputs=verify_inputs, reference=reference
            )
            records += rest
        after = cost(graph)
    t1 = time.perf_counter()
    compiled = CompiledGraph(graph, backends)
    plan, executor = compiled.plan, compiled.executor
    t2 = time.perf_counter()

    rep = RegionReport(
        cap.frontend,
        nodes=len(graph.nodes),
        partitions=len(plan.partitions),
        capture_s=cap.capture_s,
        passes_s=t1 - t0 - calibrate_s,
        lower_s=t2 - t1,
        kernels_per_call=executor.kernels_per_call,
        passes=[asdict(r) for r in records],
        fallback_reasons=plan.reasons,
        kernels_before=before.kernels,
        kernels_after=after.kernels,
        bytes_before=before.bytes_moved,
        bytes_after=after.bytes_moved,
    )
    if reference is not None:
        rep.first_drifting_pass = next((r.name for r in records if (r.drift or 0) > DRIFT_TOLERANCE), None)
        with torch.no_grad():
            rep.lowering_drift = _drift(reference, executor.run(*verify_inputs))  # type: ignore[misc]
        if rep.first_drifting_pass is None and rep.lowering_drift > DRIFT_TOLERANCE:
            rep.first_drifting_pass = "lowering"
    if quantize is not None:
        rep.quantization = graph.meta.get("quantization")
        if rep.quantization is not None and fp32 is not None and example_inputs is not None:
            with torch.no_grad():
                rep.quantization["model_error"] = output_error(fp32, executor.run(*example_inputs))
    for p in plan.partitions:
        native_p = p.target != "fallback-torch"
        for n in p.nodes:
            if native_p:
                rep.native_nodes += 1
            elif n.op not in (Op.SYM_SIZE, Op.SYM_ARITH):
                rep.fallback_nodes += 1
                key = n.attrs["target"] if n.op is Op.FALLBACK else n.op.value
                if n.op is Op.FUSED:
                    key = f"fused[{'+'.join(b.op.value for b in n.attrs['body'].nodes)}]"
                rep.fallback_ops[key] = rep.fallback_ops.get(key, 0) + 1
                if n.op is Op.FALLBACK:
                    rep.unregistered_ops[key] = rep.unregistered_ops.get(key, 0) + 1
        rep.partition_table.append(
            {"index": p.index, "target": p.target, "nodes": len(p.nodes), "deps": sorted(p.deps)}
        )
    return compiled, rep
