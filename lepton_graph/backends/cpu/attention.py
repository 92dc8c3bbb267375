"""CPU lowering of SDPA: the fused flash-style attention kernel (csrc/kernels/attention*.cpp).

q/k/v are read in place through their strides (the split + permute views of a fused QKV projection cost no copy);
the mask (bool: True keeps, or float: added) is passed as a stride-0 broadcast view. When every consumer of the
output transposes heads and rows back (``transpose(1, 2)`` before the output projection), the kernel writes
straight into a (B, L, H, Ev) buffer and returns its (B, H, L, Ev) transposed view, so that transpose + reshape
becomes free.

In bf16 mode (``compile(precision="bf16")``, ``LowerOptions.precision``) on AVX512_BF16 hardware the kernel is
``sdpa_bf16``: Q.K^T and P.V on bf16-rounded operands (converted on the fly, the tensors stay fp32), fp32 softmax and
accumulation. fp32 mode always runs the exact fp32 kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...ir import DType, Graph, Node, Op
from .. import LowerOptions
from .native import _lib
from .registry import Kernel, lowers

_NO_STRIDES = (0, 0, 0, 0)
_MASK_KINDS = {DType.bool: 1, DType.f32: 2}


def _consumers_transpose_heads(node: Node, graph: Graph) -> bool:
    """True when the output feeds only transpose(1, 2) nodes (and is not a graph output)."""
    out = node.out
    if out.rank != 4 or any(o is out for o in graph.outputs):
        return False
    users = graph.users().get(out, [])
    if not users:
        return False
    for u in users:
        if u.op is not Op.TRANSPOSE or {u.attrs["dim0"] % 4, u.attrs["dim1"] % 4} != {1, 2}:
            return False
    return True


def _why_not(node: Node) -> str | None:
    q, k, v = node.inputs[:3]
    for name, val in (("q", q), ("k", k), ("v", v)):
        if val.dtype is not DType.f32:
            return f"sdpa: {name} is {val.dtype.value}; the native kernel is float32 only"
        if val.device != "cpu":
            return f"sdpa: {name} is on {val.device}"
    if not 2 <= q.rank <= 4 or k.rank != q.rank or v.rank != q.rank:
        return f"sdpa: ranks q={q.rank} k={k.rank} v={v.rank}; the native kernel takes equal ranks 2..4"
    if q.shape[:-3] != k.shape[:-3] or q.shape[:-3] != v.shape[:-3] or k.shape[:-2] != v.shape[:-2]:
        return "sdpa: batch dims of q, k, v differ (broadcast batches are not native)"
    if q.rank >= 3 and q.shape[-3] != k.shape[-3]:
        hq, hkv = q.shape[-3], k.shape[-3]
        if not node.attrs.get("enable_gqa"):
            return "sdpa: q and k/v have different head counts without enable_gqa (broadcast heads are not native)"
        if isinstance(hq, int) and isinstance(hkv, int) and (hkv == 0 or hq % hkv):
            return f"sdpa: {hq} query heads are not a multiple of {hkv} kv heads"
    if len(node.inputs) > 3:
        mask = node.inputs[3]
        if mask.dtype not in _MASK_KINDS:
            return f"sdpa: mask dtype {mask.dtype.value} (native: bool or float32)"
        if mask.rank > 4:
            return f"sdpa: mask of rank {mask.rank}"
    scale = node.attrs.get("scale")
    if scale is not None and not math.isfinite(scale):
        return f"sdpa: scale {scale}"
    return None


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    if t.numel() == 0:  # torch calls an empty tensor contiguous whatever its strides: nothing to copy, new strides
        return torch.empty(t.shape, dtype=t.dtype)
    return t if t.stride(-1) == 1 or t.shape[-1] <= 1 else t.contiguous()


@lowers(Op.SDPA)
def lower_sdpa(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    why = _why_not(node)
    if why is not None:
        return why
    lib = _lib()
    bf16 = opts.precision == "bf16" and bool(lib.sdpa_bf16_supported())
    sdpa = lib.sdpa_bf16 if bf16 else lib.sdpa_f32
    rank = node.inputs[0].rank
    causal = bool(node.attrs.get("is_causal", False))
    scale_attr = node.attrs.get("scale")
    mask_kind = _MASK_KINDS[node.inputs[3].dtype] if len(node.inputs) > 3 else 0
    blhe = _consumers_transpose_heads(node, graph)

    def kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        if rank != 4:  # (L, E) or (N, L, E): views with a leading head / batch dim of 1
            q, k, v = (t.reshape((1,) * (4 - rank) + tuple(t.shape)) for t in (q, k, v))
        qs, ks, vs = q.stride(), k.stride(), v.stride()
        if qs[3] != 1 or ks[3] != 1 or vs[3] != 1:
            q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
            qs, ks, vs = q.stride(), k.stride(), v.stride()
        B, H, L, E = q.shape
        _, Hkv, S, _ = k.shape
        _, Hv, Sv, Ev = v.shape
        if Sv != S or Hv != Hkv:
            raise ValueError(f"sdpa: k {tuple(k.shape)} and v {tuple(v.shape)} disagree")
        if blhe:  # (B, L, H, Ev) memory, seen as (B, H, L, Ev)
            out = torch.empty_strided((B, H, L, Ev), (L * H * Ev, Ev, H * Ev, 1), dtype=torch.float32)
        else:
            out = torch.empty((B, H, L, Ev), dtype=torch.float32)
        scale = scale_attr if scale_attr is not None else (1.0 / math.sqrt(E) if E else 1.0)
        # the mask operand: (pointer, kind, strides), or none
        if mask is None:
            mask_args: tuple[Any, ...] = (0, 0, _NO_STRIDES)
        else:
            m = mask.expand(B, H, L, S)
            mask_args = (m.data_ptr(), mask_kind, m.stride())
        sdpa(
            q.data_ptr(),
            qs,
            k.data_ptr(),
            ks,
            v.data_ptr(),
            vs,
            out.data_ptr(),
            out.stride(),
            *mask_args,
            B,
            H,
            Hkv,
            L,
            S,
            E,
            Ev,
            causal,
            scale,
        )
        return out if rank == 4 else out.reshape(out.shape[4 - rank :])

    return kernel
