"""ATen-level FX graph -> our IR. Known operators go through the converter table in aten_table.py; every
other operator becomes a FALLBACK node that calls torch by name, so import never fails on an unknown op."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from ..errors import CaptureError
from ..ir import DType, Graph, Op, Ref, Value
from ..ir.graph import Arg, Shape, TorchObj, device_str

# set by aten_table: ATen overload -> converter(builder, *args, **kwargs) -> Value | list[Value] | None
CONVERTERS: dict[Any, Callable[..., Any]] = {}
# targets with no effect on results in inference (shape asserts already enforced by our own guards)
_DROPPED = ("aten::_assert", "aten::sym_constrain_range", "aten::_assert_tensor_metadata", "aten::_assert_scalar")
_SYM_ARITH = {operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.floordiv: "floordiv"}


def converts(*targets: Any) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for t in targets:
            CONVERTERS[t] = fn
        return fn

    return deco


def dim_of(d: Any) -> int | str:
    if isinstance(d, int):
        return d
    if isinstance(d, torch.SymInt):
        known = d.node.maybe_as_int()  # never int(d): that would specialise the symbol
        return known if known is not None else str(d)
    return int(d)


def _spec_of(val: Any) -> tuple[Shape, DType, str, str] | None:
    if isinstance(val, torch.Tensor):
        return tuple(dim_of(d) for d in val.shape), DType.from_torch(val.dtype), device_str(val.device), "tensor"
    if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool):
        return (), DType.i64, "cpu", "sym"
    return None


@dataclass
class ImportStats:
    fallback_reasons: dict[str, str] = field(default_factory=dict)  # target -> why it was not converted


class Importer:
    """Walks an FX graph once; converters call value()/ints()/emit() on it."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.env: dict[fx.Node, Any] = {}
        self.node: fx.Node | None = None
        self.stats = ImportStats()

    # -- helpers for converters
    def value(self, arg: Any) -> Value:
        if isinstance(arg, fx.Node):
            v = self.env[arg]
            if not isinstance(v, Value):
                raise CaptureError(f"{arg.name} is not a single value")
            return v
        if isinstance(arg, torch.Tensor):
            return self.g.add_constant(arg)
        raise TypeError(f"expected a tensor argument, got {type(arg).__name__}")

    def is_sym(self, arg: Any) -> bool:
        return isinstance(arg, fx.Node) and isinstance(self.env.get(arg), Value) and self.env[arg].kind == "sym"

    def ints(self, arg: Any, syms: list[Value]) -> Any:
        """An int or int list argument; symbolic entries become Ref(i) into ``syms`` (which this appends to)."""
        if isinstance(arg, (list, tuple)):
            return tuple(self.ints(a, syms) for a in arg)
        if isinstance(arg, fx.Node):
            syms.append(self.value(arg))
            return Ref(len(syms) - 1)
        return arg

    def emit(
        self, op: Op, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None, syms: Sequence[Value] = ()
    ) -> Value | list[Value]:
        """Add a node whose output types are taken from the FX node being converted."""
        assert self.node is not None
        specs = self._out_specs(self.node)
        outs = [Value(self.g.fresh(), s, dt, dev, kind=k) for s, dt, dev, k in specs]
        node = self.g.add_node(op, inputs, attrs, outputs=outs, syms=syms)
        return (
            node.outputs[0]
            if len(node.outputs) == 1 and not isinstance(self.node.meta.get("val"), (tuple, list))
            else list(node.outputs)
        )

    # -- the walk
    def run(self, gm: fx.GraphModule, placeholders: Mapping[str, Value | torch.Tensor]) -> list[Any]:
        outputs: list[Any] = []
        for node in gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                src = placeholders[node.name]
                if isinstance(src, torch.Tensor):
                    src = self.g.add_constant(src, _const_name(node))
                self.env[node] = src  # a Value, or a Python scalar input that export specialised
            elif node.op == "get_attr":
                self.env[node] = self.g.add_constant(_fetch_attr(gm, node.target), str(node.target))
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                result = node.args[0]
                result = result if isinstance(result, (tuple, list)) else (result,)
                outputs = list(fx.node.map_arg(result, lambda n: self.env[n]))
            else:
                raise CaptureError(f"unsupported FX node kind {node.op} ({node.name})")
        return outputs

    def _call(self, node: fx.Node) -> None:
        target = node.target
        if target is operator.getitem:
            src = self.env[node.args[0]]  # type: ignore[index]
            self.env[node] = src[node.args[1]] if isinstance(src, list) else None  # type: ignore[index]
            return
        if target in _SYM_ARITH and all(isinstance(a, (int, fx.Node)) for a in node.args):
            syms: list[Value] = []
            a, b = (self.ints(x, syms) for x in node.args)
            self.env[node] = self.emit(Op.SYM_ARITH, [], {"fn": _SYM_ARITH[target], "a": a, "b": b}, syms)
            return
        name = _target_name(target)
        if name.startswith(_DROPPED):
            self.env[node] = None
            return
        args, kwargs = node.args, node.kwargs
        if any(not isinstance(self.env.get(a), Value) for a in node.all_input_nodes):
            # Python scalars bound to placeholders are substituted as literals
            args, kwargs = fx.node.map_arg((args, kwargs), self._literal_or_node)
        conv = CONVERTERS.get(target)
        if conv is not None:
            out = conv(self, *args, **kwargs)
            if out is not None:
                self.env[node] = out
                return
            self.stats.fallback_reasons.setdefault(name, "converter declined these arguments")
        else:
            self.stats.fallback_reasons.setdefault(name, "no converter")
        self.env[node] = self._fallback(node, name, args, kwargs)

    def _literal_or_node(self, n: fx.Node) -> Any:
        v = self.env.get(n)
        return v if isinstance(v, (bool, int, float)) else n

    def _fallback(self, node: fx.Node, name: str, args: Any, kwargs: Any) -> Any:
        inputs: list[Value] = []
        syms: list[Value] = []

        def enc(a: Any) -> Any:
            if isinstance(a, fx.Node):
                v = self.env[a]
                if isinstance(v, Value) and v.kind == "sym":
                    syms.append(v)
                    return Ref(len(syms) - 1)
                if not isinstance(v, Value):
                    raise CaptureError(f"operator {name}: argument {a.name} is not a tensor")
                inputs.append(v)
                return Arg(len(inputs) - 1)
            if isinstance(a, torch.Tensor):
                inputs.append(self.g.add_constant(a))
                return Arg(len(inputs) - 1)
            if isinstance(a, (list, tuple)):
                return type(a)(enc(x) for x in a)
            if isinstance(a, dict):
                return {k: enc(x) for k, x in a.items()}
            if isinstance(a, torch.dtype):
                return DType.from_torch(a)
            if isinstance(a, torch.device):
                return TorchObj("device", str(a))
            if isinstance(a, torch.memory_format):
                return TorchObj("memory_format", str(a).removeprefix("torch."))
            if isinstance(a, torch.layout):
                return TorchObj("layout", str(a).removeprefix("torch."))
            if a is None or isinstance(a, (bool, int, float, str)):
                return a
            raise CaptureError(f"operator {name}: cannot represent argument of type {type(a).__name__}")

        args, kwargs = enc(tuple(args)), enc(dict(kwargs))
        val = node.meta.get("val")
        pick = None
        if isinstance(val, (tuple, list)):
            pick = tuple(i for i, x in enumerate(val) if _spec_of(x) is not None)
        attrs = {"target": name, "args": args, "kwargs": kwargs, "outputs": pick}
        specs = self._out_specs(node)
        outs = [Value(self.g.fresh(), s, dt, dev, kind=k) for s, dt, dev, k in specs]
        n = self.g.add_node(Op.FALLBACK, inputs, attrs, outputs=outs, syms=syms)
        if pick is None:
            return n.outputs[0] if n.outputs else None
        result: list[Value | None] = [None] * len(val)  # type: ignore[arg-type]
        for i, v in zip(pick, n.outputs):
            result[i] = v
        return result

    @staticmethod
    def _out_specs(node: fx.Node) -> list[tuple[Shape, DType, str, str]]:
        val = node.meta.get("val")
        if val is None:
            return []
        vals = val if isinstance(val, (tuple, list)) else [val]
        specs = [_spec_of(v) for v in vals]
        return [s for s in specs if s is not None]


def _target_name(target: Any) -> str:
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return target.name() if isinstance(target, torch._ops.OpOverload) else f"{target._qualified_op_name}"
    mod = getattr(target, "__module__", None) or ""
    return f"py:{mod.removeprefix('_')}.{getattr(target, '__name__', repr(target))}"


def _fetch_attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise CaptureError(f"get_attr {target} is a {type(obj).__name__}, not a tensor (higher-order ops unsupported)")
    return obj


def _const_name(node: fx.Node) -> str:
    return str(node.meta.get("lepton_const_name", node.name))


def import_fx(gm: fx.GraphModule, placeholders: Mapping[str, Any], graph: Graph) -> tuple[list[Any], ImportStats]:
    """Import ``gm`` into ``graph`` (whose inputs the caller created); returns the FX output structure."""
    from . import aten_table  # noqa: F401  (fills CONVERTERS)

    imp = Importer(graph)
    outs = imp.run(gm, placeholders)
    return outs, imp.stats
