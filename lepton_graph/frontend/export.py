"""torch.export path: one whole-program graph per input signature; the only torch.export importer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from ..errors import CaptureError
from ..ir import DType, Graph, Value
from ..ir.graph import device_str
from .fx_import import ImportStats, dim_of, import_fx


@dataclass
class Captured:
    graph: Graph
    frontend: str
    capture_s: float
    stats: ImportStats
    # graph.outputs[i] that write back into a buffer the model mutates (e.g. running stats)
    mutations: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    user_outputs: int = 0
    out_spec: Any = None  # pytree spec to rebuild the model's output structure from the flat user outputs


def _dynamic_shapes(module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
    """Mark every dimension of size > 1 of every tensor input as automatic-dynamic (batch, sequence...)."""
    import inspect

    from torch.export import Dim

    def spec(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return {i: Dim.AUTO for i, s in enumerate(x.shape) if s > 1} or None
        if isinstance(x, (list, tuple)):
            return type(x)(spec(y) for y in x)
        if isinstance(x, dict):
            return {k: spec(v) for k, v in x.items()}
        return None

    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    return {name: spec(value) for name, value in bound.arguments.items()}


def capture_export(module: torch.nn.Module, args: tuple, kwargs: dict, flat_inputs: Sequence[Any],
                   dynamic: bool = False) -> Captured:
    """Export ``module`` and import it; graph inputs follow the order of ``flat_inputs`` (matched by identity)."""
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            ep = torch.export.export(module, args, kwargs, strict=False,
                                     dynamic_shapes=_dynamic_shapes(module, args, kwargs) if dynamic else None)
    except Exception as e:
        raise CaptureError(f"torch.export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    if _has_mutation(ep):
        ep = ep.run_decompositions({})  # functionalise: in-place ops become copies plus write-backs
    try:
        graph, captured = _import_program(ep, flat_inputs)
    except CaptureError:
        raise
    except Exception as e:  # an exported construct our importer cannot represent: let another frontend try
        raise CaptureError(f"importing the exported graph failed: {type(e).__name__}: {e}") from e
    captured.out_spec = ep.call_spec.out_spec
    captured.capture_s = time.perf_counter() - t0
    return captured


def _has_mutation(ep: ExportedProgram) -> bool:
    for n in ep.graph.nodes:
        if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable:
            return True
    return False


def _import_program(ep: ExportedProgram, flat_inputs: Sequence[Any]) -> tuple[Graph, Captured]:
    graph = Graph()
    sig = ep.graph_signature
    placeholders: dict[str, Any] = {}
    user_nodes = []
    for spec, node in zip(sig.input_specs, [n for n in ep.graph.nodes if n.op == "placeholder"]):
        if spec.kind == InputKind.USER_INPUT:
            user_nodes.append(node)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            tensor = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants[spec.target]
            node.meta["lepton_const_name"] = spec.target
            placeholders[node.name] = tensor
        else:
            raise CaptureError(f"unsupported exported input kind {spec.kind.name} ({node.name})")
    # graph inputs in the caller's flat order; export's own order may differ (kwargs are reordered)
    tensor_inputs = [x for x in flat_inputs if isinstance(x, torch.Tensor)]
    ep_vals = [n.meta.get("val") for n in user_nodes]
    by_pos = _match_user_inputs(user_nodes, ep, tensor_inputs)
    for i, x in enumerate(tensor_inputs):
        node = by_pos.get(i)
        val = node.meta["val"] if node is not None else x
        v = graph.add_input([dim_of(d) for d in val.shape], DType.from_torch(x.dtype), device_str(x.device),
                            name=node.name if node is not None else f"unused{i}")
        if node is not None:
            placeholders[node.name] = v
    for n, val in zip(user_nodes, ep_vals):
        if n.name not in placeholders:  # a non-tensor user input export kept as a placeholder
            placeholders[n.name] = val
    outs, stats = import_fx(ep.graph_module, placeholders, graph)
    mutations: list[tuple[int, torch.Tensor]] = []
    user: list[Value] = []
    for spec, v in zip(sig.output_specs, outs):
        if spec.kind == OutputKind.USER_OUTPUT:
            if not isinstance(v, Value):
                raise CaptureError(f"model output {spec.arg} is not a tensor ({type(v).__name__})")
            user.append(v)
        elif spec.kind == OutputKind.BUFFER_MUTATION:
            mutations.append((len(mutations), ep.state_dict[spec.target]))
            user.append(v)
        else:
            raise CaptureError(f"unsupported exported output kind {spec.kind.name}")
    n_user = sum(1 for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT)
    # user outputs first, then buffer write-backs (mutation index is relative to the write-back block)
    order = [v for s, v in zip(sig.output_specs, user) if s.kind == OutputKind.USER_OUTPUT]
    order += [v for s, v in zip(sig.output_specs, user) if s.kind != OutputKind.USER_OUTPUT]
    graph.outputs = order
    graph.meta["frontend"] = "export"
    return graph, Captured(graph, "export", 0.0, stats, mutations, n_user)


def _match_user_inputs(user_nodes: list, ep: ExportedProgram, tensor_inputs: list[torch.Tensor]) -> dict[int, Any]:
    """Map caller flat positions -> export placeholder, using export's in_spec to rebuild its flat order."""
    import torch.utils._pytree as pytree

    ids = {id(t): i for i, t in enumerate(tensor_inputs)}
    example = ep.example_inputs  # export keeps the caller's objects, in its own (reordered) structure
    if example is None:
        raise CaptureError("exported program has no example inputs")
    out: dict[int, Any] = {}
    for node, leaf in zip(user_nodes, pytree.tree_leaves(example)):
        if not isinstance(leaf, torch.Tensor):
            continue
        pos = ids.get(id(leaf))
        if pos is None:
            raise CaptureError("cannot match exported inputs to call arguments")
        out[pos] = node
    return out
