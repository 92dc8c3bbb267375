"""Executor: runs lowered partitions in dependency order through one generated dispatch function.

The plan keeps each step's partition dependencies, so independent partitions can be scheduled concurrently;
v0 runs them in topological order on the calling thread (kernels use their own intra-op threads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import log
from ..ir import Graph, Value
from ..ir.plan import Partition


@dataclass
class Step:
    partition: Partition
    fn: Callable[..., tuple[Any, ...]]
    kernels: int


class Executor:
    """Callable over the graph's flat inputs, returning the tuple of graph outputs."""

    def __init__(self, graph: Graph, steps: Sequence[Step]) -> None:
        self.graph = graph
        self.steps = list(steps)
        self.kernels_per_call = sum(s.kernels for s in self.steps)
        self.run = self._copy_aliased_outputs(self._build())
        log.log("executor", "dispatch function:\n%s", getattr(self.run, "__lepton_source__", "<direct>"))

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        return self.run(*inputs)

    def _copy_aliased_outputs(self, run: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
        """An output that IS a graph input or a weight (e.g. after clone() was simplified away) is copied, so the
        caller never gets an alias of its argument or of the model's parameters, as eager's clone() promised."""
        ins = set(self.graph.inputs)
        aliased = frozenset(i for i, v in enumerate(self.graph.outputs) if v in ins or v.const is not None)
        if not aliased:
            return run

        def copying(*inputs: Any) -> tuple[Any, ...]:
            return tuple(o.clone() if i in aliased else o for i, o in enumerate(run(*inputs)))

        return copying

    def _build(self) -> Callable[..., tuple[Any, ...]]:
        g = self.graph
        if len(self.steps) == 1:
            p = self.steps[0].partition
            if p.inputs == g.inputs and p.outputs == g.outputs:
                return self.steps[0].fn  # one partition taking exactly the graph's signature: no wrapper
        names: dict[Value, str] = {}
        env: dict[str, Any] = {}

        def name(v: Value) -> str:
            if v.const is not None:
                key = f"c_{len(env)}"
                env[key] = g.constants[v.const]
                return key
            if v not in names:
                names[v] = f"v{len(names)}"
            return names[v]

        params = [name(v) for v in g.inputs]
        lines = []
        for i, s in enumerate(self.steps):
            env[f"p{i}"] = s.fn
            outs = [name(v) for v in s.partition.outputs]
            call = f"p{i}({', '.join(name(v) for v in s.partition.inputs)})"
            lines.append(f"    {''.join(o + ', ' for o in outs)}= {call}" if outs else f"    {call}")
        rets = "".join(name(v) + ", " for v in g.outputs)
        src = f"def run({', '.join(params)}):\n" + "\n".join(lines) + f"\n    return ({rets})\n"
        exec(compile(src, "<lepton:executor>", "exec"), env)  # noqa: S102 - generated from our plan
        fn = env["run"]
        fn.__lepton_source__ = src
        return fn
