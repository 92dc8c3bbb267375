"""Dynamo path: a torch.compile backend. Dynamo handles Python control flow, graph breaks and guards;
AOTAutograd hands us each captured region as an ATen graph, which we import and compile like any other."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx

from ..ir import DType, Graph, Value
from ..ir.graph import device_str
from .export import Captured
from .fx_import import dim_of, import_fx

# compile_fn(captured) -> a callable taking the flat graph inputs and returning the flat outputs
CompileFn = Callable[[Captured], Callable[..., Any]]


def import_aot_graph(gm: fx.GraphModule, example_inputs: list[Any]) -> Captured:
    """Import an AOTAutograd forward graph: every placeholder (parameters included) is a graph input."""
    t0 = time.perf_counter()
    graph = Graph()
    placeholders: dict[str, Any] = {}
    for node, ex in zip([n for n in gm.graph.nodes if n.op == "placeholder"], example_inputs):
        val = node.meta.get("val", ex)
        if isinstance(val, torch.Tensor):
            placeholders[node.name] = graph.add_input([dim_of(d) for d in val.shape], DType.from_torch(val.dtype),
                                                      device_str(val.device), name=node.name)
        else:  # a symbolic size passed in by Dynamo
            placeholders[node.name] = graph.add_input((), DType.i64, "cpu", kind="sym", name=node.name)
    outs, stats = import_fx(gm, placeholders, graph)
    graph.outputs = [v for v in outs if isinstance(v, Value)]
    if len(graph.outputs) != len(outs):
        raise NotImplementedError("AOT graph returns non-tensor outputs")
    graph.meta["frontend"] = "dynamo"
    return Captured(graph, "dynamo", time.perf_counter() - t0, stats, [], len(outs))


def make_backend(compile_fn: CompileFn) -> Callable[[fx.GraphModule, list[Any]], Callable[..., Any]]:
    """A torch.compile backend that lowers every Dynamo region through ``compile_fn``."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def fw_compiler(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        run = compile_fn(import_aot_graph(gm, example_inputs))

        def call(args: list[Any]) -> Any:
            out = run(*args)
            args.clear()  # boxed convention: release inputs early
            return out

        call._boxed_call = True  # type: ignore[attr-defined]
        return call

    def unsupported_backward(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        return make_boxed_func(gm.forward)  # training is not our target: backward runs as plain torch

    return aot_autograd(fw_compiler=fw_compiler, bw_compiler=unsupported_backward)
