"""The IR as plain JSON data and back: what an artifact stores instead of pickled objects.

A graph is ``{"inputs": [value], "nodes": [node], "outputs": [name], "constants": {key: value}}``; a value is
``{"name", "shape", "dtype", "device", "kind", "layout", "const"}`` and nodes name the values they read. Attributes
are plain JSON where they can be; the rest is tagged: ``{"$t": [...]}`` a tuple, ``{"$dtype": "f32"}``,
``{"$ref": i}`` / ``{"$arg": i}`` (ir.graph.Ref / Arg), ``{"$torch": [kind, value]}`` (TorchObj), ``{"$f": "inf"}``
a non-finite float, ``{"$graph": graph}`` a FUSED node's body, ``{"$map": {...}}`` a dict (so a user key that looks
like a tag is never read as one). Decoding checks every type and every reference and raises ArtifactError naming
the node: a file is data, never code.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import torch

from ..errors import ArtifactError
from ..ir import DType, Graph, Node, Op, Value
from ..ir.graph import Arg, Ref, TorchObj

_TAGS = ("$t", "$dtype", "$ref", "$arg", "$torch", "$f", "$graph", "$map")
_NUM = re.compile(r"(\d+)$")
MAX_DEPTH = 32  # nested attribute containers / FUSED bodies


# ---------------------------------------------------------------------------------------------------- encoding


def encode_graph(graph: Graph) -> dict[str, Any]:
    """``graph`` as JSON data; its constants are referenced by key (the tensors go to the safetensors section)."""
    consts = {key: _value(v) for key, v in graph.const_values.items() if key in graph.constants}
    return {
        "inputs": [_value(v) for v in graph.inputs],
        "constants": consts,
        "nodes": [_node(n) for n in graph.nodes],
        "outputs": [v.name for v in graph.outputs],
    }


def _value(v: Value) -> dict[str, Any]:
    if v.qparams is not None:
        raise ArtifactError(f"value %{v.name} carries quantization parameters, which the format does not hold yet")
    return {
        "name": v.name,
        "shape": list(v.shape),
        "dtype": v.dtype.value,
        "device": v.device,
        "kind": v.kind,
        "layout": v.layout,
        "const": v.const,
    }


def _node(n: Node) -> dict[str, Any]:
    return {
        "op": n.op.value,
        "name": n.name,
        "inputs": [v.name for v in n.inputs],
        "syms": [v.name for v in n.syms],
        "outputs": [_value(v) for v in n.outputs],
        "attrs": {k: _attr(a, f"node {n.name} attribute {k!r}") for k, a in n.attrs.items()},
    }


def _attr(a: Any, where: str) -> Any:
    if a is None or isinstance(a, (bool, str, int)):
        return a
    if isinstance(a, float):
        return a if math.isfinite(a) else {"$f": repr(a)}
    if isinstance(a, tuple):
        return {"$t": [_attr(x, where) for x in a]}
    if isinstance(a, list):
        return [_attr(x, where) for x in a]
    if isinstance(a, dict):
        if not all(isinstance(k, str) for k in a):
            raise ArtifactError(f"{where}: a dict with non-string keys cannot be stored")
        return {"$map": {k: _attr(x, where) for k, x in a.items()}}
    if isinstance(a, DType):
        return {"$dtype": a.value}
    if isinstance(a, Ref):
        return {"$ref": a.index}
    if isinstance(a, Arg):
        return {"$arg": a.index}
    if isinstance(a, TorchObj):
        return {"$torch": [a.kind, a.value]}
    if isinstance(a, Graph):
        return {"$graph": encode_graph(a)}
    raise ArtifactError(f"{where} is a {type(a).__name__}, which the artifact format cannot hold")


# ---------------------------------------------------------------------------------------------------- decoding


def decode_graph(data: Any, constants: dict[str, torch.Tensor], depth: int = 0) -> Graph:
    """The graph ``encode_graph`` wrote, its constant values from ``constants`` (checked against the declared
    shapes and dtypes). Raises ArtifactError on any type, reference or shape that does not fit."""
    if depth > MAX_DEPTH:
        raise ArtifactError("graph bodies are nested deeper than the format allows")
    d = _dict(data, "graph")
    g = Graph()
    env: dict[str, Value] = {}
    top = depth == 0
    for vd in _list(d.get("inputs"), "graph inputs"):
        v = _decode_value(vd, "graph input")
        g.inputs.append(_define(env, v, "graph input"))
    for key, vd in _dict(d.get("constants"), "graph constants").items():
        v = _decode_value(vd, f"constant {key!r}")
        if v.const != key:
            raise ArtifactError(f"constant {key!r} is declared as value {v.name!r} with key {v.const!r}")
        if key not in constants:
            raise ArtifactError(f"constant {key!r} has no tensor in the tensors section")
        t = constants[key]
        if tuple(t.shape) != v.shape or DType.from_torch(t.dtype) is not v.dtype:
            raise ArtifactError(
                f"constant {key!r}: the graph declares {v.dtype.value}{list(v.shape)}, the tensors section holds "
                f"{t.dtype}{list(t.shape)}"
            )
        g.constants[key] = t
        g.sources[key] = t
        g.const_values[key] = _define(env, v, f"constant {key!r}")
    if not top and g.constants:
        raise ArtifactError("a FUSED body declares constants of its own")
    for i, nd in enumerate(_list(d.get("nodes"), "graph nodes")):
        g.nodes.append(_decode_node(nd, env, constants, depth, i))
    g.outputs = [_lookup(env, name, "graph output") for name in _list(d.get("outputs"), "graph outputs")]
    g._ids = itertools.count(_next_id(env))
    return g


def _decode_node(nd: Any, env: dict[str, Value], constants: dict[str, torch.Tensor], depth: int, i: int) -> Node:
    nd = _dict(nd, f"node {i}")
    name = _str(nd.get("name"), f"node {i} name")
    where = f"node {name}"
    try:
        op = Op(_str(nd.get("op"), f"{where} op"))
    except ValueError:
        raise ArtifactError(f"{where}: unknown op {nd.get('op')!r}") from None
    inputs = [_lookup(env, _str(x, f"{where} input"), where) for x in _list(nd.get("inputs"), f"{where} inputs")]
    syms = [_lookup(env, _str(x, f"{where} sym"), where) for x in _list(nd.get("syms"), f"{where} syms")]
    attrs = {
        _str(k, f"{where} attribute name"): _decode_attr(a, f"{where} attribute {k!r}", constants, depth)
        for k, a in _dict(nd.get("attrs"), f"{where} attrs").items()
    }
    node = Node(op, inputs, attrs, [], name=name, syms=syms)
    for vd in _list(nd.get("outputs"), f"{where} outputs"):
        v = _decode_value(vd, f"{where} output")
        if v.const is not None:
            raise ArtifactError(f"{where}: output %{v.name} claims to be constant {v.const!r}")
        v.producer = node
        node.outputs.append(_define(env, v, where))
    return node


def _decode_attr(a: Any, where: str, constants: dict[str, torch.Tensor], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ArtifactError(f"{where}: nested deeper than the format allows")
    if a is None or isinstance(a, (bool, str, int, float)):
        return a
    if isinstance(a, list):
        return [_decode_attr(x, where, constants, depth + 1) for x in a]
    if not isinstance(a, dict) or len(a) != 1 or next(iter(a)) not in _TAGS:
        raise ArtifactError(f"{where}: {type(a).__name__} value is not a tagged attribute")
    ((tag, x),) = a.items()
    if tag == "$t":
        return tuple(_decode_attr(y, where, constants, depth + 1) for y in _list(x, where))
    if tag == "$map":
        return {_str(k, where): _decode_attr(y, where, constants, depth + 1) for k, y in _dict(x, where).items()}
    if tag == "$dtype":
        try:
            return DType(_str(x, where))
        except ValueError:
            raise ArtifactError(f"{where}: unknown dtype {x!r}") from None
    if tag in ("$ref", "$arg"):
        if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < 1 << 16:
            raise ArtifactError(f"{where}: {tag} index {x!r} is not a small non-negative int")
        return Ref(x) if tag == "$ref" else Arg(x)
    if tag == "$torch":
        kind, value = _list(x, where) if len(_list(x, where)) == 2 else (None, None)
        if kind not in ("device", "memory_format", "layout") or not isinstance(value, str):
            raise ArtifactError(f"{where}: bad torch object {x!r}")
        if kind != "device" and not (value.isidentifier() and isinstance(getattr(torch, value, None), _TORCH_KINDS)):
            raise ArtifactError(f"{where}: {value!r} is not a torch {kind}")
        return TorchObj(kind, value)
    if tag == "$f":
        if x not in ("inf", "-inf", "nan"):
            raise ArtifactError(f"{where}: bad float {x!r}")
        return float(x)
    return decode_graph(x, constants, depth + 1)  # "$graph"


_TORCH_KINDS = (torch.memory_format, torch.layout)


def _decode_value(d: Any, where: str) -> Value:
    d = _dict(d, where)
    name = _str(d.get("name"), f"{where} name")
    shape = []
    for s in _list(d.get("shape"), f"%{name} shape"):
        if isinstance(s, bool) or not isinstance(s, (int, str)) or (isinstance(s, int) and not 0 <= s < 1 << 40):
            raise ArtifactError(f"%{name}: dimension {s!r} is not a size")
        shape.append(s)
    try:
        dtype = DType(_str(d.get("dtype"), f"%{name} dtype"))
    except ValueError:
        raise ArtifactError(f"%{name}: unknown dtype {d.get('dtype')!r}") from None
    kind = d.get("kind", "tensor")
    if kind not in ("tensor", "sym"):
        raise ArtifactError(f"%{name}: unknown value kind {kind!r}")
    const = d.get("const")
    if const is not None:
        const = _str(const, f"%{name} const")
    device = _str(d.get("device", "cpu"), f"%{name} device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ArtifactError(f"%{name}: unknown device {device!r}")
    return Value(
        name, tuple(shape), dtype, device, kind=kind, layout=_str(d.get("layout", "strided"), name), const=const
    )


def _define(env: dict[str, Value], v: Value, where: str) -> Value:
    if v.name in env:
        raise ArtifactError(f"{where}: value %{v.name} is defined twice")
    env[v.name] = v
    return v


def _lookup(env: dict[str, Value], name: str, where: str) -> Value:
    if name not in env:
        raise ArtifactError(f"{where}: reads %{name}, which is not defined before it")
    return env[name]


def _next_id(env: dict[str, Value]) -> int:
    ids = [int(m.group(1)) for name in env if (m := _NUM.search(name))]
    return max(ids, default=0) + 1


def _dict(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise ArtifactError(f"{where}: expected an object, got {type(x).__name__}")
    return x


def _list(x: Any, where: str) -> list[Any]:
    if not isinstance(x, list):
        raise ArtifactError(f"{where}: expected a list, got {type(x).__name__}")
    return x


def _str(x: Any, where: str) -> str:
    if not isinstance(x, str):
        raise ArtifactError(f"{where}: expected a string, got {type(x).__name__}")
    return x
