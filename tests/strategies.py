"""Shared hypothesis strategies: shapes with empty, size-1 and odd dims, broadcasting shape tuples, dtypes, and
tensors in contiguous, transposed, strided and offset layouts (so kernels and references see real strides).

    >>> from hypothesis import given
    >>> @given(x=shapes().flatmap(lambda s: tensors(s, torch.float32)))
    ... def test_neg(x): ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ordered so hypothesis shrinks towards the edge cases: empty, size 1, then odd sizes
LAYOUTS = ("contiguous", "transposed", "strided", "offset")
FLOATS = (torch.float32, torch.float64)
INTS = (torch.int64, torch.int32)


def sides(min_side: int = 0, max_side: int = 7) -> st.SearchStrategy[int]:
    return st.integers(min_side, max_side)


def shapes(min_rank: int = 0, max_rank: int = 4, min_side: int = 0, max_side: int = 7) -> st.SearchStrategy[tuple]:
    """Tensor shapes; dims shrink towards 0 and 1 and include odd sizes."""
    return st.lists(sides(min_side, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def broadcast_shapes(
    num: int = 2, min_rank: int = 0, max_rank: int = 4, min_side: int = 0, max_side: int = 6
) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """``num`` mutually broadcastable shapes (missing leading dims, size-1 dims against n)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num, min_dims=min_rank, max_dims=max_rank, min_side=min_side, max_side=max_side
    ).map(lambda b: b.input_shapes)


def make_tensor(
    shape: Sequence[int],
    dtype: torch.dtype,
    layout: str = "contiguous",
    seed: int = 0,
    *,
    low: float = -3,
    high: float = 3,
    exclude_zero: bool = False,
) -> torch.Tensor:
    """A tensor of ``shape`` with values in [low, high) whose memory layout is ``layout``:
    "transposed" (last two dims swapped in memory), "strided" (every other element of the last dim),
    "offset" (a view starting one element into its storage), or "contiguous"."""
    shape = tuple(shape)
    gen = torch.Generator().manual_seed(seed)
    if layout == "transposed" and len(shape) >= 2:
        return _fill(shape[:-2] + (shape[-1], shape[-2]), dtype, gen, low, high, exclude_zero).transpose(-1, -2)
    if layout == "strided" and len(shape) >= 1:
        return _fill(shape[:-1] + (2 * shape[-1],), dtype, gen, low, high, exclude_zero)[..., ::2]
    if layout == "offset":
        n = 1
        for s in shape:
            n *= s
        return _fill((n + 1,), dtype, gen, low, high, exclude_zero)[1:].view(shape)
    return _fill(shape, dtype, gen, low, high, exclude_zero)


def _fill(
    shape: tuple, dtype: torch.dtype, gen: torch.Generator, low: float, high: float, exclude_zero: bool
) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_floating_point:
        t = torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low
        if exclude_zero:
            t = torch.where(t.abs() < 0.25, torch.full_like(t, 0.5), t)
    else:
        t = torch.randint(int(low), int(high), shape, generator=gen)
        if exclude_zero:
            t = torch.where(t == 0, torch.ones_like(t), t)
    return t.to(dtype)


@st.composite
def tensors(
    draw: st.DrawFn,
    shape: Sequence[int],
    dtype: torch.dtype,
    *,
    low: float = -3,
    high: float = 3,
    exclude_zero: bool = False,
    layouts: Sequence[str] = LAYOUTS,
) -> torch.Tensor:
    """A tensor of the given shape and dtype, in a drawn memory layout (non-contiguous more often than not)."""
    layout = draw(st.sampled_from(tuple(layouts)))
    seed = draw(st.integers(0, 2**31 - 1))
    return make_tensor(shape, dtype, layout, seed, low=low, high=high, exclude_zero=exclude_zero)


def index_tensors(shape: Sequence[int], bound: int) -> st.SearchStrategy[torch.Tensor]:
    """int64 tensors of ``shape`` with values in [0, bound) (bound 0 only allowed for empty shapes)."""
    return tensors(shape, torch.int64, low=0, high=max(bound, 1))


def scalars(dtype: torch.dtype | None = None) -> st.SearchStrategy[Any]:
    """A Python number operand: ints, finite floats (incl. -0.0), or bools."""
    if dtype is not None and dtype.is_floating_point:
        return st.floats(-4, 4, allow_nan=False, width=32)
    return st.one_of(st.integers(-4, 4), st.floats(-4, 4, allow_nan=False, width=32), st.booleans())


def subsets(rank: int) -> st.SearchStrategy[tuple[int, ...]]:
    """Distinct dims of a rank-``rank`` tensor, each written positive or negative."""
    if rank == 0:
        return st.just(())
    return st.lists(st.integers(0, rank - 1), unique=True, max_size=rank).flatmap(
        lambda ds: st.tuples(*[st.sampled_from((d, d - rank)) for d in ds])
    )


def dims_of(rank: int) -> st.SearchStrategy[int]:
    """One dim of a rank-``rank`` (>= 1) tensor, positive or negative."""
    return st.integers(-rank, rank - 1)
