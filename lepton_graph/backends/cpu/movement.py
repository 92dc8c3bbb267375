"""Shape and data-movement lowerings.

View ops (RESHAPE of a viewable input, PERMUTE, TRANSPOSE, EXPAND, SQUEEZE, UNSQUEEZE, SLICE, SELECT, SPLIT) are
zero-copy: they call torch's view functions, which only make new tensor metadata. Whatever moves bytes is native:
CONTIGUOUS and non-viewable RESHAPE (strided copy), CAT (strided copies into slices of the output), EMBEDDING and
INDEX_SELECT (row gather), FULL (fill), ARANGE. SYM_SIZE / SYM_ARITH are plain Python on ints.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import torch

from ...ir import DType, Graph, Node, Op
from ...ir.graph import Ref
from ...ir.registry import resolve_attrs
from .. import LowerOptions
from .native import _C
from .registry import Kernel, lowers

_slice = torch.ops.aten.slice.Tensor
_copy_strided = _C.copy_strided


def contiguous(x: torch.Tensor) -> torch.Tensor:
    """x.contiguous() through the native strided copy."""
    if x.is_contiguous():
        return x
    y = torch.empty(x.shape, dtype=x.dtype)
    _copy_strided(x.data_ptr(), y.data_ptr(), x.element_size(), x.shape, x.stride(), y.stride())
    return y


def _has_ref(a: Any) -> bool:
    if isinstance(a, Ref):
        return True
    if isinstance(a, (tuple, list)):
        return any(_has_ref(x) for x in a)
    if isinstance(a, dict):
        return any(_has_ref(x) for x in a.values())
    return False


def _with_attrs(node: Node, make: Callable[[dict[str, Any]], Callable[..., Any]]) -> Kernel:
    """A kernel over the node's first input whose attributes may hold Refs to syms (resolved per call)."""
    if not _has_ref(node.attrs):
        return make(node.attrs)
    n_in = len(node.inputs)
    attrs = node.attrs

    def kernel(*args: Any) -> Any:
        return make(resolve_attrs(attrs, list(args[n_in:])))(*args[:n_in])

    return kernel


def _cpu(node: Node) -> str | None:
    for v in list(node.inputs) + list(node.outputs):
        if v.kind == "tensor" and v.device != "cpu":
            return f"value on {v.device}"
    return None


# -- views --------------------------------------------------------------------------------------------------------


@lowers(Op.RESHAPE)
def lower_reshape(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    if why := _cpu(node):
        return why
    viewable: dict[tuple, bool] = {}  # (shape, strides, target) -> whether a view works

    def make(attrs: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        shape = tuple(attrs["shape"])

        def k(x: torch.Tensor) -> torch.Tensor:
            if x.is_contiguous():
                return x.view(shape)
            key = (x.shape, x.stride(), shape)
            ok = viewable.get(key)
            if ok is None:
                try:
                    y = x.view(shape)
                    viewable[key] = True
                    return y
                except RuntimeError:
                    ok = viewable[key] = False
            return x.view(shape) if ok else contiguous(x).view(shape)

        return k

    return _with_attrs(node, make)


@lowers(Op.PERMUTE)
def lower_permute(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _cpu(node) or _with_attrs(node, lambda a: lambda x, d=tuple(a["dims"]): x.permute(d))


@lowers(Op.TRANSPOSE)
def lower_transpose(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _cpu(node) or _with_attrs(node, lambda a: lambda x, d0=a["dim0"], d1=a["dim1"]: x.transpose(d0, d1))


@lowers(Op.EXPAND)
def lower_expand(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _cpu(node) or _with_attrs(node, lambda a: lambda x, s=tuple(a["shape"]): x.expand(s))


@lowers(Op.SQUEEZE)
def lower_squeeze(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    def make(a: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        dims = a["dims"]
        if dims is None:
            return lambda x: x.squeeze()
        dims = tuple(dims)
        return lambda x: torch.squeeze(x, dims)

    return _cpu(node) or _with_attrs(node, make)


@lowers(Op.UNSQUEEZE)
def lower_unsqueeze(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _cpu(node) or _with_attrs(node, lambda a: lambda x, d=a["dim"]: x.unsqueeze(d))


@lowers(Op.SLICE)
def lower_slice(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    def make(a: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        dim, start, end, step = a["dim"], a["start"], a["end"], a["step"]
        if step == 1 and start is not None and end is not None and start >= 0 and end >= 0:

            def narrow(x: torch.Tensor) -> torch.Tensor:
                size = x.shape[dim]
                s = min(start, size)
                return x.narrow(dim, s, max(min(end, size) - s, 0))

            return narrow
        return lambda x: _slice(x, dim, start, end, step)

    return _cpu(node) or _with_attrs(node, make)


@lowers(Op.SELECT)
def lower_select(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _cpu(node) or _with_attrs(node, lambda a: lambda x, d=a["dim"], i=a["index"]: x.select(d, i))


@lowers(Op.SPLIT)
def lower_split(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    def make(a: dict[str, Any]) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
        sizes, dim = list(a["sizes"]), a["dim"]
        return lambda x: tuple(torch.split_with_sizes(x, sizes, dim))

    return _cpu(node) or _with_attrs(node, make)


# -- copies -------------------------------------------------------------------------------------------------------


@lowers(Op.CONTIGUOUS)
def lower_contiguous(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    if why := _cpu(node):
        return why
    if node.attrs["memory_format"] not in (None, "contiguous_format"):
        return f"memory_format {node.attrs['memory_format']}"
    if node.inputs[0].dtype.itemsize not in (1, 2, 4, 8):
        return "dtype size"
    return contiguous


@lowers(Op.CAT)
def lower_cat(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    if why := _cpu(node):
        return why
    out = node.out
    if any(v.dtype is not out.dtype for v in node.inputs) or out.dtype.itemsize not in (1, 2, 4, 8):
        return "cat of mixed dtypes"
    rank = len(out.shape)
    if rank == 0 or any(len(v.shape) != rank for v in node.inputs):
        return "cat of inputs with different ranks"
    dim = node.attrs["dim"] % rank
    dt = out.dtype.to_torch()

    def kernel(*xs: torch.Tensor) -> torch.Tensor:
        shape = list(xs[0].shape)
        shape[dim] = sum(x.shape[dim] for x in xs)
        y = torch.empty(shape, dtype=dt)
        off = 0
        isz = y.element_size()
        ys = y.stride()
        base = y.data_ptr()
        for x in xs:
            n = x.shape[dim]
            if n and x.numel():
                _copy_strided(x.data_ptr(), base + off * ys[dim] * isz, isz, x.shape, x.stride(), ys)
            off += n
        return y

    return kernel


@lowers(Op.EMBEDDING)
def lower_embedding(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    if why := _cpu(node):
        return why
    w, idx = node.inputs
    if len(w.shape) != 2 or idx.dtype not in (DType.i64, DType.i32) or w.dtype.itemsize not in (1, 2, 4, 8):
        return "embedding shapes/dtypes"
    is64 = idx.dtype is DType.i64
    gather = _C.gather_rows

    def kernel(weight: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        wc = contiguous(weight)
        ic = contiguous(indices)
        rows, dim = wc.shape
        y = torch.empty((*ic.shape, dim), dtype=wc.dtype)
        gather(wc.data_ptr(), ic.data_ptr(), y.data_ptr(), wc.element_size(), 1, rows, dim, ic.numel(), is64, False)
        return y

    return kernel


@lowers(Op.INDEX_SELECT)
def lower_index_select(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    if why := _cpu(node):
        return why
    x, idx = node.inputs
    if idx.dtype not in (DType.i64, DType.i32) or len(idx.shape) > 1 or x.dtype.itemsize not in (1, 2, 4, 8):
        return "index_select shapes/dtypes"
    rank = len(x.shape)
    if rank == 0:
        return "0-d input"
    dim = node.attrs["dim"] % rank
    is64 = idx.dtype is DType.i64
    gather = _C.gather_rows

    def kernel(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        tc = contiguous(t)
        ic = contiguous(index)
        s = tc.shape
        outer, rows, inner = math.prod(s[:dim]), s[dim], math.prod(s[dim + 1 :])
        y = torch.empty((*s[:dim], ic.numel(), *s[dim + 1 :]), dtype=tc.dtype)
        gather(
            tc.data_ptr(), ic.data_ptr(), y.data_ptr(), tc.element_size(), outer, rows, inner, ic.numel(), is64, False
        )
        return y

    return kernel


# -- creation -----------------------------------------------------------------------------------------------------


@lowers(Op.FULL)
def lower_full(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    out = node.out
    if out.device != "cpu" or out.dtype.itemsize not in (1, 2, 4, 8) or out.dtype is DType.c64:
        return "full dtype/device"
    dt = out.dtype.to_torch()
    try:
        raw = torch.tensor(node.attrs["value"], dtype=dt).reshape(1).view(torch.uint8)
    except (TypeError, RuntimeError) as e:
        return f"full value: {e}"
    bits = int.from_bytes(bytes(raw.tolist()), "little")
    isz = raw.numel()
    fill = _C.fill

    def make(a: dict[str, Any]) -> Callable[[], torch.Tensor]:
        shape = tuple(a["shape"])

        def k() -> torch.Tensor:
            y = torch.empty(shape, dtype=dt)
            fill(y.data_ptr(), isz, y.numel(), bits)
            return y

        return k

    return _with_attrs(node, make)


@lowers(Op.ARANGE)
def lower_arange(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    out = node.out
    if out.device != "cpu" or out.dtype not in (DType.f32, DType.f64, DType.i64, DType.i32):
        return "arange dtype/device"
    if _has_ref(node.attrs) or not out.is_static:
        return "arange with symbolic bounds"
    a = node.attrs
    n = int(out.shape[0])  # static: checked above
    start, step = a["start"], a["step"]
    if not all(isinstance(v, (int, float)) for v in (start, step)):
        return "arange bounds"
    dt = out.dtype.to_torch()
    name = str(dt).removeprefix("torch.")
    ar = _C.arange

    def kernel() -> torch.Tensor:
        y = torch.empty(n, dtype=dt)
        ar(y.data_ptr(), name, n, float(start), float(step))
        return y

    return kernel


# -- symbolic ints ------------------------------------------------------------------------------------------------


@lowers(Op.SYM_SIZE)
def lower_sym_size(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    dim = node.attrs["dim"]
    return lambda x: x.size(dim)


_SYM = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


@lowers(Op.SYM_ARITH)
def lower_sym_arith(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    fn = _SYM.get(node.attrs["fn"])
    if fn is None:
        return f"sym fn {node.attrs['fn']}"
    a, b = node.attrs["a"], node.attrs["b"]
    ga = (lambda s: s[a.index]) if isinstance(a, Ref) else (lambda s: a)
    gb = (lambda s: s[b.index]) if isinstance(b, Ref) else (lambda s: b)
    return lambda *syms: fn(ga(syms), gb(syms))
