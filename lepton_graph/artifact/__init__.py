"""Ahead-of-time export: one compiled variant in one file that loads and runs without the model's code.

``lepton_graph.export(model, example_inputs, path, **compile_options)`` (or ``compiled.export(path)``) writes the
graph after every pass (fusion groups, quantized and folded weights as compiled) as JSON (graph_json.py), every
constant in a safetensors section (GEMM weights as the packed f32 panels the kernels read: panels.py), and the
call's input/output structure as pytree JSON, in the container of container.py (magic, versioned header, sha256 per
section or per 16 MiB chunk). ``lepton_graph.load(path)`` reads it back with no pickle and no code from the file: ops
are registry names, FALLBACK targets only ``torch.ops.aten`` overloads (or the few Python operators the registry
allows), the tensors safetensors; then partitions and lowers the graph for this machine (stored panels are read in
place: their layout is the same on every ISA; other weights are packed at load) and guards every call like a
compiled model does.

``dynamic=True`` variants keep their symbolic sizes (the loaded model takes any size where the compiled one did).
Not yet: models Dynamo captured (graph breaks) are refused with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from ..backends.fallback import TorchFallback
from ..errors import ArtifactError, InputError, UnsupportedError
from ..ir import Graph, Op
from ..ir.verify import VerifyError, verify
from . import panels
from .container import FORMAT, json_object, open_artifact, write_artifact
from .graph_json import decode_graph, encode_graph
from .tensors import save_tensors, view_tensors

SECTION_GRAPH = "graph"
SECTION_TENSORS = "tensors"
SECTION_PANELS = "panels"  # GEMM weights packed (panels.py); absent when none is stored
SECTION_CALL = "call"  # how a call maps onto the graph: input/output pytree specs, input leaves, precision
# Python callables a FALLBACK node may name besides torch.ops.aten (ir/defs/fallback.py allows the same)
_PY_TARGETS = ("operator.", "math.", "torch.sym_", "torch._sym_")


@dataclass
class ExportPiece:
    """What a compiled variant keeps for export: its compiled graph and how the call maps onto it."""

    compiled: Any  # compiler.CompiledGraph
    in_spec: Any  # pytree spec of (args, kwargs-by-name)
    leaves: list[dict[str, Any]]  # per flat input leaf: a tensor's shape/dtype, or a Python constant
    tensor_idx: list[int]
    out_spec: Any
    n_user: int
    mutations: int
    precision: str
    dims: Any = None  # dynamic=True: per input leaf, each dim's fixed size or None (any size)


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


def input_leaves(leaves: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for x in leaves:
        if isinstance(x, torch.Tensor):
            out.append(
                {"kind": "tensor", "shape": list(x.shape), "dtype": _dtype_name(x.dtype), "device": x.device.type}
            )
        elif x is None or isinstance(x, (bool, int, float, str)):
            out.append({"kind": "py", "value": x})
        else:
            raise ArtifactError(f"an input of type {type(x).__name__} cannot be stored in an artifact")
    return out


def write(piece: ExportPiece, path: str | Path) -> int:
    """Write ``piece`` to ``path``; returns the file size in bytes."""
    graph: Graph = piece.compiled.graph
    if piece.mutations:
        raise UnsupportedError(
            "export: the model writes to its buffers during the call (training-mode BatchNorm?); export an eval() model"
        )
    try:
        in_spec, out_spec = pytree.treespec_dumps(piece.in_spec), pytree.treespec_dumps(piece.out_spec)
        plain_out = pytree.treespec_dumps(plain_spec(piece.out_spec))
    except Exception as e:  # noqa: BLE001 - pytree raises several types for unregistered classes
        raise UnsupportedError(
            f"export: the model's inputs or outputs use a container the loader could not rebuild without the "
            f"model's code ({type(e).__name__}: {e}); return tensors in tuples, lists or dicts"
        ) from None
    from .. import __version__
    from ..backends.cpu import native
    from ..config import config

    consts = {k: t for k, t in graph.constants.items() if k in graph.const_values}
    stored: dict[str, tuple[bool, int, int, torch.Tensor]] = {}
    if config.artifact_panels and piece.precision == "fp32" and native.available():
        from ..backends.cpu.gemm import pack_weight

        for key, transposed in panels.candidates(graph, piece.compiled.plan).items():
            w = consts.pop(key)
            k, n = (w.shape[1], w.shape[0]) if transposed else (w.shape[0], w.shape[1])
            stored[key] = (transposed, k, n, panels.panel_bytes(pack_weight(w, transposed, huge_pages=False)))
    tensors = save_tensors(consts)

    header = {
        "lepton_graph": __version__,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "platform": platform.machine(),
            "kernel_variants": native.kernel_variants() if native.available() else {},
        },
    }
    leaves = [dict(leaf) for leaf in piece.leaves]
    for leaf, pattern in zip(leaves, piece.dims or (), strict=False):
        if leaf["kind"] == "tensor" and pattern is not None:
            leaf["dims"] = list(pattern)
    call: dict[str, Any] = {
        "precision": piece.precision,
        "inputs": {"spec": in_spec, "leaves": leaves, "tensor_idx": piece.tensor_idx},
        "outputs": {"spec": out_spec, "plain_spec": plain_out, "n_user": piece.n_user},
    }
    sections = {SECTION_TENSORS: tensors}
    if stored:
        sections[SECTION_PANELS], call["panels"] = panels.save(stored)
    graph_json = json.dumps(encode_graph(graph), separators=(",", ":")).encode()
    sections = {SECTION_CALL: json.dumps(call).encode(), SECTION_GRAPH: graph_json, **sections}
    return write_artifact(path, header, sections)


def _kernel_changes(header: dict[str, Any]) -> str:
    """The weights are packed at load for this CPU: every kernel family has portable and AVX2 paths, so a file
    from a machine with more ISA runs here on what this one has; this says which families changed variant."""
    from ..backends.cpu import native

    then = header.get("machine", {}).get("kernel_variants") if isinstance(header.get("machine"), dict) else None
    if not isinstance(then, dict) or not native.available():
        return "as exported"
    now = native.kernel_variants()
    changed = [f"{k} {then[k]} -> {v}" for k, v in sorted(now.items()) if k in then and then[k] != v]
    return "; ".join(changed) if changed else "as exported"


_PLAIN = (tuple, list, dict)


def plain_spec(spec: Any) -> Any:
    """``spec`` with every container a library registered (transformers' ModelOutput, ...) replaced by a dict with
    the same keys (a tuple when its context is not a list of key names): what the loader returns when the library
    is not imported in its process."""
    if spec.is_leaf():
        return spec
    children = [plain_spec(c) for c in spec.children()]
    if spec.type in _PLAIN:
        return pytree.TreeSpec(spec.type, spec.context, children)
    ctx = spec.context
    if isinstance(ctx, (list, tuple)) and len(ctx) == len(children) and all(isinstance(k, str) for k in ctx):
        return pytree.TreeSpec(dict, list(ctx), children)
    return pytree.TreeSpec(tuple, None, children)


def _check_leaves(leaves: Any) -> list[dict[str, Any]]:
    """The stored input leaves, every entry checked (a tensor's shape/dtype/device, or a plain Python value)."""
    ok = isinstance(leaves, list)
    for leaf in leaves if ok else []:
        if not isinstance(leaf, dict) or leaf.get("kind") not in ("tensor", "py"):
            ok = False
        elif leaf["kind"] == "py":
            ok = ok and set(leaf) == {"kind", "value"} and (leaf["value"] is None or isinstance(leaf["value"], _PY))
        else:
            shape, dtype, device = leaf.get("shape"), leaf.get("dtype"), leaf.get("device")
            dims = leaf.get("dims", shape)
            ok = ok and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            ok = ok and isinstance(dims, list) and isinstance(shape, list) and len(dims) == len(shape)
            ok = ok and all(d is None or (isinstance(d, int) and d >= 0) for d in dims)  # type: ignore[union-attr]
            ok = ok and isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype)
            ok = ok and device in ("cpu", "cuda")
    if not ok:
        raise ValueError("the input leaves are malformed")
    return leaves


_PY = (bool, int, float, str)


def _check_fallback_targets(graph: Graph) -> None:
    from ..ir.defs.fallback import resolve_target

    for n in graph.nodes:
        if n.op is Op.FUSED:
            _check_fallback_targets(n.attrs["body"])
        if n.op is not Op.FALLBACK:
            continue
        t = n.attrs.get("target")
        ok = isinstance(t, str) and (
            (t.startswith("aten::") and all(p.isidentifier() for p in t[6:].split(".") if p) and t.count(".") <= 1)
            or (t.startswith("py:") and t[3:].startswith(_PY_TARGETS) and t[3:].replace(".", "_").isidentifier())
        )
        if not ok:
            raise ArtifactError(f"node {n.name}: fallback target {t!r} is outside the allow-list (torch.ops.aten)")
        try:
            resolve_target(t)
        except ValueError as e:
            raise ArtifactError(f"node {n.name}: {e}") from None


@dataclass
class LoadReport:
    path: str
    header: dict[str, Any]
    nodes: int
    partitions: int
    fallback_nodes: int
    load_s: float
    precision: str = "fp32"
    outputs_note: str = ""
    plan: str = field(repr=False, default="")
    kernels: str = "as exported"  # which kernel families run another ISA variant here than on the exporting CPU
    weights: str = "packed at load"  # or stored panels read in place (panels.py), or why they were unpacked

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.header.get("format"),
            "lepton_graph": self.header.get("lepton_graph"),
            "precision": self.precision,
            "nodes": self.nodes,
            "partitions": self.partitions,
            "fallback_nodes": self.fallback_nodes,
            "load_s": self.load_s,
            "outputs": self.outputs_note or "as exported",
            "kernels": self.kernels,
            "weights": self.weights,
        }

    def __str__(self) -> str:
        d = self.as_dict()
        return "lepton_graph artifact\n" + "\n".join(f"{k:16}{v}" for k, v in d.items()) + "\n" + self.plan


class _Version:
    """One loaded artifact, as a LoadedModel serves it: read-only after loading, so a call that took it runs on it
    to the end whatever ``swap`` does meanwhile."""

    def __init__(self, path: str | Path) -> None:
        t0 = time.perf_counter()
        art = open_artifact(path)
        for name in (SECTION_CALL, SECTION_GRAPH, SECTION_TENSORS):
            if name not in art.sections:
                raise ArtifactError(f"artifact {str(path)!r} has no {name!r} section")
        art.check(SECTION_CALL)
        art.check(SECTION_GRAPH)
        # the weights' checksums (most of the load's bytes) run on every core beside decoding and lowering (hashlib
        # releases the GIL; large sections have a digest per chunk); the model is returned only once all passed
        pool = ThreadPoolExecutor(os.cpu_count() or 1)
        big = [name for name in (SECTION_TENSORS, SECTION_PANELS) if name in art.sections]
        checks = [f for name in big for f in art.check_in(pool, name)]
        try:
            self._build(art, t0)
        except Exception:
            for f in checks:
                f.result()  # a corrupt file says so first, whatever the corruption made fail
            raise
        finally:
            pool.shutdown(wait=True)
        for f in checks:
            f.result()
        self.report.load_s = time.perf_counter() - t0
        # names the file's content (its sections' digests): the same in every process that loaded it
        self.digest = hashlib.sha256(json.dumps(art.header["sections"], sort_keys=True).encode()).hexdigest()[:16]

    def _build(self, art: Any, t0: float) -> None:
        path, header, sections = art.path, art.header, art.sections
        where = f"artifact {str(path)!r}"
        tensors = view_tensors(sections[SECTION_TENSORS], where)
        call = json_object(sections[SECTION_CALL], f"{where}: the call section")
        stored = panels.read_table(call, _panels_tensor(sections, where), tensors, where)
        consts = dict(tensors)
        for key, (transposed, k, n, _) in stored.items():  # declared shape only: the panels stand for the weight
            consts[key] = torch.empty((n, k) if transposed else (k, n), device="meta")
        graph = decode_graph(json_object(sections[SECTION_GRAPH], f"{where}: the graph section"), consts)
        _check_fallback_targets(graph)  # before verify, whose shape inference resolves them
        try:
            # structure only: shape inference on meta tensors would import torch._dynamo (~1.6 s, most of a
            # BERT load); constants were checked against their declared shapes, inputs are checked per call, and
            # the native kernels check their operands' sizes on every call
            verify(graph, check_types=False)
        except VerifyError as e:
            raise ArtifactError(f"artifact {str(path)!r}: the graph is inconsistent: {e}") from None
        try:
            ins, outs = call["inputs"], call["outputs"]
            self.in_spec = pytree.treespec_loads(ins["spec"])
            self.outputs_note = ""
            try:
                self.out_spec = pytree.treespec_loads(outs["spec"])
            except Exception as e:  # noqa: BLE001 - a library's container type this process has not imported
                self.out_spec = pytree.treespec_loads(outs["plain_spec"])
                self.outputs_note = f"outputs as plain dicts/tuples ({str(e).splitlines()[0][:160]})"
            self.leaves: list[dict[str, Any]] = _check_leaves(ins["leaves"])
            self.tensor_idx = [int(i) for i in ins["tensor_idx"]]
            self.n_user = int(outs["n_user"])
            precision = call.get("precision", "fp32")
        except Exception as e:  # noqa: BLE001 - any malformed entry is the same error for the user
            raise ArtifactError(f"artifact {str(path)!r}: malformed input/output description ({e})") from None
        n_leaves = len(self.leaves)
        if (
            len(self.tensor_idx) != len(graph.inputs)
            or not 0 <= self.n_user <= len(graph.outputs)
            or self.in_spec.num_leaves != n_leaves
            or self.out_spec.num_leaves != self.n_user
            or any(not 0 <= i < n_leaves or self.leaves[i]["kind"] != "tensor" for i in self.tensor_idx)
        ):
            raise ArtifactError(f"artifact {str(path)!r}: the call description does not match the graph")
        if precision not in ("fp32", "bf16"):
            raise ArtifactError(f"artifact {str(path)!r}: unknown precision {precision!r}")
        self.compiled, weights = _lower_loaded(graph, stored, precision)
        plan = self.compiled.plan
        self.report = LoadReport(
            str(path),
            header,
            len(graph.nodes),
            len(plan.partitions),
            sum(len(p.nodes) for p in plan.partitions if p.target == TorchFallback.name),
            time.perf_counter() - t0,
            precision,
            self.outputs_note,
            plan.summary(),
            _kernel_changes(header),
            weights,
        )

    def check(self, args: tuple, kwargs: dict) -> list[Any]:
        """The call's graph inputs, after the same guards a compiled model applies (InputError naming the
        argument)."""
        from ..runtime.guards import flatten_call

        leaves, sig = flatten_call(args, kwargs)
        if sig.structure != self.in_spec:
            raise InputError(
                f"the arguments' structure differs from the exported call's: expected {self.in_spec}, got "
                f"{sig.structure}"
            )
        for name, want, got in zip(sig.names, self.leaves, leaves, strict=True):
            if want["kind"] == "py":
                if isinstance(got, torch.Tensor) or got != want["value"]:
                    raise InputError(f"argument {name}: the artifact was exported with {want['value']!r}, got {got!r}")
                continue
            if not isinstance(got, torch.Tensor):
                raise InputError(f"argument {name}: expected a tensor, got {type(got).__name__}")
            if _dtype_name(got.dtype) != want["dtype"]:
                raise InputError(f"argument {name}: expected dtype {want['dtype']}, got {_dtype_name(got.dtype)}")
            dims = want.get("dims")
            if dims is None and list(got.shape) != want["shape"]:
                raise InputError(f"argument {name}: expected shape {want['shape']}, got {list(got.shape)}")
            if dims is not None and (
                got.dim() != len(dims) or any(d is not None and d != s for d, s in zip(dims, got.shape, strict=True))
            ):
                like = "[" + ", ".join("*" if d is None else str(d) for d in dims) + "]"
                raise InputError(f"argument {name}: expected a shape like {like} (* any size), got {list(got.shape)}")
            if got.device.type != want["device"]:
                raise InputError(f"argument {name}: expected device {want['device']}, got {got.device.type}")
        return [leaves[i] for i in self.tensor_idx]

    def run(self, inputs: list[Any]) -> Any:
        with torch.no_grad():
            outs = self.compiled.run(*inputs)
        return pytree.tree_unflatten(list(outs[: self.n_user]), self.out_spec)

    def example_inputs(self) -> tuple[tuple, dict]:
        """A call this version accepts (zeros of the exported shapes, the exported Python values): for warming."""
        flat = []
        for leaf in self.leaves:
            if leaf["kind"] == "py":
                flat.append(leaf["value"])
            else:
                flat.append(torch.zeros(leaf["shape"], dtype=getattr(torch, leaf["dtype"]), device=leaf["device"]))
        args, kwargs = pytree.tree_unflatten(flat, self.in_spec)
        return tuple(args), dict(kwargs)

    def signature_differs(self, other: _Version) -> str | None:
        """Why ``other`` cannot serve this version's callers (None: it can): the same argument structure, Python
        values, tensor dtypes, devices and shapes (or dims patterns), and the same output structure."""
        if other.in_spec != self.in_spec:
            return f"its arguments' structure {other.in_spec} differs from {self.in_spec}"
        for i, (a, b) in enumerate(zip(self.leaves, other.leaves, strict=True)):
            if a != b:
                return f"input {i} is {_describe(b)} where the serving version takes {_describe(a)}"
        if other.out_spec != self.out_spec or other.n_user != self.n_user:
            return f"its outputs' structure {other.out_spec} differs from {self.out_spec}"
        for i, (mine, theirs) in enumerate(zip(self.outputs(), other.outputs(), strict=True)):
            if mine != theirs:
                return f"output {i} is {theirs} where the serving version returns {mine}"
        return None

    def outputs(self) -> list[str]:
        """The user outputs' dtypes and shapes (symbolic sizes by name), as the graph declares them."""
        return [f"{v.dtype.value}[{', '.join(map(str, v.shape))}]" for v in self.compiled.graph.outputs[: self.n_user]]


def _describe(leaf: dict[str, Any]) -> str:
    if leaf["kind"] == "py":
        return f"the Python value {leaf['value']!r}"
    shape = leaf.get("dims", leaf["shape"])
    dims = ", ".join("*" if d is None else str(d) for d in shape)
    return f"{leaf['dtype']}[{dims}] on {leaf['device']}"


class LoadedModel:
    """A model loaded from an artifact: call it like the model that was exported (same argument structure,
    shapes and dtypes); ``report()`` says what was loaded and how it runs here. ``swap`` replaces the artifact it
    serves while it is being called (hot update)."""

    def __init__(self, path: str | Path) -> None:
        self._current = (1, _Version(path))  # (version number, version): replaced whole, read once per call
        self._swap_lock = threading.Lock()

    @property
    def version(self) -> int:
        """The number of the version being served: 1, plus one per successful swap."""
        return self._current[0]

    @property
    def _v(self) -> _Version:
        return self._current[1]

    @property
    def _compiled(self) -> Any:
        return self._v.compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        v = self._current[1]  # one read: the whole call runs on the version it started with
        return v.run(v.check(args, kwargs))

    def call_versioned(self, *args: Any, **kwargs: Any) -> tuple[int, str, Any]:
        """(the number of the version that ran, its artifact digest, the outputs): for servers that say which
        version answered (the digest names the file's content across processes; the number counts swaps here)."""
        n, v = self._current
        return n, v.digest, v.run(v.check(args, kwargs))

    @property
    def digest(self) -> str:
        """The served artifact's content digest (16 hex digits of the sha256 over its sections' digests)."""
        return self._current[1].digest

    def swap(self, source: str | Path | LoadedModel) -> int:
        """Serve another artifact from now on: ``source`` (a path, or a LoadedModel whose current version is taken)
        is loaded and checked (every section's checksum; the same call signature, output structure, dtypes and
        shapes as the version being served), warmed with one call, then switched in at once. Calls in flight finish
        on the version they started with; calls after the switch run the new one; the old version is freed when its
        last call returns. Anything wrong raises ``ArtifactError`` naming it, and the old version keeps serving.
        Returns the new version number."""
        with self._swap_lock:  # one swap at a time; calls never wait for it
            new = source._v if isinstance(source, LoadedModel) else _Version(source)
            n = self.version
            why = self._v.signature_differs(new)
            if why is not None:
                raise ArtifactError(f"swap to {new.report.path!r} refused: {why}; version {n} keeps serving")
            args, kwargs = new.example_inputs()
            new.run(new.check(args, kwargs))  # warm: pages the weights in, first-call set-up done off the hot path
            self._current = (n + 1, new)
            return n + 1

    def report(self) -> LoadReport:
        return self._v.report

    def __repr__(self) -> str:
        return f"LoadedModel({self._v.report.path!r}, nodes={self._v.report.nodes}, version={self.version})"


def _panels_tensor(sections: dict[str, Any], where: str) -> torch.Tensor | None:
    if SECTION_PANELS not in sections:
        return None
    t = view_tensors(sections[SECTION_PANELS], where).get("panels")
    if t is None or t.dtype != torch.uint8 or t.dim() != 1:
        raise ArtifactError(f"{where}: the panels section holds no 1-D uint8 'panels' tensor")
    return t


def _lower_loaded(graph: Graph, stored: dict[str, Any], precision: str) -> tuple[Any, str]:
    """The loaded graph lowered for this CPU (native kernels unless ``LEPTON_NATIVE=0``), its stored panels read in
    place; when some reader of a stored weight did not take its panels (no native kernels, another lowering choice),
    the weights are unpacked from the panels (exact) and the graph is lowered again. Returns (compiled graph, how
    the weights were made ready)."""
    from ..backends import LowerOptions, Prepacked, default_backends
    from ..compiler import CompiledGraph
    from ..config import config

    def lowered(pre: Prepacked | None) -> CompiledGraph:
        return CompiledGraph(graph, default_backends("cpu", config.native, LowerOptions(precision, pre)))

    if not stored:
        return lowered(None), "packed at load"
    pre = Prepacked({key: (t, words) for key, (t, _, _, words) in stored.items()})
    compiled = lowered(pre)
    why = panels.untaken(graph, compiled.plan, pre.used, stored)
    if why is None:
        return compiled, f"{len(stored)} GEMM weights read in place from stored panels, the rest packed at load"
    for key, (transposed, k, n, words) in stored.items():
        graph.constants[key] = graph.sources[key] = panels.unpack(words, k, n, transposed)
    return lowered(None), f"stored panels unpacked and packed again at load ({why})"


def load(path: str | Path) -> LoadedModel:
    """Load an artifact written by ``lepton_graph.export`` (see the module docstring)."""
    return LoadedModel(path)


def export(model: Any, example_inputs: Any, path: str | Path, **compile_options: Any) -> int:
    """Compile ``model`` with ``compile_options``, run it once on ``example_inputs`` (a tuple of positional
    arguments, a dict of keyword arguments, or one tensor) and write that variant to ``path``; returns the file
    size in bytes."""
    from ..api import compile as lg_compile
    from ..calibration import as_call

    compiled = lg_compile(model, **compile_options)
    args, kwargs = as_call(example_inputs, 0)
    compiled(*args, **kwargs)
    return compiled.export(path, example_inputs)


__all__ = ["FORMAT", "ExportPiece", "LoadedModel", "export", "load"]
