"""Normalisation, softmax and reduction lowerings.

LAYER_NORM / RMS_NORM / SOFTMAX / LOG_SOFTMAX over the last dim, alone or as FUSED "norm"/"softmax" groups
(elementwise prologue, e.g. the residual add, + the row op + elementwise epilogue), run as one program in row
mode (eltwise.build_program): every tile is a whole number of rows, so the prologue, the row statistics and the
epilogue happen in a single pass with each row resident in L1/L2.

SUM / MEAN / AMAX / AMIN over a contiguous block of dims and ARGMAX over one dim run as [outer, red, inner]
reductions (csrc reduce_f32 / argmax_f32).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...ir import DType, Graph, Node, Op
from .. import LowerOptions
from . import eltwise
from .eltwise import R_LAYER_NORM, R_LOG_SOFTMAX, R_RMS_NORM, R_SOFTMAX, ROW, Unsupported
from .native import _C
from .registry import Kernel, lowers, lowers_fused

_ROW_OPS = {Op.LAYER_NORM: R_LAYER_NORM, Op.RMS_NORM: R_RMS_NORM, Op.SOFTMAX: R_SOFTMAX, Op.LOG_SOFTMAX: R_LOG_SOFTMAX}
_F32_EPS = torch.finfo(torch.float32).eps


def _row_op(b: Any, n: Node) -> int:
    """OP_ROW for a norm/softmax node (program builder callback)."""
    if n.op not in _ROW_OPS:
        raise Unsupported(f"op {n.op.value} in a norm program")
    x = n.inputs[0]
    if x.dtype is not DType.f32 or n.out.dtype is not DType.f32:
        raise Unsupported(f"{n.op.value} on {x.dtype.value}")
    rank = len(x.shape)
    if rank == 0:
        raise Unsupported("0-d input")
    w = bias = -1
    if n.op in (Op.LAYER_NORM, Op.RMS_NORM):
        if len(n.attrs["normalized_shape"]) != 1:
            raise Unsupported("normalized_shape over several dims")
        for v in n.inputs[1:]:
            if v.dtype is not DType.f32 or len(v.shape) != 1:
                raise Unsupported("weight/bias not a 1-d float32 tensor")
        if len(n.inputs) > 1:
            w = b.operand(n.inputs[1])
        if len(n.inputs) > 2:
            bias = b.operand(n.inputs[2])
        eps = n.attrs["eps"]
        eps = _F32_EPS if eps is None else float(eps)
    else:
        if n.attrs["dim"] % rank != rank - 1:
            raise Unsupported("softmax over a dim other than the last")
        if n.attrs.get("dtype") not in (None, DType.f32):
            raise Unsupported("softmax dtype")
        eps = 0.0
    return b.emit(ROW, _ROW_OPS[n.op], b.operand(x), w, bias, k=b.const(eps))


def _lower_rows(nodes: list[Node], inputs: list[Any], outputs: list[Any]) -> Kernel | str:
    roots = [n for n in nodes if n.op in _ROW_OPS]
    if not roots:
        return "no norm/softmax op"
    shape = tuple(roots[0].inputs[0].shape)
    if any(tuple(v.shape) != shape for v in outputs) or any(tuple(r.inputs[0].shape) != shape for r in roots):
        return "outputs of different shapes"
    if any(v.device != "cpu" for v in list(inputs) + list(outputs) if v.kind == "tensor"):
        return "not on cpu"
    built = eltwise.build_program(nodes, inputs, outputs, row_mode=True, row_ops=_row_op)
    if isinstance(built, str):
        return built
    return eltwise.program_kernel(built, outputs, inputs)


@lowers(Op.LAYER_NORM, Op.RMS_NORM, Op.SOFTMAX, Op.LOG_SOFTMAX)
def lower_row_op(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    return _lower_rows([node], node.inputs, node.outputs)


@lowers_fused("norm", "softmax")
def lower_fused_rows(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    body: Graph = node.attrs["body"]
    return _lower_rows(body.nodes, body.inputs, body.outputs)


# -- reductions ---------------------------------------------------------------------------------------------------


def _block(dims: Any, rank: int) -> tuple[int, int] | None:
    """The reduced dims as a contiguous block [lo, hi) (None: not contiguous)."""
    ds = sorted({d % rank for d in dims}) if dims is not None and len(dims) and rank else list(range(rank))
    if ds and ds != list(range(ds[0], ds[-1] + 1)):
        return None
    return (ds[0], ds[-1] + 1) if ds else (0, 0)


def _contig(x: torch.Tensor) -> torch.Tensor:
    if x.is_contiguous():
        return x
    from .movement import contiguous

    return contiguous(x)


@lowers(Op.SUM, Op.MEAN, Op.AMAX, Op.AMIN)
def lower_reduce(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    x = node.inputs[0]
    if x.dtype is not DType.f32 or node.out.dtype is not DType.f32 or x.device != "cpu":
        return f"reduction on {x.dtype.value}"
    if node.attrs.get("dtype") not in (None, DType.f32):
        return "reduction dtype"
    rank = len(x.shape)
    dims = node.attrs["dims"]
    blk = _block(dims, rank)
    if blk is None:
        return "reduced dims are not contiguous"
    lo, hi = blk
    if node.op in (Op.AMAX, Op.AMIN) and any(x.shape[d] == 0 for d in range(lo, hi)):
        return "amax/amin of an empty dim"
    keep = node.attrs["keepdim"]
    fn = node.op.value
    red_c = _C.reduce_f32
    if all(isinstance(d, int) for d in x.shape):  # static shape: everything but the pointers precomputed
        s = tuple(int(d) for d in x.shape)
        so, sr, si = math.prod(s[:lo]), math.prod(s[lo:hi]), math.prod(s[hi:])
        soshape = (*s[:lo], *([1] * (hi - lo) if keep else []), *s[hi:])
        sn, empty, f32 = math.prod(s), torch.empty, torch.float32

        def static_kernel(t: torch.Tensor) -> torch.Tensor:
            if t.is_contiguous() and t.numel() == sn:
                y = empty(soshape, dtype=f32)
                red_c(fn, t.data_ptr(), y.data_ptr(), so, sr, si)
                return y
            return kernel(t)

    def kernel(t: torch.Tensor) -> torch.Tensor:
        s = t.shape
        outer = math.prod(s[:lo])
        red = math.prod(s[lo:hi])
        inner = math.prod(s[hi:])
        oshape = (*s[:lo], *([1] * (hi - lo) if keep else []), *s[hi:])
        y = torch.empty(oshape, dtype=torch.float32)
        tc = _contig(t)
        red_c(fn, tc.data_ptr(), y.data_ptr(), outer, red, inner)
        return y

    return static_kernel if all(isinstance(d, int) for d in x.shape) else kernel


@lowers(Op.ARGMAX)
def lower_argmax(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    x = node.inputs[0]
    if x.dtype is not DType.f32 or x.device != "cpu":
        return f"argmax on {x.dtype.value}"
    dim, keep = node.attrs["dim"], node.attrs["keepdim"]
    rank = len(x.shape)
    argmax_c = _C.argmax_f32

    def kernel(t: torch.Tensor) -> torch.Tensor:
        s = t.shape
        if dim is None:
            outer, red, inner = 1, t.numel(), 1
            oshape: tuple[int, ...] = (1,) * rank if keep else ()
        else:
            d = dim % max(rank, 1)
            outer, red, inner = math.prod(s[:d]), (s[d] if rank else 1), math.prod(s[d + 1 :])
            oshape = (*s[:d], *((1,) if keep else ()), *s[d + 1 :]) if rank else ()
        if red == 0:
            raise ValueError("argmax of an empty dimension")
        y = torch.empty(oshape, dtype=torch.int64)
        tc = _contig(t)
        argmax_c(tc.data_ptr(), y.data_ptr(), outer, red, inner)
        return y

    return kernel
