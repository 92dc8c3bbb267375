"""Structural and type verifier, run after every pass in tests and under LEPTON_VERIFY=1."""

from __future__ import annotations

from .graph import Graph, Node, Value
from .ops import Op
from .registry import OPS, infer_outputs


class VerifyError(ValueError):
    pass


def _fail(node: Node, msg: str) -> VerifyError:
    ins = ", ".join(v.type_str() for v in node.inputs)
    return VerifyError(f"node {node.name} ({node.op.value}) with inputs ({ins}): {msg}")


def verify(graph: Graph, *, check_types: bool = True) -> None:
    """Raise VerifyError naming the node if the graph is malformed.

    Checks: every use is defined earlier (topological order, no dangling uses), each value has one producer,
    constants exist, outputs are defined, and (check_types) the registry's inference reproduces stored types.
    """
    defined: set[Value] = set(graph.inputs)
    for v in graph.const_values.values():
        if v.const not in graph.constants:
            raise VerifyError(f"constant value %{v.name} has no tensor")
        defined.add(v)
    for node in graph.nodes:
        if node.op not in OPS:
            raise _fail(node, "op is not registered")
        for v in node.deps():
            if v not in defined:
                where = "is a constant not registered in the graph" if v.const else "is used before definition"
                raise _fail(node, f"input %{v.name} {where}")
        for v in node.outputs:
            if v in defined:
                raise _fail(node, f"value %{v.name} defined twice")
            if v.producer is not node:
                raise _fail(node, f"output %{v.name} has another producer")
            defined.add(v)
        if check_types and node.op not in (Op.FUSED,):
            _check_types(node)
    for v in graph.outputs:
        if v not in defined:
            raise VerifyError(f"graph output %{v.name} is never defined")


def _check_types(node: Node) -> None:
    try:
        specs = infer_outputs(node)
    except Exception as e:  # an op that rejects its inputs is a verifier failure, not a crash
        raise _fail(node, f"shape inference failed: {e}") from e
    if len(specs) != len(node.outputs):
        raise _fail(node, f"inference gives {len(specs)} outputs, node has {len(node.outputs)}")
    static = all(v.is_static for v in node.inputs) and not node.syms
    for v, (shape, dtype, _dev, kind) in zip(node.outputs, specs):
        if kind != v.kind or (kind == "tensor" and dtype != v.dtype):
            raise _fail(node, f"output %{v.name} stored as {v.type_str()}, inferred {dtype.value}[{kind}]")
        if kind == "tensor" and static and tuple(shape) != tuple(v.shape):
            raise _fail(node, f"output %{v.name} stored as {v.type_str()}, inferred shape {list(shape)}")
        if kind == "tensor" and len(shape) != len(v.shape):
            raise _fail(node, f"output %{v.name} stored rank {len(v.shape)}, inferred rank {len(shape)}")
