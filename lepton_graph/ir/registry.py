"""The one op registry: for every Op its schema, shape/dtype inference and torch reference implementation.

The reference is what the fallback backend runs, what the reference interpreter (LEPTON_VERIFY) runs and what
tests compare kernels against; so it must be the exact eager semantics.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .dtype import DType
from .graph import Node, Ref, Shape, Value
from .ops import Op

# (shape, dtype, device, kind) of one output
OutSpec = tuple[Shape, DType, str, str]
_REQUIRED = object()


@dataclass(frozen=True)
class OpDef:
    op: Op
    reference: Callable[..., Any]
    num_inputs: tuple[int, int]
    attrs: Mapping[str, Any] = field(default_factory=dict)  # name -> default (REQUIRED if none)
    infer: Callable[[Node], list[OutSpec]] | None = None
    doc: str = ""

    def normalize_attrs(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        unknown = set(given) - set(self.attrs)
        if unknown and self.op is not Op.FALLBACK:
            raise TypeError(
                f"{where}: op {self.op.value} has no attribute(s) {sorted(unknown)}; it takes {sorted(self.attrs)}"
            )
        out = dict(given)
        for name, default in self.attrs.items():
            if name not in out:
                if default is _REQUIRED:
                    raise TypeError(f"{where}: op {self.op.value} needs attribute {name!r}")
                out[name] = default
        return out


OPS: dict[Op, OpDef] = {}
REQUIRED = _REQUIRED


def register_op(
    op: Op,
    *,
    inputs: int | tuple[int, int] = 1,
    attrs: Mapping[str, Any] | None = None,
    infer: Callable[[Node], list[OutSpec]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator on the torch reference implementation: ``@register_op(Op.RELU) def relu(x): ...``."""
    n = (inputs, inputs) if isinstance(inputs, int) else inputs

    def deco(fn: Callable) -> Callable:
        if op in OPS:
            raise ValueError(f"op {op.value} registered twice")
        OPS[op] = OpDef(op, fn, n, dict(attrs or {}), infer, (fn.__doc__ or "").strip())
        return fn

    return deco


def resolve_attrs(attrs: Mapping[str, Any], syms: list[Any]) -> dict[str, Any]:
    """Replace Ref(i) entries (also inside lists/tuples) with the run-time symbolic values."""

    def sub(a: Any) -> Any:
        if isinstance(a, Ref):
            return syms[a.index]
        if isinstance(a, (list, tuple)):
            return type(a)(sub(x) for x in a)
        if isinstance(a, dict):
            return {k: sub(x) for k, x in a.items()}
        return a

    return {k: sub(v) for k, v in attrs.items()}


def run_reference(node: Node, args: list[Any], syms: list[Any]) -> Any:
    return OPS[node.op].reference(*args, **resolve_attrs(node.attrs, syms))


# -- shape inference ------------------------------------------------------------------------------------------

HINT_BASE = 100_003  # symbolic dims are traced with distinct large hints, mapped back afterwards
HINT_STEP = 1_009


def infer_outputs(node: Node) -> list[OutSpec]:
    d = OPS.get(node.op)
    if d is None:
        raise KeyError(f"op {node.op.value} is not registered")
    lo, hi = d.num_inputs
    if not lo <= len(node.inputs) <= hi:
        raise TypeError(f"op {node.op.value} takes {lo}..{hi} inputs, got {len(node.inputs)}")
    node.attrs = d.normalize_attrs(node.attrs, f"node {node.name}")
    if d.infer is not None:
        return d.infer(node)
    return infer_by_meta(node)


def is_symbolic(node: Node) -> bool:
    return bool(node.syms) or any(v.kind == "sym" or not all(isinstance(d, int) for d in v.shape) for v in node.inputs)


def infer_by_meta(node: Node) -> list[OutSpec]:
    """Run the reference on meta tensors: exact torch semantics for shapes and dtype promotion. With symbolic
    sizes, on fake tensors whose sizes are symbols of a ShapeEnv, so a derived size (a conv's output, a pooled
    length) comes back as its expression, never as the number one sample of the symbols gave."""
    if is_symbolic(node):
        try:
            return _infer_symbolic(node)
        except SpecializedShape:
            raise
        except Exception:  # noqa: BLE001 - an op fake tensors cannot trace symbolically: the hinted run below
            pass
    return _infer_hinted(node)


class SpecializedShape(ValueError):
    """A node's op only holds for one value of a symbolic size (a reshape to a literal batch of 1): the graph
    is not valid for every size its inputs claim."""


_EXPR_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def eval_dim(expr: str, names: Callable[[str], Any]) -> Any:
    """A symbolic dim's expression ("2*s0", "(((s53 - 1)//2)) + 1") evaluated with ``names`` for its symbols:
    integer arithmetic only (+ - * // %, unary minus, int literals, names); anything else raises ValueError."""

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.BinOp) and type(n.op) in _EXPR_OPS:
            return _EXPR_OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.Name):
            return names(n.id)
        raise ValueError(f"symbolic size {expr!r}: unsupported expression")

    return ev(ast.parse(expr, mode="eval"))


# Symbolic shape inference on fake tensors (frontend/symbolic.py registers it: it needs torch.fx's ShapeEnv,
# which only the frontend may touch); None: the hinted run below.
_symbolic_inference: Callable[[Node], list[OutSpec]] | None = None


def set_symbolic_inference(fn: Callable[[Node], list[OutSpec]]) -> None:
    global _symbolic_inference
    _symbolic_inference = fn


def _infer_symbolic(node: Node) -> list[OutSpec]:
    if _symbolic_inference is None:
        raise RuntimeError("no symbolic shape inference registered")
    return _symbolic_inference(node)


def _infer_hinted(node: Node) -> list[OutSpec]:
    hints: dict[str, int] = {}

    def hint(dim: Any) -> int:
        if isinstance(dim, int):
            return dim
        key = str(dim)
        if key not in hints:
            if key.isidentifier():
                hints[key] = HINT_BASE + HINT_STEP * len(hints)
            else:  # an expression ("2*s0", "s0*s1"): its symbols' hints must give the same value
                import sympy

                expr = sympy.sympify(key)
                hints[key] = int(expr.subs({s: hint(s.name) for s in expr.free_symbols}))
        return hints[key]

    def sym_hint(v: Value) -> int:
        # a sym value read off a tensor's size must agree with that tensor's symbolic dim
        p = v.producer
        if p is not None and p.op is Op.SYM_SIZE:
            return hint(p.inputs[0].shape[p.attrs["dim"]])
        if p is not None and p.op is Op.SYM_ARITH:
            return int(run_reference(p, [], [sym_hint(s) for s in p.syms]))
        return hint(v.name)

    args = [
        torch.empty([hint(s) for s in v.shape], dtype=v.dtype.to_torch(), device="meta")
        if v.kind == "tensor"
        else sym_hint(v)
        for v in node.inputs
    ]
    syms = [sym_hint(v) for v in node.syms]
    device = next((v.device for v in node.inputs if v.kind == "tensor"), "cpu")
    out = run_reference(node, args, syms)
    back = {h: s for s, h in hints.items()}
    outs = out if isinstance(out, (tuple, list)) else (out,)
    specs: list[OutSpec] = []
    for o in outs:
        if isinstance(o, torch.Tensor):
            shape = tuple(back.get(int(s), int(s)) for s in o.shape)
            specs.append((shape, DType.from_torch(o.dtype), device, "tensor"))
        else:
            specs.append(((), DType.i64, device, "sym"))
    return specs
