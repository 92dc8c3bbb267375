"""Stable text form of a graph: one node per line, types after the colon."""

from __future__ import annotations

from typing import Any

from .dtype import DType
from .graph import Graph, Node, Ref


def _attr(a: Any) -> str:
    if isinstance(a, Ref):
        return f"${a.index}"
    if isinstance(a, DType):
        return a.value
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(_attr(x) for x in a) + "]"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k}={_attr(v)}" for k, v in a.items()) + "}"
    if hasattr(a, "nodes"):  # a sub-graph (fusion body)
        return f"<graph {len(a.nodes)} nodes>"
    return repr(a)


def format_node(n: Node) -> str:
    outs = ", ".join(f"%{v.name}" for v in n.outputs)
    args = ", ".join(f"%{v.name}" for v in n.inputs)
    if n.syms:
        args += " | " + ", ".join(f"%{v.name}" for v in n.syms)
    attrs = ", ".join(f"{k}={_attr(v)}" for k, v in n.attrs.items() if v is not None)
    types = ", ".join(v.type_str() for v in n.outputs)
    return f"  {outs} = {n.op.value}({args}){' {' + attrs + '}' if attrs else ''} : {types}"


def format_graph(g: Graph, title: str = "graph") -> str:
    lines = [f"{title}(" + ", ".join(repr(v) for v in g.inputs) + ") {"]
    for key, t in g.constants.items():
        lines.append(f"  %{key} = const : {g.const_values[key].type_str()}  # {t.numel()} elements")
    lines += [format_node(n) for n in g.nodes]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in g.outputs))
    lines.append("}")
    return "\n".join(lines)
