"""Dynamo path: a torch.compile backend. Dynamo handles Python control flow, graph breaks and guards;
AOTAutograd hands us each captured region as an ATen graph, which we import and compile like any other."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.fx as fx

from ..ir import DType, Graph, Value
from ..ir.graph import device_str
from .export import Captured
from .fx_import import dim_of, import_fx
from .quiet import quiet_torch


class Lowered(Protocol):
    """What a compile function returns: ``run`` over the flat graph inputs, the graph it ran (its constants'
    lineage), and ``refresh`` for weights that changed (by constant key)."""

    graph: Graph
    run: Callable[..., Any]

    def refresh(self, changed: Mapping[str, torch.Tensor]) -> int: ...


CompileFn = Callable[[Captured], Lowered]


def import_aot_graph(
    gm: fx.GraphModule, example_inputs: list[Any], weights: dict[int, torch.Tensor] | None = None
) -> Captured:
    """Import an AOTAutograd forward graph. Placeholders listed in ``weights`` (index -> the real tensor) become
    constants held by reference; every other placeholder is a graph input."""
    t0 = time.perf_counter()
    graph = Graph()
    placeholders: dict[str, Any] = {}
    weights = weights or {}
    for i, (node, ex) in enumerate(zip([n for n in gm.graph.nodes if n.op == "placeholder"], example_inputs)):
        if i in weights:
            node.meta["lepton_const_name"] = f"w{i}"
            placeholders[node.name] = weights[i]
            continue
        val = node.meta.get("val", ex)
        if isinstance(val, torch.Tensor):
            placeholders[node.name] = graph.add_input(
                [dim_of(d) for d in val.shape], DType.from_torch(val.dtype), device_str(val.device), name=node.name
            )
        else:  # a symbolic size passed in by Dynamo: named by its symbol, so tensor dims "s0" refer to it
            placeholders[node.name] = graph.add_input((), DType.i64, "cpu", kind="sym", name=str(val))
    outs, stats = import_fx(gm, placeholders, graph)
    graph.outputs = [v for v in outs if isinstance(v, Value)]
    if len(graph.outputs) != len(outs):
        raise NotImplementedError("AOT graph returns non-tensor outputs")
    graph.meta["frontend"] = "dynamo"
    return Captured(graph, "dynamo", time.perf_counter() - t0, stats, [], len(outs))


_WEIGHT_SOURCES = ("._parameters[", "._buffers[")


def weight_inputs(gm: fx.GraphModule, example_inputs: list[Any]) -> dict[int, torch.Tensor]:
    """Placeholders Dynamo lifted from module parameters/buffers (index -> the real tensor).

    They are compiled as constants (by reference), so weight passes (folding, merging, packing) apply on the
    Dynamo path as on the export path. Inference only: the graph is not differentiable in them.
    """
    out: dict[int, torch.Tensor] = {}
    for i, (node, ex) in enumerate(zip([n for n in gm.graph.nodes if n.op == "placeholder"], example_inputs)):
        grapharg = node.meta.get("grapharg")
        source = grapharg.source.name if grapharg is not None and grapharg.source is not None else ""
        if isinstance(ex, torch.Tensor) and any(s in source for s in _WEIGHT_SOURCES):
            out[i] = ex.detach()
    return out


class Watch(Protocol):
    """What follows a region's weights (runtime.weights.WeightWatch): made from the keys and the tensors of the
    first call; ``changed`` returns the keys whose tensor changed since (with the tensors now), or None."""

    def changed(self, current: Sequence[torch.Tensor]) -> Mapping[str, torch.Tensor] | None: ...


def make_backend(
    compile_fn: CompileFn, *, watch: Callable[[list[str], list[torch.Tensor]], Watch] | None = None
) -> Callable[[fx.GraphModule, list[Any]], Callable[..., Any]]:
    """A torch.compile backend that lowers every Dynamo region through ``compile_fn``. Parameters and buffers
    are compiled as constants; given ``watch`` (the caller's weight watch; None when frozen), each call compares
    them with what they were and a change re-derives and re-packs what came from them (``Lowered.refresh``)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from ..ir import StructureChanged

    def unsupported_backward(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        return make_boxed_func(gm.forward)  # training is not our target: backward runs as plain torch

    def backend(gm: fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        weights = weight_inputs(gm, example_inputs)
        n_inputs = len(example_inputs)

        def fw_compiler(aot_gm: fx.GraphModule, aot_inputs: list[Any]) -> Callable[..., Any]:
            from torch._subclasses.fake_tensor import unset_fake_temporarily

            # AOT's inputs line up with Dynamo's when it added none of its own; otherwise freeze nothing
            frozen = weights if len(aot_inputs) == n_inputs else {}
            keep = [i for i in range(len(aot_inputs)) if i not in frozen]
            with unset_fake_temporarily():  # compile-time folding must make real tensors, not fake ones
                compiled = compile_fn(import_aot_graph(aot_gm, aot_inputs, frozen))
            by_id = {id(t): i for i, t in frozen.items()}
            keyed = {k: by_id[id(t)] for k, t in compiled.graph.sources.items() if id(t) in by_id}
            slots = list(keyed.values())
            watching: list[Watch] = []  # made on the first call, from the tensors Dynamo passes

            def follow(args: list[Any]) -> None:
                current = [args[i] for i in slots]
                if not watching:
                    watching.append(watch(list(keyed), current))  # type: ignore[misc]
                    return
                changed = watching[0].changed(current)
                if changed is None:
                    return
                nonlocal compiled
                fresh = {k: t.detach() for k, t in changed.items()}
                try:
                    compiled.refresh(fresh)
                except StructureChanged:
                    now = {i: args[i].detach() for i in frozen}
                    compiled = compile_fn(import_aot_graph(aot_gm, aot_inputs, now))

            def call(args: list[Any]) -> Any:
                if frozen and watch is not None:
                    follow(args)
                out = compiled.run(*[args[i] for i in keep]) if frozen else compiled.run(*args)
                args.clear()  # boxed convention: release inputs early
                return out

            call._boxed_call = True  # type: ignore[attr-defined]
            return call

        return aot_autograd(fw_compiler=fw_compiler, bw_compiler=unsupported_backward)(gm, example_inputs)

    return backend


def compile_with_dynamo(
    module: torch.nn.Module,
    compile_fn: CompileFn,
    *,
    dynamic: bool,
    recompile_limit: int,
    watch: Callable[[list[str], list[torch.Tensor]], Watch] | None = None,
) -> Callable[..., Any]:
    """torch.compile with our backend; Dynamo's own recompile limit is raised to at least ours, so its cliff
    (the whole frame back to eager) never comes before our variant cache's own bound."""
    import torch._dynamo as dynamo

    dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, recompile_limit)
    return torch.compile(module, backend=make_backend(compile_fn, watch=watch), dynamic=dynamic)


def first_call(
    dyn: Callable[..., Any], args: tuple, kwargs: dict, *, dynamic: bool, on_retry: Callable[[], None]
) -> Any:
    """The call that makes Dynamo compile. With ``dynamic``, size-1 dims are traced size-obliviously first, so
    a first call with batch 1 does not pin the batch (Dynamo specialises sizes 0 and 1 otherwise); a model that
    needs them static is traced again as usual. Torch's internal tracebacks stay off stderr."""
    with quiet_torch():
        if dynamic:
            import torch.fx.experimental._config as fx_config

            try:
                with fx_config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]  # set by install_config_module
                    return dyn(*args, **kwargs)
            except Exception:  # noqa: BLE001 - traced again below, where a real error shows itself
                on_retry()
        return dyn(*args, **kwargs)


def register_backend(name: str, fn: Callable[..., Any]) -> None:
    """Make ``torch.compile(backend=name)`` find ``fn`` (the package entry point does this without an import)."""
    from torch._dynamo import list_backends
    from torch._dynamo import register_backend as register

    if name not in list_backends(exclude_tags=()):
        register(name=name)(fn)
