"""From a captured graph to a runnable executor: passes, partitioning, lowering. Shared by both frontends."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from . import log
from .backends import default_backends
from .frontend.export import Captured
from .ir import Op, format_graph
from .passes import PassOptions, run_pipeline
from .passes.partition import partition_graph
from .report import RegionReport
from .runtime import Executor, Step


def compile_captured(cap: Captured, *, device: str = "cpu", native: bool = True,
                     opts: PassOptions | None = None) -> tuple[Callable[..., tuple[Any, ...]], RegionReport]:
    graph = cap.graph
    log.log("graph", "captured (%s):\n%s", cap.frontend, _Lazy(graph))
    t0 = time.perf_counter()
    graph, records = run_pipeline(graph, opts)
    t1 = time.perf_counter()
    backends = default_backends(device, native)
    plan = partition_graph(graph, backends)
    log.log("partitions", "%s", _Lazy(plan))
    by_name = {b.name: b for b in backends}
    steps = [Step(p, by_name[p.target].lower(p, graph), by_name[p.target].kernels(p)) for p in plan.partitions]
    executor = Executor(graph, steps)
    t2 = time.perf_counter()

    rep = RegionReport(cap.frontend, nodes=len(graph.nodes), partitions=len(plan.partitions),
                       capture_s=cap.capture_s, passes_s=t1 - t0, lower_s=t2 - t1,
                       kernels_per_call=executor.kernels_per_call,
                       passes=[asdict(r) for r in records], fallback_reasons=plan.reasons)
    for p in plan.partitions:
        native_p = p.target != "fallback-torch"
        for n in p.nodes:
            if native_p:
                rep.native_nodes += 1
            elif n.op not in (Op.SYM_SIZE, Op.SYM_ARITH):
                rep.fallback_nodes += 1
                key = n.attrs["target"] if n.op is Op.FALLBACK else n.op.value
                rep.fallback_ops[key] = rep.fallback_ops.get(key, 0) + 1
                if n.op is Op.FALLBACK:
                    rep.unregistered_ops[key] = rep.unregistered_ops.get(key, 0) + 1
        rep.partition_table.append({"index": p.index, "target": p.target, "nodes": len(p.nodes),
                                    "deps": sorted(p.deps)})
    return executor.run, rep


class _Lazy:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return format_graph(self.obj) if hasattr(self.obj, "nodes") else self.obj.summary()
