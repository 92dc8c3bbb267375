"""Dispatch-code generation: a partition (or any node list) becomes one straight-line Python function, like FX's
codegen. Each node is one direct call -- of its native kernel when the backend lowered one, else of its torch
reference with attributes inlined as literals -- and values are released right after their last use, so the
generated function costs about what eager costs, with no interpreter loop.
"""

from __future__ import annotations

import math
from typing import Any

from ..ir import OPS, DType, Graph, Node, Op, Value
from ..ir.defs.fallback import resolve_target
from ..ir.graph import Arg, Ref, TorchObj


class _Namer:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names: dict[Value, str] = {}
        self.globals: dict[str, Any] = {}
        self._bound: dict[int, str] = {}

    def var(self, v: Value) -> str:
        if v.const is not None:
            return self.bind(self.graph.constants[v.const], "c")
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = f"v{len(self.names)}"
        return name

    def bind(self, obj: Any, prefix: str) -> str:
        """A module-level name for ``obj`` inside the generated function (one per distinct object)."""
        key = id(obj)
        name = self._bound.get(key)
        if name is None:
            name = self._bound[key] = f"{prefix}{len(self._bound)}"
            self.globals[name] = obj
        return name

    def literal(self, a: Any, syms: list[str], args: list[str] | None = None) -> str:
        if isinstance(a, Ref):
            return syms[a.index]
        if isinstance(a, Arg) and args is not None:
            return args[a.index]
        if a is None or isinstance(a, (bool, int, str)):
            return repr(a)
        if isinstance(a, float):
            return repr(a) if math.isfinite(a) else self.bind(a, "k")
        if isinstance(a, tuple):
            inner = ", ".join(self.literal(x, syms, args) for x in a)
            return f"({inner},)" if len(a) == 1 else f"({inner})"
        if isinstance(a, list):
            return "[" + ", ".join(self.literal(x, syms, args) for x in a) + "]"
        if isinstance(a, dict):
            return "{" + ", ".join(f"{k!r}: {self.literal(x, syms, args)}" for k, x in a.items()) + "}"
        if isinstance(a, DType) and args is not None:  # fallback templates hold torch objects at call time
            return self.bind(a.to_torch(), "k")
        if isinstance(a, TorchObj) and args is not None:
            from ..ir.defs.fallback import decode

            return self.bind(decode(a, ()), "k")
        return self.bind(a, "k")


def _call(node: Node, nm: _Namer, kernel: Any = None) -> str:
    args = [nm.var(v) for v in node.inputs]
    syms = [nm.var(v) for v in node.syms]
    if kernel is not None:  # a lowered native kernel: takes the node's inputs, then its symbolic sizes
        return f"{nm.bind(kernel, 'k')}({', '.join(args + syms)})"
    if node.op is Op.FALLBACK:
        fn = nm.bind(resolve_target(node.attrs["target"]), "t")
        pos = [nm.literal(a, syms, args) for a in node.attrs["args"]]
        kw = [f"{k}={nm.literal(a, syms, args)}" for k, a in node.attrs["kwargs"].items()]
        return f"{fn}({', '.join(pos + kw)})"
    fn = nm.bind(OPS[node.op].reference, "f")
    kw = [f"{k}={nm.literal(a, syms)}" for k, a in node.attrs.items()]
    return f"{fn}({', '.join(args + kw)})"


def inline_fused(nodes: list[Node]) -> list[Node]:
    """FUSED nodes replaced by their bodies, rewired to the outer values (torch runs a group op by op)."""
    out: list[Node] = []
    for n in nodes:
        if n.op is not Op.FUSED:
            out.append(n)
            continue
        body = n.attrs["body"]
        sub = dict(zip(body.inputs, n.inputs))
        sub.update(zip(body.outputs, n.outputs))
        for b in inline_fused(body.nodes):
            out.append(
                Node(
                    b.op,
                    [sub.get(v, v) for v in b.inputs],
                    b.attrs,
                    [sub.get(v, v) for v in b.outputs],
                    b.name,
                    [sub.get(v, v) for v in b.syms],
                )
            )
    return out


def generate_function(
    nodes: list[Node],
    inputs: list[Value],
    outputs: list[Value],
    graph: Graph,
    name: str,
    kernels: dict[int, Any] | None = None,
) -> Any:
    """Compile ``nodes`` into ``def name(*inputs) -> tuple(outputs)`` with eager-like memory behaviour.

    ``kernels`` maps id(node) to a native kernel to call instead of the node's torch reference; FUSED nodes
    without one are inlined (torch runs the group op by op)."""
    kernels = kernels or {}
    nodes = [n for m in nodes for n in ([m] if id(m) in kernels else inline_fused([m]))]
    nm = _Namer(graph)
    params = [nm.var(v) for v in inputs]
    last_use: dict[Value, int] = {}
    for i, n in enumerate(nodes):
        for v in n.deps():
            last_use[v] = i
    keep = set(outputs)
    body: list[str] = []
    for i, n in enumerate(nodes):
        call = _call(n, nm, kernels.get(id(n)))
        outs = [nm.var(v) for v in n.outputs]
        pick = n.attrs["outputs"] if n.op is Op.FALLBACK else None
        multi = len(n.outputs) != 1 or n.op is Op.SPLIT
        if pick is not None:  # a tuple-returning torch operator: keep only its tensor results
            body.append(f"    _r = {call}")
            if outs:
                body.append(f"    {', '.join(outs)}, = {', '.join(f'_r[{j}]' for j in pick)},")
            body.append("    del _r")
        elif not outs:
            body.append(f"    {call}")
        elif multi:
            body.append(f"    {', '.join(outs)}, = {call}")
        else:
            body.append(f"    {outs[0]} = {call}")
        dead = [nm.var(v) for v in n.deps() if last_use.get(v) == i and v not in keep and v.const is None]
        dead += [nm.var(v) for v in n.outputs if v not in last_use and v not in keep]
        if dead:
            body.append(f"    del {', '.join(dict.fromkeys(dead))}")
    rets = [nm.var(v) for v in outputs]
    body.append(f"    return ({''.join(r + ', ' for r in rets)})")
    src = f"def {name}({', '.join(params)}):\n" + "\n".join(body) + "\n"
    namespace = dict(nm.globals)
    exec(compile(src, f"<lepton:{name}>", "exec"), namespace)  # noqa: S102 - our own generated source
    fn = namespace[name]
    fn.__lepton_source__ = src
    return fn
