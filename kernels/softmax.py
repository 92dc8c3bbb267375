"""Row softmax over the last dimension: ``softmax_kernel`` + the ``softmax()`` launcher (fp32 accumulation).

One program per row. Rows up to ``MAX_BLOCK`` columns are read once into registers; longer rows take the online
form (running max and rescaled sum over column blocks, then a second pass to write), so any row length works.
Inputs may be strided in both dimensions; the output has x's shape (contiguous when dim is the last).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_BLOCK = 4096  # columns held at once by one program; longer rows loop over blocks of this size
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def softmax_kernel(out_ptr, x_ptr, n_cols, stride_xr, stride_xc, stride_or,
                   BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xr
    out_row = out_ptr + row * stride_or
    cols = tl.arange(0, BLOCK)
    if ONE_BLOCK:
        mask = cols < n_cols
        x = tl.load(x_row + cols * stride_xc, mask=mask, other=-float("inf")).to(tl.float32)
        e = tl.where(mask, tl.exp(x - tl.max(x, axis=0)), 0.0)
        tl.store(out_row + cols, (e / tl.sum(e, axis=0)).to(out_ptr.dtype.element_ty), mask=mask)
    else:
        # running max m and sum s of exp(x - m), rescaled whenever m grows
        m = tl.full((BLOCK,), -float("inf"), tl.float32)
        s = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + (start + cols) * stride_xc, mask=mask, other=-float("inf")).to(tl.float32)
            m_new = tl.maximum(m, x)
            # lanes that have seen only -inf keep s = 0 (exp(-inf - -inf) would be NaN)
            scale = tl.where(m_new == -float("inf"), 0.0, tl.exp(m - m_new))
            s = s * scale + tl.where(m_new == -float("inf"), 0.0, tl.exp(x - m_new))
            m = m_new
        row_max = tl.max(m, axis=0)
        total = tl.sum(tl.where(m == -float("inf"), 0.0, s * tl.exp(m - row_max)), axis=0)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + (start + cols) * stride_xc, mask=mask, other=-float("inf")).to(tl.float32)
            y = tl.exp(x - row_max) / total
            tl.store(out_row + start + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _check_device(x: torch.Tensor) -> None:
    if not (x.is_cuda or triton.knobs.runtime.interpret):
        raise ValueError(f"softmax: x is on {x.device}; Triton kernels need a CUDA tensor "
                         "(or TRITON_INTERPRET=1 to run them on the CPU in the interpreter)")


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``torch.softmax(x, dim)`` for fp32/fp16/bf16 ``x`` of any rank and strides, computed in fp32.

    >>> softmax(torch.randn(4, 10, device="cuda")).sum(-1)  # ones
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"softmax: x must be a torch.Tensor, not {type(x).__name__}")
    if x.dtype not in DTYPES:
        raise ValueError(f"softmax: x has dtype {x.dtype}; supported: {', '.join(map(str, DTYPES))}")
    if x.dim() == 0:
        raise ValueError("softmax: x is a 0-d tensor; give it at least one dimension")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"softmax: dim {dim} is out of range for a {x.dim()}-d tensor")
    _check_device(x)
    moved = x.movedim(dim, -1)
    n_cols = moved.shape[-1]
    n_rows = moved.numel() // n_cols if n_cols else 0
    rows = moved.reshape(n_rows, n_cols) if moved.dim() != 2 else moved  # a view wherever strides allow
    out = torch.empty(rows.shape, dtype=x.dtype, device=x.device)
    if n_rows and n_cols:
        block = min(triton.next_power_of_2(n_cols), MAX_BLOCK)
        softmax_kernel[(n_rows,)](out, rows, n_cols, rows.stride(0), rows.stride(1), out.stride(0),
                                  BLOCK=block, ONE_BLOCK=n_cols <= block)
    return out.reshape(moved.shape).movedim(-1, dim)
