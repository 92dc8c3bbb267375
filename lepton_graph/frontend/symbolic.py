"""Symbolic shape inference for nodes created on symbolic sizes (registered into ir/registry.py, which may not
touch torch.fx itself): the op's reference runs on fake tensors whose sizes are symbols of a ShapeEnv, so a derived
size (a conv's output, a pooled length) comes back as its expression, e.g. ``(((s1 - 1)//2)) + 1``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ir import DType, Node, Op, Value
from ..ir.registry import (
    HINT_BASE,
    HINT_STEP,
    OutSpec,
    SpecializedShape,
    eval_dim,
    run_reference,
    set_symbolic_inference,
)


class _SymbolicShapes:
    """A ShapeEnv and FakeTensorMode with one symbol per symbolic size of a node's inputs. Each symbol's hint is a
    large distinct number, so no size-1 or equal-size coincidence of one example decides a broadcast or a
    specialisation."""

    def __init__(self) -> None:
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        self.env = ShapeEnv(specialize_zero_one=False, duck_shape=False)
        self.mode = FakeTensorMode(shape_env=self.env, allow_non_fake_inputs=True)
        self.made: dict[str, Any] = {}
        self.ours: dict[Any, Any] = {}

    def symbol(self, name: str) -> Any:
        if name not in self.made:
            import sympy
            from torch._dynamo.source import ConstantSource
            from torch.fx.experimental.symbolic_shapes import DimDynamic

            hint = HINT_BASE + HINT_STEP * len(self.made)
            src = ConstantSource(name)
            s = self.env.create_symbol(hint, source=src, dynamic_dim=DimDynamic.DYNAMIC)
            self.ours[s] = sympy.Symbol(name, integer=True, positive=True)
            self.made[name] = self.env.create_symintnode(s, hint=hint, source=src)
        return self.made[name]

    def dim(self, d: Any) -> Any:
        if isinstance(d, int):
            return d
        key = str(d)
        return self.symbol(key) if key.isidentifier() else eval_dim(key, self.symbol)

    def sym_value(self, v: Value) -> Any:
        p = v.producer
        if p is not None and p.op is Op.SYM_SIZE:
            return self.dim(p.inputs[0].shape[p.attrs["dim"]])
        if p is not None and p.op is Op.SYM_ARITH:
            return run_reference(p, [], [self.sym_value(s) for s in p.syms])
        return self.symbol(v.name)

    def back(self, d: Any) -> Any:
        from torch.fx.experimental.sym_node import SymNode

        if isinstance(d, torch.SymInt):
            known = d.node.maybe_as_int()
            if known is not None:
                return known
            expr = d.node.expr.xreplace(self.ours)
            return str(torch.SymInt(SymNode(expr, self.env, int, d.node.hint)))
        return int(d)

    def infer(self, node: Node) -> list[OutSpec]:
        with self.mode:
            args = [
                torch.empty([self.dim(s) for s in v.shape], dtype=v.dtype.to_torch())
                if v.kind == "tensor"
                else self.sym_value(v)
                for v in node.inputs
            ]
            out = run_reference(node, args, [self.sym_value(v) for v in node.syms])
        for sym, name in self.ours.items():  # a symbol the op pinned to a number
            value = self.env.replacements.get(sym)
            if value is not None and value.is_number:
                raise SpecializedShape(f"node {node.name} ({node.op.value}) only holds for {name} = {value}")
        device = next((v.device for v in node.inputs if v.kind == "tensor"), "cpu")
        specs: list[OutSpec] = []
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                specs.append((tuple(self.back(d) for d in o.shape), DType.from_torch(o.dtype), device, "tensor"))
            else:
                specs.append(((), DType.i64, device, "sym"))
        return specs


def infer_symbolic(node: Node) -> list[OutSpec]:
    return _SymbolicShapes().infer(node)


set_symbolic_inference(infer_symbolic)
