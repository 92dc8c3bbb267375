"""torch.export path: one whole-program graph per input signature; the only torch.export importer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from ..errors import CaptureError
from ..ir import DType, Graph, Value
from ..ir.graph import device_str
from .fx_import import ImportStats, dim_of, import_fx
from .quiet import quiet_torch


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
    # constant key -> qualified name of the module parameter/buffer it is (what a weight watch follows)
    weights: dict[str, str] = field(default_factory=dict)


def _dynamic_shapes(module: torch.nn.Module, args: tuple, kwargs: dict, min_size: int) -> Any:
    """Mark every dimension of size >= ``min_size`` of every tensor input as automatic-dynamic (batch, sequence)."""
    import inspect

    from torch.export import Dim

    def spec(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return {i: Dim.AUTO for i, s in enumerate(x.shape) if s >= min_size} or None
        if isinstance(x, (list, tuple)):
            return type(x)(spec(y) for y in x)
        if isinstance(x, dict):
            return {k: spec(v) for k, v in x.items()}
        return None

    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    return {name: spec(value) for name, value in bound.arguments.items()}


def _export(module: torch.nn.Module, args: tuple, kwargs: dict, dynamic: bool) -> ExportedProgram:
    """torch.export; with ``dynamic``, size-1 dims are first traced size-obliviously (a first call with batch 1
    must not pin the batch to 1), then, if the model needs a size-1 dim to be 1, with those dims static."""
    import torch.fx.experimental._config as fx_config

    with torch.no_grad():
        if not dynamic:
            return torch.export.export(module, args, kwargs, strict=False)
        has_ones = any(isinstance(x, torch.Tensor) and 1 in x.shape for x in pytree.tree_leaves((args, kwargs)))
        if has_ones:
            try:
                with fx_config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]  # set by install_config_module
                    return torch.export.export(
                        module, args, kwargs, strict=False, dynamic_shapes=_dynamic_shapes(module, args, kwargs, 1)
                    )
            except Exception:  # noqa: BLE001 - a size-1 dim the model relies on: trace it static below
                pass
        return torch.export.export(
            module, args, kwargs, strict=False, dynamic_shapes=_dynamic_shapes(module, args, kwargs, 2)
        )


def _registers_cache_support(err: Exception, module: torch.nn.Module) -> bool:
    """When torch.export failed on a transformers cache object in the model's inputs or outputs (GPT-2 and Llama
    return a DynamicCache with use_cache, BART an EncoderDecoderCache), register transformers' own pytree support for
    its cache classes, made for torch.export (``integrations.executorch.register_dynamic_cache_export_support`` for
    DynamicCache, ``exporters.exporter_dynamo.register_cache_pytrees_for_model`` for the rest), and say whether a
    retry can help. Process-wide, as transformers intends it; done only where a model needs it."""
    import sys

    if "Cache" not in str(err) or "transformers" not in sys.modules:
        return False
    before = set(pytree.SUPPORTED_NODES)
    try:
        from transformers.integrations.executorch import register_dynamic_cache_export_support

        register_dynamic_cache_export_support()
    except ImportError:
        pass
    try:
        from transformers.exporters.exporter_dynamo import register_cache_pytrees_for_model

        register_cache_pytrees_for_model(module)  # type: ignore[arg-type]  # any module: it reads its classes
    except ImportError:
        pass
    return set(pytree.SUPPORTED_NODES) != before


def capture_export(
    module: torch.nn.Module, args: tuple, kwargs: dict, flat_inputs: Sequence[Any], dynamic: bool = False
) -> Captured:
    """Export ``module`` and import it; graph inputs follow the order of ``flat_inputs`` (matched by identity)."""
    t0 = time.perf_counter()
    try:
        with quiet_torch():
            try:
                ep = _export(module, args, kwargs, dynamic)
            except Exception as e:
                if not _registers_cache_support(e, module):
                    raise
                ep = _export(module, args, kwargs, dynamic)
    except Exception as e:
        raise CaptureError(f"torch.export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    if random := _random_ops(ep):
        raise CaptureError(
            f"random ops ({', '.join(random)}): torch.export drops the Python-side RNG calls around "
            "them (torch.manual_seed, set_rng_state); Dynamo keeps them in order"
        )
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


def _random_ops(ep: ExportedProgram) -> list[str]:
    """The seeded random operators in the program that draw (their stream depends on RNG calls export does not
    record). Dropout in eval mode and attention without dropout carry the tag but draw nothing."""
    out = set()
    for n in ep.graph.nodes:
        t = n.target
        if n.op != "call_function" or not isinstance(t, torch._ops.OpOverload):
            continue
        if torch.Tag.nondeterministic_seeded not in t.tags:
            continue
        args = {a.name: a.default_value if a.has_default_value() else None for a in t._schema.arguments}
        args.update(zip((a.name for a in t._schema.arguments), n.args))
        args.update(n.kwargs)
        if args.get("train", True) is False or args.get("p", 1) == 0 or args.get("dropout_p", 1) == 0:
            continue
        out.add(t.name())
    return sorted(out)


def _has_mutation(ep: ExportedProgram) -> bool:
    """In-place ops the importer needs functionalised first. ``detach_`` changes no value (autograd metadata only;
    transformers' cache code calls it): functionalising for it alone would run torch's decompositions, whose
    verifier rejects the cache code's lifted constants."""
    for n in ep.graph.nodes:
        if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable:
            if n.target is not torch.ops.aten.detach_.default:
                return True
    return False


def _import_program(ep: ExportedProgram, flat_inputs: Sequence[Any]) -> tuple[Graph, Captured]:
    graph = Graph()
    sig = ep.graph_signature
    placeholders: dict[str, Any] = {}
    fqn: dict[int, str] = {}
    user_nodes = []
    for spec, node in zip(sig.input_specs, [n for n in ep.graph.nodes if n.op == "placeholder"]):
        if spec.kind == InputKind.USER_INPUT:
            user_nodes.append(node)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            tensor = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants[spec.target]
            node.meta["lepton_const_name"] = spec.target
            placeholders[node.name] = tensor
            if spec.kind != InputKind.CONSTANT_TENSOR:
                fqn[id(tensor)] = spec.target
        else:
            raise CaptureError(f"unsupported exported input kind {spec.kind.name} ({node.name})")
    # graph inputs in the caller's flat order; export's own order may differ (kwargs are reordered)
    tensor_inputs = [x for x in flat_inputs if isinstance(x, torch.Tensor)]
    ep_vals = [n.meta.get("val") for n in user_nodes]
    by_pos = _match_user_inputs(user_nodes, ep, tensor_inputs)
    for i, x in enumerate(tensor_inputs):
        node = by_pos.get(i)
        val = node.meta["val"] if node is not None else x
        v = graph.add_input(
            [dim_of(d) for d in val.shape],
            DType.from_torch(x.dtype),
            device_str(x.device),
            name=node.name if node is not None else f"unused{i}",
        )
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
    weights = {k: fqn[id(t)] for k, t in graph.sources.items() if id(t) in fqn}
    return graph, Captured(graph, "export", 0.0, stats, mutations, n_user, weights=weights)


def _match_user_inputs(user_nodes: list, ep: ExportedProgram, tensor_inputs: list[torch.Tensor]) -> dict[int, Any]:
    """Map caller flat positions -> export placeholder, using export's in_spec to rebuild its flat order."""
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
